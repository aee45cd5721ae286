//! Lesson 1, keys decide ordering: with random keys two members apply an account's
//! transactions out of order; keyed by account (the control) they never do.

use super::{CONTROL_RECORDS, CaseState, Check, LessonStatus, Observation, Seen, Text};
use crate::ordering::KeyStrategy;

pub const TEXT: Text = Text {
    name: "ordering",
    title: "1 · Keys decide ordering",
    explain: "Kafka keeps order within a partition only. Keyed by account, all of an account's transactions go to one partition and one consumer, in order. With random keys (or none) they spread over partitions read by different members, and a later transaction can be applied before an earlier one.",
    steps: &[
        "Add a member: the broker rebalances, two members share the six partitions (a few seconds).",
        "Keys by account (control): it turns once 300 records pass with none out of order, 150 s at 2 tx/s, 15 s at 20 tx/s.",
        "Random keys, then let the members fall behind for 2 s: as they catch up, an account's later transactions are applied first and the outcome turns (a few seconds).",
    ],
    watch: "The ordering line above the topic lanes; the topic lanes' owners (M1, M2). On a fast broker two members that keep up rarely disagree: let them fall behind for 2 s and catch up.",
    control: Some("keys by account, two members: nothing out of order"),
};

/// Where a condition began: the counters then.
#[derive(Clone, Copy, Debug, Default)]
struct Base {
    applied: u64,
    violations: u64,
    keyed_violations: u64,
}

/// The control's window: it opens once the records produced before the switch to keys by
/// account are applied, so that it counts records made under keys by account. Counters
/// only grow within one tracker: a re-created topic starts a new tracker (the monitor's epoch).
#[derive(Clone, Copy, Debug, Default)]
enum Window {
    #[default]
    Off,
    Draining(u64),
    On(Base),
}

#[derive(Debug, Default)]
pub struct Ordering {
    random: Option<Base>,
    by_account: Window,
}

impl Check for Ordering {
    fn observe(&mut self, o: &Observation, lesson: &mut LessonStatus, _seen: &Seen) {
        let two = o.members >= 2;
        let spread = matches!(o.keys, KeyStrategy::Random | KeyStrategy::None);
        let by_account = o.keys == KeyStrategy::ByAccount;
        let base = |b: &mut Option<Base>, on: bool| {
            if !on {
                *b = None;
            } else if b.is_none() {
                *b = Some(Base {
                    applied: o.applied,
                    violations: o.violations,
                    keyed_violations: o.keyed_violations,
                });
            }
            *b
        };
        let random = base(&mut self.random, two && spread);
        self.by_account = match (two && by_account, self.by_account) {
            (false, _) => Window::Off,
            // Everything acknowledged or on its way at the switch, in the same count as
            // `own_applied` (both start over with the topic).
            (true, Window::Off) => Window::Draining(o.acked + o.in_flight),
            (true, Window::Draining(t)) if o.own_applied >= t => Window::On(Base {
                applied: o.applied,
                violations: o.violations,
                keyed_violations: o.keyed_violations,
            }),
            (true, w) => w,
        };
        let control = match self.by_account {
            Window::On(b) => Some(b),
            _ => None,
        };
        if let Some(b) = random
            && !lesson.experiment.settled()
        {
            let (n, seen) = (
                o.violations.saturating_sub(b.violations),
                o.applied.saturating_sub(b.applied),
            );
            if n > 0 {
                lesson.experiment.set(
                    CaseState::Happened,
                    format!("{n} applied after a later transaction of the same account (keys: {}, {} members)", o.keys.label(), o.members),
                );
            } else {
                lesson.experiment.set(
                    CaseState::Running,
                    format!(
                        "{seen} records (keys: {}, {} members), none out of order yet: let the members fall behind for 2 s",
                        o.keys.label(),
                        o.members
                    ),
                );
            }
        }
        if let (Some(b), Some(c)) = (control, lesson.control.as_mut())
            && c.state != CaseState::Happened
        {
            // Only records keyed by account late after one keyed by account: a record sent
            // earlier under another key and applied late is not the control's (the window's
            // drain misses one whose count was not in yet).
            let (n, seen) = (
                o.keyed_violations.saturating_sub(b.keyed_violations),
                o.applied.saturating_sub(b.applied),
            );
            if n > 0 {
                c.set(
                    CaseState::Happened,
                    format!("{n} out of order with keys by account: ordering is broken"),
                );
            } else if seen >= CONTROL_RECORDS {
                c.set(
                    CaseState::DidNotHappen,
                    format!(
                        "0 out of order over {seen} records, keys by account, {} members",
                        o.members
                    ),
                );
            } else if !c.settled() {
                c.set(
                    CaseState::Running,
                    format!("{seen} of {CONTROL_RECORDS} records by account with {} members, 0 out of order", o.members),
                );
            }
        }
    }
}
