//! The guided lesson panel's checks. Each lesson has an experiment (the outcome the class should
//! see) and, where one exists, a control case (the same thing done right, where the outcome must
//! not happen). A case turns only from the data the server observes (ordering violations under
//! the keys and members in force, the naive calculator's counts, the invariant, the replay's
//! comparison, dead letters, the outage's recovery, the producer held by lag, the cluster's
//! leaders), never from a click or a timer. The tracker is fed an [`Observation`] a few times a
//! second and keeps what it saw, so a student who opens the page late sees the same checks.

use serde::{Deserialize, Serialize};

use crate::invariant::InvariantState;
use crate::naive::NaiveStatus;
use crate::ordering::KeyStrategy;
use crate::outage::{OutageState, OutageStatus};
use crate::replay::{ReplayState, ReplayStatus};

/// How a check kept from an earlier run begins its detail.
pub const BEFORE_RESTART: &str = "before the restart: ";

/// Records that must pass under the control keys with no violation before the control counts.
pub const CONTROL_RECORDS: u64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LessonId {
    Ordering,
    Delivery,
    Replay,
    Poison,
    Outage,
    BackPressure,
}

impl LessonId {
    pub const ALL: [LessonId; 6] = [
        LessonId::Ordering,
        LessonId::Delivery,
        LessonId::Replay,
        LessonId::Poison,
        LessonId::Outage,
        LessonId::BackPressure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LessonId::Ordering => "ordering",
            LessonId::Delivery => "delivery",
            LessonId::Replay => "replay",
            LessonId::Poison => "poison",
            LessonId::Outage => "outage",
            LessonId::BackPressure => "back_pressure",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            LessonId::Ordering => "1 · Keys decide ordering",
            LessonId::Delivery => "2 · Committing offsets: at-most-once, at-least-once",
            LessonId::Replay => "3 · Balances are a function of the log",
            LessonId::Poison => "4 · Poison pills go to a dead-letter topic",
            LessonId::Outage => "5 · The broker goes away",
            LessonId::BackPressure => "6 · Back-pressure",
        }
    }

    /// What the lesson is about, for the class.
    pub fn explain(self) -> &'static str {
        match self {
            LessonId::Ordering => {
                "Kafka keeps order within a partition only. Keyed by account, all of an account's transactions go to one partition and one consumer, in order. With random keys (or none) they spread over partitions read by different members, and a later transaction can be applied before an earlier one."
            }
            LessonId::Delivery => {
                "A consumer that saves its results and commits its offsets as two separate steps can crash between them. Commit first and the batch is lost (at-most-once); save first and it is counted twice (at-least-once). The exact calculator keeps its balances and the offsets they cover as one snapshot, so a crash costs it nothing."
            }
            LessonId::Replay => {
                "The topic is the source of truth: a brand-new consumer group that reads it from the first offset computes exactly the balances the live calculator holds."
            }
            LessonId::Poison => {
                "Anyone can write to a topic. A record the calculator cannot apply (not JSON, wrong types, an unknown type, a negative amount, too large, a duplicate) is set aside in a dead-letter topic with the reason, and the consumer goes on."
            }
            LessonId::Outage => {
                "With acks=all and an idempotent producer, a broker that disappears costs time, not data: sends wait and retry, the broker drops retries it already wrote. On a 3-broker cluster the partitions a dead broker led get new leaders from their in-sync replicas."
            }
            LessonId::BackPressure => {
                "At full speed the producer outruns the calculator and lag grows. A maximum lag makes the producer wait for the consumer instead."
            }
        }
    }

    /// What the presenter does, in order, and how long each step takes (at 2 tx/s, the
    /// default, and at 20 tx/s).
    pub fn steps(self) -> &'static [&'static str] {
        match self {
            LessonId::Ordering => &[
                "Add a member: the broker rebalances, two members share the six partitions (a few seconds).",
                "Keys by account (control): it turns once 300 records pass with none out of order, 150 s at 2 tx/s, 15 s at 20 tx/s.",
                "Random keys, then let the members fall behind for 2 s: as they catch up, an account's later transactions are applied first and the outcome turns (a few seconds).",
            ],
            LessonId::Delivery => &[
                "Start the naive consumer: it reads beside the exact calculator.",
                "Crash it between its two steps: at at-least-once it reads its last batch again, records counted twice (seconds, with records flowing).",
                "Switch to at-most-once and crash it again: that batch is lost. Each outcome is shown on its own.",
                "The control turns once the exact calculator applied everything acknowledged by the crash, each once (seconds). Stop the naive consumer when done.",
            ],
            LessonId::Replay => &[
                "Rebuild from the beginning: a new group reads the topic from its first offset; a classroom topic takes about a second, so watch the result line, not the group.",
                "The outcome turns when its balances equal the live calculator's, account by account.",
            ],
            LessonId::Poison => &[
                "Inject one of each kind: six records land in the dead-letter topic with their reasons within a second.",
                "The control turns once the calculator has applied more records after them (generation running: a few seconds) and the invariant holds.",
            ],
            LessonId::Outage => &[
                "Stop the broker for 10 s (only where cashflow runs the broker): generation holds while it is away.",
                "It comes back: every transaction acknowledged is applied exactly once, and the outcome turns (about 15–20 s in all).",
                "On three nodes (cashflow --local-brokers 3): stop node 2; the partitions it led get new leaders from their in-sync replicas, generation goes on, and the outcome turns within seconds. A second node cannot be stopped meanwhile. Start node 2: it rejoins every partition's in-sync replicas.",
            ],
            LessonId::BackPressure => &[
                "Max lag 100, and pause the calculator: the producer holds once 100 records are behind, 50 s at 2 tx/s, 5 s at 20 tx/s.",
                "Resume the calculator: the lag drains and the producer goes on; the outcome turns. Then Max lag off.",
            ],
        }
    }

    /// What to watch while it runs.
    pub fn watch(self) -> &'static str {
        match self {
            LessonId::Ordering => {
                "The ordering line above the topic lanes; the topic lanes' owners (M1, M2). On a fast broker two members that keep up rarely disagree: let them fall behind for 2 s and catch up."
            }
            LessonId::Delivery => {
                "The delivery panel: records lost or read twice, and the naive balances beside the exact ones; the invariant line stays ✓."
            }
            LessonId::Replay => {
                "The replay line: records read, then its balances against the live ones (the replay's group shows in the groups panel only while it reads)."
            }
            LessonId::Poison => {
                "The dead-letter panel: each record with its reason and where it came from; the balances and the invariant."
            }
            LessonId::Outage => {
                "The broker badge, the generator line (held), then the outage line; on three nodes the node rows, and the leaders (L) and in-sync replicas in the topic lanes."
            }
            LessonId::BackPressure => {
                "The calculator's lag in the topic lanes and the generator line (held: the calculator is behind)."
            }
        }
    }

    /// The control case, if the lesson has one.
    pub fn control(self) -> Option<&'static str> {
        match self {
            LessonId::Ordering => Some("keys by account, two members: nothing out of order"),
            LessonId::Delivery => Some("the exact calculator: nothing lost, nothing twice"),
            LessonId::Poison => Some("the consumer goes on and the invariant holds"),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Its conditions have not been met yet.
    #[default]
    NotRun,
    /// Its conditions hold; no outcome yet.
    Running,
    /// The outcome happened (in the data).
    Happened,
    /// The conditions held long enough and the outcome did not happen.
    DidNotHappen,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub state: CaseState,
    /// What the data showed.
    pub detail: String,
}

