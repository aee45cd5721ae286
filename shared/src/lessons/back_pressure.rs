//! Lesson 6, back-pressure: with a maximum lag the producer waits for the calculator.

use super::{CaseState, Check, LessonStatus, Observation, Seen, Text};

pub const TEXT: Text = Text {
    name: "back_pressure",
    title: "6 · Back-pressure",
    explain: "At full speed the producer outruns the calculator and lag grows. A maximum lag makes the producer wait for the consumer instead.",
    steps: &[
        "Max lag 100, and pause the calculator: the producer holds once 100 records are behind, 50 s at 2 tx/s, 5 s at 20 tx/s.",
        "Resume the calculator: the lag drains and the producer goes on; the outcome turns. Then Max lag off.",
    ],
    watch: "The calculator's lag in the topic lanes and the generator line (held: the calculator is behind).",
    control: None,
};

#[derive(Debug, Default)]
pub struct BackPressure;

impl Check for BackPressure {
    fn observe(&mut self, o: &Observation, lesson: &mut LessonStatus, _seen: &Seen) {
        if let (Some(max), true) = (o.max_lag, o.held_by_lag) {
            lesson.experiment.set(
                CaseState::Happened,
                format!(
                    "the producer waited while the calculator was {max} or more records behind"
                ),
            );
        } else if o.max_lag.is_some() && !lesson.experiment.settled() {
            lesson.experiment.set(
                CaseState::Running,
                "max lag set; pause the calculator (or go to max rate) to make it fall behind"
                    .into(),
            );
        }
    }
}
