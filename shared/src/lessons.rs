//! The guided lesson panel's checks. Each lesson has an experiment (the outcome the class should
//! see) and, where one exists, a control case (the same thing done right, where the outcome must
//! not happen). A case turns only from the data the server observes (ordering violations under
//! the keys and members in force, the naive calculator's counts, the invariant, the replay's
//! comparison, dead letters, the outage's recovery, the producer held by lag, the cluster's
//! leaders), never from a click or a timer. The tracker is fed an [`Observation`] a few times a
//! second and keeps what it saw, so a student who opens the page late sees the same checks.
//!
//! Each lesson is a module of its own: its texts ([`Text`]) and its [`Check`], beside each
//! other; [`LESSONS`] lists them in the panel's order. A new lesson is a new module, a variant
//! of [`LessonId`] and a row of [`LESSONS`].

use serde::{Deserialize, Serialize};

mod back_pressure;
mod delivery;
mod ordering;
mod outage;
mod poison;
mod replay;
mod status;
mod tracker;

pub use status::{Case, CaseState, LessonStatus, LessonsStatus};
use tracker::caught_up;
pub use tracker::{BROKEN_FOR, Observation, Tracker};

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

/// A lesson's texts, for the class (`GET /api/lessons` lists them as they are).
#[derive(Debug, Serialize)]
pub struct Text {
    /// Its name on the wire and in the page's test ids.
    pub name: &'static str,
    pub title: &'static str,
    /// What the lesson is about.
    pub explain: &'static str,
    /// What the presenter does, in order, and how long each step takes (at 2 tx/s, the
    /// default, and at 20 tx/s).
    pub steps: &'static [&'static str],
    /// What to watch while it runs.
    pub watch: &'static str,
    /// The control case, if the lesson has one.
    pub control: Option<&'static str>,
}

/// What a lesson's checks keep between observations, and how they turn.
pub trait Check: std::fmt::Debug + Send {
    /// Feeds one observation: sets `lesson`'s cases from the data.
    fn observe(&mut self, o: &Observation, lesson: &mut LessonStatus, seen: &Seen);
}

/// What every lesson's checks may use besides the observation: kept by the tracker.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// Observations in a row with the invariant broken: a control turns ⚠ only once it has
    /// stayed broken for [`BROKEN_FOR`] of them, not on a moment's reading.
    pub broken_for: u32,
}

/// A lesson: its id, its texts and a new instance of its checks.
pub struct Lesson {
    pub id: LessonId,
    pub text: &'static Text,
    new_check: fn() -> Box<dyn Check>,
}

/// Every lesson, in the panel's order (and in [`LessonId`]'s).
pub const LESSONS: [Lesson; 6] = [
    Lesson {
        id: LessonId::Ordering,
        text: &ordering::TEXT,
        new_check: || Box::<ordering::Ordering>::default(),
    },
    Lesson {
        id: LessonId::Delivery,
        text: &delivery::TEXT,
        new_check: || Box::<delivery::Delivery>::default(),
    },
    Lesson {
        id: LessonId::Replay,
        text: &replay::TEXT,
        new_check: || Box::<replay::Replay>::default(),
    },
    Lesson {
        id: LessonId::Poison,
        text: &poison::TEXT,
        new_check: || Box::<poison::Poison>::default(),
    },
    Lesson {
        id: LessonId::Outage,
        text: &outage::TEXT,
        new_check: || Box::<outage::Outage>::default(),
    },
    Lesson {
        id: LessonId::BackPressure,
        text: &back_pressure::TEXT,
        new_check: || Box::<back_pressure::BackPressure>::default(),
    },
];

/// The texts alone, taken from [`LESSONS`] at compile time: the page reads them without the
/// checks (a reference to the table would bring every check's code into the wasm).
const TEXTS: [&Text; LESSONS.len()] = {
    let mut texts = [LESSONS[0].text; LESSONS.len()];
    let mut i = 0;
    while i < LESSONS.len() {
        texts[i] = LESSONS[i].text;
        i += 1;
    }
    texts
};

impl LessonId {
    pub const ALL: [LessonId; LESSONS.len()] = {
        let mut all = [LessonId::Ordering; LESSONS.len()];
        let mut i = 0;
        while i < LESSONS.len() {
            all[i] = LESSONS[i].id;
            i += 1;
        }
        all
    };

    /// Its row of [`LESSONS`] (the variants are in the table's order: tested).
    pub fn lesson(self) -> &'static Lesson {
        &LESSONS[self as usize]
    }

    pub fn text(self) -> &'static Text {
        TEXTS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.text().name
    }

    pub fn title(self) -> &'static str {
        self.text().title
    }

    pub fn explain(self) -> &'static str {
        self.text().explain
    }

    pub fn steps(self) -> &'static [&'static str] {
        self.text().steps
    }

    pub fn watch(self) -> &'static str {
        self.text().watch
    }

    pub fn control(self) -> Option<&'static str> {
        self.text().control
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariant::InvariantState;
    use crate::money::Money;
    use crate::naive::NaiveState;
    use crate::ordering::KeyStrategy;
    use crate::outage::OutageState;
    use crate::replay::ReplayState;

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
    fn the_table_lists_every_lesson_once_in_the_ids_order() {
        for (i, l) in LESSONS.iter().enumerate() {
            assert_eq!(l.id as usize, i, "{:?} is row {i} of LESSONS", l.id);
            assert_eq!(l.id.lesson().text.name, l.text.name);
        }
        let names: std::collections::BTreeSet<_> = LESSONS.iter().map(|l| l.text.name).collect();
        assert_eq!(names.len(), LESSONS.len(), "lesson names are unique");
        for l in &LESSONS {
            // The name is the id's on the wire (the page's test ids use it).
            let wire = serde_json::to_string(&l.id).unwrap_or_default();
            assert_eq!(wire, format!("\"{}\"", l.text.name));
        }
    }

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