impl Case {
    fn set(&mut self, state: CaseState, detail: String) {
        self.state = state;
        self.detail = detail;
    }

    fn settled(&self) -> bool {
        matches!(self.state, CaseState::Happened | CaseState::DidNotHappen)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessonStatus {
    pub id: LessonId,
    pub experiment: Case,
    pub control: Option<Case>,
}

impl LessonStatus {
    /// The experiment's outcome happened and the control's (if any) did not.
    pub fn done(&self) -> bool {
        self.experiment.state == CaseState::Happened
            && self
                .control
                .as_ref()
                .is_none_or(|c| c.state == CaseState::DidNotHappen)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessonsStatus {
    pub lessons: Vec<LessonStatus>,
}

impl Default for LessonsStatus {
    fn default() -> Self {
        LessonsStatus {
            lessons: LessonId::ALL
                .iter()
                .map(|id| LessonStatus {
                    id: *id,
                    experiment: Case::default(),
                    control: id.control().map(|_| Case::default()),
                })
                .collect(),
        }
    }
}

impl LessonsStatus {
    pub fn get(&self, id: LessonId) -> Option<&LessonStatus> {
        self.lessons.iter().find(|l| l.id == id)
    }

    fn get_mut(&mut self, id: LessonId) -> &mut LessonStatus {
        let i = self.lessons.iter().position(|l| l.id == id).unwrap_or(0);
        &mut self.lessons[i]
    }
}

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

/// Where a condition began: the counters then.
#[derive(Clone, Copy, Debug, Default)]
struct Base {
    applied: u64,
    violations: u64,
    keyed_violations: u64,
}

/// The control's window: it opens once the records produced before the switch to keys by
/// account are applied, so that it counts records made under keys by account. Counters
/// only grow within one tracker: a re-created topic starts a new tracker (the hub's epoch).
#[derive(Clone, Copy, Debug, Default)]
enum Window {
    #[default]
    Off,
    Draining(u64),
    On(Base),
}

/// Keeps what each lesson's data showed.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    status: LessonsStatus,
    random: Option<Base>,
    by_account: Window,
    /// Dead letters when first observed, and applied when a new dead letter was seen.
    dead_letters: Option<u64>,
    after_poison: Option<u64>,
    /// A broker of the cluster was seen missing.
    broker_lost: bool,
    /// Acknowledged records when the naive calculator first crashed, when the first poison
    /// was seen and when a broker went missing: the exact calculator must apply as many.
    acked_at_crash: Option<u64>,
    acked_at_poison: Option<u64>,
    acked_at_loss: Option<u64>,
    /// Observations in a row with the invariant broken: a control turns ⚠ only once it has
    /// stayed broken for [`BROKEN_FOR`] of them, not on a moment's reading.
    broken_for: u32,
}

/// Observations (four a second) the invariant must stay broken to count.
pub const BROKEN_FOR: u32 = 8;

/// Whether the exact calculator has applied every transaction acknowledged up to `target`,
/// and no account's nets disagree. (Under load the invariant is "catching up" most of the
/// time: records acknowledged a moment ago are on their way.)
fn caught_up(o: &Observation, target: u64) -> bool {
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
        self.broken_for = if o.invariant == InvariantState::Broken {
            self.broken_for.saturating_add(1)
        } else {
            0
        };
        self.ordering(o);
        self.delivery(o);
        self.replay(o);
        self.poison(o);
        self.outage(o);
        self.back_pressure(o);
        before != self.status
    }

    fn ordering(&mut self, o: &Observation) {
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
        let lesson = self.status.get_mut(LessonId::Ordering);
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

    fn delivery(&mut self, o: &Observation) {
        let n = &o.naive;
        let lesson = self.status.get_mut(LessonId::Delivery);
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
        let broken = self.broken_for >= BROKEN_FOR;
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

    fn replay(&mut self, o: &Observation) {
        let r = &o.replay;
        let lesson = self.status.get_mut(LessonId::Replay);
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

    fn poison(&mut self, o: &Observation) {
        let base = *self.dead_letters.get_or_insert(o.dead_lettered);
        let lesson = self.status.get_mut(LessonId::Poison);
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
        let broken = self.broken_for >= BROKEN_FOR;
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

    fn outage(&mut self, o: &Observation) {
        let lesson = self.status.get_mut(LessonId::Outage);
        match o.outage.state {
            OutageState::Recovered => {
                return lesson.experiment.set(
                    CaseState::Happened,
                    format!(
                        "broker down {} s; recovered {:.1} s after it came back; {} lost, {} written twice",
                        o.outage.seconds,
                        o.outage.recovery_ms as f64 / 1000.0,
                        o.outage.failed,
                        o.outage.duplicates
                    ),
                );
            }
            OutageState::Failed => {
                return lesson
                    .experiment
                    .set(CaseState::DidNotHappen, o.outage.describe());
            }
            OutageState::Down | OutageState::Recovering => {
                return lesson
                    .experiment
                    .set(CaseState::Running, o.outage.describe());
            }
            OutageState::Idle => {}
        }
        // On a cluster: a broker missing while every partition still has a leader, then the
        // invariant holding.
        if o.brokers > 0 && o.brokers < o.replicas && o.all_led {
            self.broker_lost = true;
        }
        if self.broker_lost && lesson.experiment.state != CaseState::Happened {
            let target = *self.acked_at_loss.get_or_insert(o.acked);
            if caught_up(o, target) && o.acked > target {
                lesson.experiment.set(
                    CaseState::Happened,
                    format!(
                        "a broker went away: every partition kept a leader among {} brokers and every acknowledged transaction was applied once",
                        o.brokers
                    ),
                );
            } else {
                lesson.experiment.set(
                    CaseState::Running,
                    "a broker went away; leaders moved; waiting for the invariant".into(),
                );
            }
        }
    }

    fn back_pressure(&mut self, o: &Observation) {
        let lesson = self.status.get_mut(LessonId::BackPressure);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;
    use crate::naive::NaiveState;

    fn obs() -> Observation {
        Observation {
            members: 1,
            invariant: InvariantState::Holds,
            ..Observation::default()
        }
    }

    fn state(t: &Tracker, id: LessonId) -> (CaseState, Option<CaseState>) {
        let l = t.status().get(id).unwrap();
        (l.experiment.state, l.control.as_ref().map(|c| c.state))
    }

    #[test]
    fn ordering_turns_only_under_its_conditions() {
        let mut t = Tracker::default();
        let mut o = obs();
        // Violations with one member and random keys do not count (the condition is 2 members).
        o.keys = KeyStrategy::Random;
        o.violations = 5;
        t.observe(&o);
        assert_eq!(
            state(&t, LessonId::Ordering),
            (CaseState::NotRun, Some(CaseState::NotRun))
        );
        // Control: by account, two members, 300 records, none out of order; it opens once what
        // was acknowledged at the switch is applied.
        o.keys = KeyStrategy::ByAccount;
        o.members = 2;
        (o.acked, o.in_flight) = (8, 2);
        t.observe(&o);
        o.violations = 6; // a random-keyed record still in flight
        o.applied = 200;
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Ordering).1, Some(CaseState::NotRun));
        o.own_applied = 10;
        o.applied = 0;
        t.observe(&o);
        o.applied = 299;
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Ordering).1, Some(CaseState::Running));
        o.applied = 300;
        t.observe(&o);
        assert_eq!(
            state(&t, LessonId::Ordering).1,
            Some(CaseState::DidNotHappen)
        );
        // Experiment: random keys; the counter moves only then.
        o.keys = KeyStrategy::Random;
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Ordering).0, CaseState::Running);
        o.violations = 8;
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Ordering).0, CaseState::Happened);
        assert!(t.status().get(LessonId::Ordering).unwrap().done());
        // Back to keys by account: a random-keyed record applied late (its count missed by the
        // drain) does not turn the control; a record keyed by account late after another
        // keyed by account does.
        o.keys = KeyStrategy::ByAccount;
        t.observe(&o);
        t.observe(&o);
        o.violations = 9;
        o.applied = 700;
        t.observe(&o);
        assert_eq!(
            state(&t, LessonId::Ordering).1,
            Some(CaseState::DidNotHappen)
        );
        assert!(t.status().get(LessonId::Ordering).unwrap().done());
        o.violations = 10;
        o.keyed_violations = 1;
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Ordering).1, Some(CaseState::Happened));
        assert!(!t.status().get(LessonId::Ordering).unwrap().done());
    }

    #[test]
    fn delivery_needs_a_crash_that_cost_something_and_the_exact_calculator_intact() {
        let mut t = Tracker::default();
        let mut o = obs();
        o.naive.state = NaiveState::Running;
        t.observe(&o);
        assert_eq!(
            state(&t, LessonId::Delivery),
            (CaseState::Running, Some(CaseState::NotRun))
        );
        o.naive.crashes = 1;
        o.naive.doubled = 12;
        o.invariant = InvariantState::CatchingUp;
        t.observe(&o);
        assert_eq!(
            state(&t, LessonId::Delivery).0,
            CaseState::Running,
            "balances not compared yet"
        );
        o.naive.differing_accounts = 3;
        o.naive.net_difference = Money::from_minor(1234);
        // A fresh lesson whose crash came after 50 acknowledged transactions.
        let mut t = Tracker::default();
        o.acked = 50;
        o.own_applied = 49;
        t.observe(&o);
        assert_eq!(
            state(&t, LessonId::Delivery).1,
            Some(CaseState::NotRun),
            "one not applied yet"
        );
        o.own_applied = 50;
        t.observe(&o);
        assert_eq!(
            state(&t, LessonId::Delivery),
            (CaseState::Happened, Some(CaseState::DidNotHappen))
        );
        assert!(
            t.status()
                .get(LessonId::Delivery)
                .unwrap()
                .experiment
                .detail
                .contains("12 read twice")
        );
    }

    #[test]
    fn a_moments_broken_reading_does_not_turn_a_control() {
        let mut t = Tracker::default();
        let mut o = obs();
        o.naive.crashes = 1;
        o.acked = 10;
        o.invariant = InvariantState::Broken;
        for _ in 0..BROKEN_FOR - 1 {
            t.observe(&o);
        }
        assert_eq!(state(&t, LessonId::Delivery).1, Some(CaseState::NotRun));
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Delivery).1, Some(CaseState::Happened));
    }

    #[test]
    fn poison_replay_outage_and_back_pressure_follow_their_data() {
        let mut t = Tracker::default();
        let mut o = obs();
        o.dead_lettered = 2; // before the lesson: not counted
        t.observe(&o);
        assert_eq!(
            state(&t, LessonId::Poison),
            (CaseState::NotRun, Some(CaseState::NotRun))
        );
        o.dead_lettered = 8;
        o.applied = 100;
        t.observe(&o);
        assert_eq!(
            state(&t, LessonId::Poison),
            (CaseState::Happened, Some(CaseState::Running))
        );
        o.applied = 101;
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Poison).1, Some(CaseState::DidNotHappen));

        o.replay.state = ReplayState::Running;
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Replay).0, CaseState::Running);
        o.replay.state = ReplayState::Converged;
        t.observe(&o);
        assert!(t.status().get(LessonId::Replay).unwrap().done());

        o.outage.state = OutageState::Down;
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Outage).0, CaseState::Running);
        o.outage.state = OutageState::Recovered;
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Outage).0, CaseState::Happened);

        o.max_lag = Some(100);
        t.observe(&o);
        assert_eq!(state(&t, LessonId::BackPressure).0, CaseState::Running);
        o.held_by_lag = true;
        t.observe(&o);
        assert_eq!(state(&t, LessonId::BackPressure).0, CaseState::Happened);
    }

    #[test]
    fn a_cluster_losing_a_broker_counts_once_the_invariant_holds() {
        let mut t = Tracker::default();
        let mut o = obs();
        (o.brokers, o.replicas, o.all_led) = (3, 3, true);
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Outage).0, CaseState::NotRun);
        o.brokers = 2;
        o.acked = 10;
        o.invariant = InvariantState::CatchingUp;
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Outage).0, CaseState::Running);
        // Delivered and applied beyond what was acknowledged when the broker went.
        o.brokers = 3;
        (o.acked, o.own_applied) = (20, 20);
        t.observe(&o);
        assert_eq!(state(&t, LessonId::Outage).0, CaseState::Happened);
    }
}

