//! Lesson 2, committing offsets: the naive calculator crashed between its two steps loses or
//! doubles records; the exact calculator (the control) loses nothing.

use super::{BROKEN_FOR, CaseState, Check, LessonStatus, Observation, Seen, Text, caught_up};

pub const TEXT: Text = Text {
    name: "delivery",
    title: "2 · Committing offsets: at-most-once, at-least-once",
    explain: "A consumer that saves its results and commits its offsets as two separate steps can crash between them. Commit first and the batch is lost (at-most-once); save first and it is counted twice (at-least-once). The exact calculator keeps its balances and the offsets they cover as one snapshot, so a crash costs it nothing.",
    steps: &[
        "Start the naive consumer: it reads beside the exact calculator.",
        "Crash it between its two steps: at at-least-once it reads its last batch again, records counted twice (seconds, with records flowing).",
        "Switch to at-most-once and crash it again: that batch is lost. Each outcome is shown on its own.",
        "The control turns once the exact calculator applied everything acknowledged by the crash, each once (seconds). Stop the naive consumer when done.",
    ],
    watch: "The delivery panel: records lost or read twice, and the naive balances beside the exact ones; the invariant line stays ✓.",
    control: Some("the exact calculator: nothing lost, nothing twice"),
};

#[derive(Debug, Default)]
pub struct Delivery {
    /// Acknowledged records when the naive calculator first crashed: the exact calculator must
    /// apply as many.
    acked_at_crash: Option<u64>,
}

impl Check for Delivery {
    fn observe(&mut self, o: &Observation, lesson: &mut LessonStatus, seen: &Seen) {
        let n = &o.naive;
        if n.crashes == 0 {
            if n.state != crate::naive::NaiveState::Off && !lesson.experiment.settled() {
                lesson.experiment.set(
                    CaseState::Running,
                    "the naive consumer runs; crash it between its two steps".into(),
                );
            }
            return;
        }
        if n.lost + n.doubled > 0 && n.differing_accounts > 0 {
            // Each delivery's outcome on its own: the second crash must show, though the
            // check turned at the first.
            let at_least_once = match n.doubled {
                0 => "none read twice yet (crash it at at-least-once)".to_owned(),
                d => format!("✓ {d} read twice"),
            };
            let at_most_once = match n.lost {
                0 => "none lost yet (switch to at-most-once and crash it)".to_owned(),
                l => format!("✓ {l} lost"),
            };
            lesson.experiment.set(
                CaseState::Happened,
                format!(
                    "at-least-once: {at_least_once} · at-most-once: {at_most_once} · after {} crash{}, its total is off by {} in {} account{}",
                    n.crashes,
                    if n.crashes == 1 { "" } else { "es" },
                    n.net_difference,
                    n.differing_accounts,
                    if n.differing_accounts == 1 { "" } else { "s" }
                ),
            );
        } else if !lesson.experiment.settled() {
            lesson.experiment.set(
                CaseState::Running,
                format!(
                    "crashed: {} lost, {} read twice; waiting to compare its balances at the same offsets",
                    n.lost, n.doubled
                ),
            );
        }
        let target = *self.acked_at_crash.get_or_insert(o.acked);
        let broken = seen.broken_for >= BROKEN_FOR;
        if let Some(c) = lesson.control.as_mut() {
            if broken {
                c.set(
                    CaseState::Happened,
                    "the exact calculator's invariant broke".into(),
                );
            } else if c.state != CaseState::Happened && caught_up(o, target) {
                c.set(
                    CaseState::DidNotHappen,
                    format!("the exact calculator applied all {target} transactions acknowledged by the crash, each once, and the invariant holds"),
                );
            }
        }
    }
}
