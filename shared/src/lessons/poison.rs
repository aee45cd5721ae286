//! Lesson 4, poison pills go to a dead-letter topic: records the calculator cannot apply are
//! set aside with their reason; the calculator goes on and the invariant holds (the control).

use super::{BROKEN_FOR, CaseState, Check, LessonStatus, Observation, Seen, Text, caught_up};

pub const TEXT: Text = Text {
    name: "poison",
    title: "4 · Poison pills go to a dead-letter topic",
    explain: "Anyone can write to a topic. A record the calculator cannot apply (not JSON, wrong types, an unknown type, a negative amount, too large, a duplicate) is set aside in a dead-letter topic with the reason, and the consumer goes on.",
    steps: &[
        "Inject one of each kind: six records land in the dead-letter topic with their reasons within a second.",
        "The control turns once the calculator has applied more records after them (generation running: a few seconds) and the invariant holds.",
    ],
    watch: "The dead-letter panel: each record with its reason and where it came from; the balances and the invariant.",
    control: Some("the consumer goes on and the invariant holds"),
};

#[derive(Debug, Default)]
pub struct Poison {
    /// Dead letters when first observed.
    dead_letters: Option<u64>,
    /// Applied, and acknowledged, when a new dead letter was first seen.
    after_poison: Option<u64>,
    acked_at_poison: Option<u64>,
}

impl Check for Poison {
    fn observe(&mut self, o: &Observation, lesson: &mut LessonStatus, seen: &Seen) {
        let base = *self.dead_letters.get_or_insert(o.dead_lettered);
        let n = o.dead_lettered.saturating_sub(base);
        if n == 0 {
            return;
        }
        lesson.experiment.set(
            CaseState::Happened,
            format!("{n} records set aside in the dead-letter topic, each with its reason"),
        );
        let after = *self.after_poison.get_or_insert(o.applied);
        let target = *self.acked_at_poison.get_or_insert(o.acked);
        let broken = seen.broken_for >= BROKEN_FOR;
        if let Some(c) = lesson.control.as_mut() {
            if broken {
                c.set(
                    CaseState::Happened,
                    "the invariant broke after the poison".into(),
                );
            } else if c.state != CaseState::Happened && o.applied > after && caught_up(o, target) {
                c.set(
                    CaseState::DidNotHappen,
                    format!(
                        "the calculator went on ({} applied since) and the invariant holds: the poison moved no balance",
                        o.applied.saturating_sub(after)
                    ),
                );
            } else if !c.settled() {
                c.set(
                    CaseState::Running,
                    "waiting for the calculator to apply the next transaction".into(),
                );
            }
        }
    }
}