#[cfg(test)]
mod resumed_tests {
    use super::*;

    #[test]
    fn settled_checks_come_back_marked_and_running_ones_start_over() {
        let mut kept = LessonsStatus::default();
        for l in &mut kept.lessons {
            match l.id {
                LessonId::Poison => l
                    .experiment
                    .set(CaseState::Happened, "6 dead letters".into()),
                LessonId::Ordering => {
                    l.experiment.set(CaseState::Running, "120 records".into());
                    if let Some(c) = l.control.as_mut() {
                        c.set(CaseState::DidNotHappen, "0 out of order".into());
                    }
                }
                _ => {}
            }
        }
        let t = Tracker::resumed(kept);
        let s = t.status();
        let poison = s.get(LessonId::Poison).expect("poison");
        assert_eq!(poison.experiment.state, CaseState::Happened);
        assert_eq!(
            poison.experiment.detail,
            "before the restart: 6 dead letters"
        );
        let ordering = s.get(LessonId::Ordering).expect("ordering");
        assert_eq!(ordering.experiment, Case::default());
        assert_eq!(
            ordering.control.as_ref().map(|c| c.state),
            Some(CaseState::DidNotHappen)
        );
        // Resumed twice (two restarts): marked once.
        let again = Tracker::resumed(s.clone());
        assert_eq!(
            again
                .status()
                .get(LessonId::Poison)
                .map(|l| l.experiment.detail.as_str()),
            Some("before the restart: 6 dead letters")
        );
    }
}
