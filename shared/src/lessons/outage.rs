//! Lesson 5, the broker goes away: the managed broker stopped and started (or one node of
//! three): every acknowledged transaction is applied once.

use super::{CaseState, Check, LessonStatus, Observation, Seen, Text, caught_up};
use crate::outage::OutageState;

pub const TEXT: Text = Text {
    name: "outage",
    title: "5 · The broker goes away",
    explain: "With acks=all and an idempotent producer, a broker that disappears costs time, not data: sends wait and retry, the broker drops retries it already wrote. On a 3-broker cluster the partitions a dead broker led get new leaders from their in-sync replicas.",
    steps: &[
        "Stop the broker for 10 s (only where cashflow runs the broker): generation holds while it is away.",
        "It comes back: every transaction acknowledged is applied exactly once, and the outcome turns (about 15–20 s in all).",
        "On three nodes (cashflow --local-brokers 3): stop node 2; the partitions it led get new leaders from their in-sync replicas, generation goes on, and the outcome turns within seconds. A second node cannot be stopped meanwhile. Start node 2: it rejoins every partition's in-sync replicas.",
    ],
    watch: "The broker badge, the generator line (held), then the outage line; on three nodes the node rows, and the leaders (L) and in-sync replicas in the topic lanes.",
    control: None,
};

#[derive(Debug, Default)]
pub struct Outage {
    /// A broker of the cluster was seen missing, and the records acknowledged then.
    broker_lost: bool,
    acked_at_loss: Option<u64>,
}

impl Check for Outage {
    fn observe(&mut self, o: &Observation, lesson: &mut LessonStatus, _seen: &Seen) {
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
}
