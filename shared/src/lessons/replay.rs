//! Lesson 3, balances are a function of the log: a fresh group reading from the first offset
//! computes the live balances.

use super::{CaseState, Check, LessonStatus, Observation, Seen, Text};
use crate::replay::ReplayState;

pub const TEXT: Text = Text {
    name: "replay",
    title: "3 · Balances are a function of the log",
    explain: "The topic is the source of truth: a brand-new consumer group that reads it from the first offset computes exactly the balances the live calculator holds.",
    steps: &[
        "Rebuild from the beginning: a new group reads the topic from its first offset; a classroom topic takes about a second, so watch the result line, not the group.",
        "The outcome turns when its balances equal the live calculator's, account by account.",
    ],
    watch: "The replay line: records read, then its balances against the live ones (the replay's group shows in the groups panel only while it reads).",
    control: None,
};

#[derive(Debug, Default)]
pub struct Replay;

impl Check for Replay {
    fn observe(&mut self, o: &Observation, lesson: &mut LessonStatus, _seen: &Seen) {
        let r = &o.replay;
        match r.state {
            ReplayState::Converged => lesson.experiment.set(
                CaseState::Happened,
                format!(
                    "{} records replayed from the log start in {:.1} s, every partition equal to the live balances",
                    r.read,
                    r.ms as f64 / 1000.0
                ),
            ),
            ReplayState::Partial if lesson.experiment.state != CaseState::Happened => lesson
                .experiment
                .set(CaseState::DidNotHappen, r.describe()),
            ReplayState::Running if !lesson.experiment.settled() => {
                lesson.experiment.set(CaseState::Running, r.describe())
            }
            _ => {}
        }
    }
}
