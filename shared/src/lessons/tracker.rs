//! What the server sees of the demo a few times a second ([`Observation`]), and the
//! [`Tracker`] that turns it into every lesson's checks.

use super::{BEFORE_RESTART, Case, Check, LESSONS, LessonsStatus, Seen};
use crate::invariant::InvariantState;
use crate::naive::NaiveStatus;
use crate::ordering::KeyStrategy;
use crate::outage::OutageStatus;
use crate::replay::ReplayStatus;

/// What the server sees, a few times a second.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    pub keys: KeyStrategy,
    /// Members of the balance calculator's group.
    pub members: usize,
    pub applied: u64,
    pub violations: u64,
    /// Of them, records keyed by account late after one keyed by account too (the control's).
    pub keyed_violations: u64,
    pub invariant: InvariantState,
    /// The invariant's two sides: records of this run's producer acknowledged, and applied.
    pub acked: u64,
    pub own_applied: u64,
    /// Transactions sent and not yet acknowledged or failed.
    pub in_flight: u64,
    pub naive: NaiveStatus,
    pub replay: ReplayStatus,
    pub dead_lettered: u64,
    pub outage: OutageStatus,
    /// Brokers in the cluster now, the most replicas any partition has, and whether every
    /// partition has a leader (from the topic view; 0 brokers: not known yet).
    pub brokers: usize,
    pub replicas: usize,
    pub all_led: bool,
    pub max_lag: Option<u64>,
    pub held_by_lag: bool,
}

/// Keeps what each lesson's data showed.
#[derive(Debug)]
pub struct Tracker {
    status: LessonsStatus,
    /// Each lesson's checks, in [`LESSONS`]'s order.
    checks: Vec<Box<dyn Check>>,
    seen: Seen,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            status: LessonsStatus::default(),
            checks: LESSONS.iter().map(|l| (l.new_check)()).collect(),
            seen: Seen::default(),
        }
    }
}

/// Observations (four a second) the invariant must stay broken to count.
pub const BROKEN_FOR: u32 = 8;

/// Whether the exact calculator has applied every transaction acknowledged up to `target`,
/// and no account's nets disagree. (Under load the invariant is "catching up" most of the
/// time: records acknowledged a moment ago are on their way.)
pub(crate) fn caught_up(o: &Observation, target: u64) -> bool {
    o.own_applied >= target
        && matches!(
            o.invariant,
            InvariantState::Holds | InvariantState::CatchingUp
        )
}

impl Tracker {
    /// A tracker that starts from checks an earlier run settled (kept across a restart): a
    /// settled case comes back, marked as from before the restart; one under way starts over,
    /// since what it was counting went with the process.
    pub fn resumed(kept: LessonsStatus) -> Tracker {
        let mut t = Tracker::default();
        for l in kept.lessons {
            let now = t.status.get_mut(l.id);
            if now.id != l.id {
                continue;
            }
            let back = |c: Case| -> Case {
                if !c.settled() {
                    return Case::default();
                }
                let detail = match c.detail.strip_prefix(BEFORE_RESTART) {
                    Some(_) => c.detail,
                    None => format!("{BEFORE_RESTART}{}", c.detail),
                };
                Case { detail, ..c }
            };
            now.experiment = back(l.experiment);
            if let (Some(c), Some(kept)) = (now.control.as_mut(), l.control) {
                *c = back(kept);
            }
        }
        t
    }

    pub fn status(&self) -> &LessonsStatus {
        &self.status
    }

    /// Feeds one observation; returns whether any check changed.
    pub fn observe(&mut self, o: &Observation) -> bool {
        let before = self.status.clone();
        self.seen.broken_for = if o.invariant == InvariantState::Broken {
            self.seen.broken_for.saturating_add(1)
        } else {
            0
        };
        for (check, lesson) in self.checks.iter_mut().zip(LESSONS.iter()) {
            check.observe(o, self.status.get_mut(lesson.id), &self.seen);
        }
        before != self.status
    }
}
