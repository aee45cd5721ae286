//! The monitor: looks at the shared state four times a second and writes what follows from
//! it — the guided lessons' checks, a point of the charts' history each second, and, also each
//! second, whether another cashflow server shares the topic and whether the invariant's gap is
//! stuck. It is the one writer of those; the hub ([`crate::http::hub`]) only reads them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cashflow_shared::lessons::{LessonsStatus, Observation, Tracker};
use cashflow_shared::protocol::{MAX_CHARTED_ACCOUNTS, Sample};
use tokio_util::sync::CancellationToken;

use crate::kafka::topic_view::TopicViews;
use crate::state::acks::PromiseWriter;
use crate::state::feed::HistoryWriter;
use crate::state::lessons::Writer;
use crate::state::{Shared, now_ms};

/// How often the lessons' checks look (a steady four a second, whatever else happens).
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// How long the invariant's counts may differ with the whole topic read before it is broken.
const STUCK_AFTER: Duration = Duration::from_secs(10);
/// A sole member waiting out an outage owns nothing for a while: another server is only
/// concluded once the group's own rebalances have settled this long.
const SETTLED_MS: i64 = 5_000;

pub struct Monitor {
    shared: Arc<Shared>,
    topic_view: TopicViews,
    /// What the monitor alone writes: the charted history, what the invariant can promise,
    /// the lessons' checks.
    writers: Arc<MonitorWriters>,
}

/// The writing halves the monitor holds (kept across its restarts).
pub struct MonitorWriters {
    pub history: HistoryWriter,
    pub promise: PromiseWriter,
    pub checks: Writer<LessonsStatus>,
}

/// When the invariant's counts last changed while the whole topic was read.
type Differs = Option<(u64, u64, Instant)>;

impl Monitor {
    pub fn new(
        shared: Arc<Shared>,
        topic_view: TopicViews,
        writers: Arc<MonitorWriters>,
    ) -> Monitor {
        Monitor {
            shared,
            topic_view,
            writers,
        }
    }

    /// Runs until cancelled.
    pub async fn run(self, token: CancellationToken) {
        let mut looks = tokio::time::interval(LOOK_EVERY);
        looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // From the checks kept across a restart, if any (see `kept_settings`).
        let lessons = self.shared.lessons();
        let mut tracker = Tracker::resumed(lessons.checks().get());
        let mut epoch = lessons.epoch();
        let mut differs: Differs = None;
        // The last sample's time and the records applied then (for the applied rate).
        let mut sampled: Option<(Instant, u64)> = None;
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = looks.tick() => {}
            }
            let now = Instant::now();
            let mut wrote = false;
            if sampled.is_none_or(|(t, _)| now.duration_since(t) >= Duration::from_secs(1)) {
                self.sample(&mut sampled, now);
                self.notice_another_server();
                self.notice_lost_records(&mut differs);
                wrote = true;
            }
            if lessons.epoch() != epoch {
                // A reset started the checks over. Written here too: a look that began before
                // the reset may have written the old tracker's checks after the reset's.
                epoch = lessons.epoch();
                tracker = Tracker::default();
                self.writers.checks.set(tracker.status().clone());
                wrote = true;
            } else if tracker.observe(&self.observe()) {
                self.writers.checks.set(tracker.status().clone());
                wrote = true;
            }
            if wrote {
                self.shared.changed();
            }
        }
    }

    /// A point of the charts' history: the first accounts' balances and the applied rate
    /// since the last point.
    fn sample(&self, sampled: &mut Option<(Instant, u64)>, now: Instant) {
        let ledger = self.shared.ledger();
        let applied = ledger.stats().applied;
        let per_second = match *sampled {
            // (Applied drops to 0 when a re-created topic starts the balances afresh.)
            Some((t, before)) if now > t => {
                applied.saturating_sub(before) as f64 / now.duration_since(t).as_secs_f64()
            }
            _ => 0.0,
        };
        *sampled = Some((now, applied));
        self.writers.history.push(Sample {
            t_ms: now_ms(),
            balances: ledger.first_balances(MAX_CHARTED_ACCOUNTS as u32),
            applied_per_second: (per_second * 10.0).round() / 10.0,
        });
    }

    /// Once the calculator's own rebalances have settled for a while, some partitions are still
    /// not its members' and the broker lists a member of the group that is not one of them,
    /// another cashflow server has those partitions: the invariant cannot be checked from here
    /// any more. (Missing owners alone are not enough: a sole member waiting out a broker
    /// outage owns nothing for a while too.)
    fn notice_another_server(&self) {
        let partitions = self.shared.health().partitions() as usize;
        let ours = self.shared.group().status();
        let settled = ours
            .rebalances
            .last()
            .and_then(|r| r.ended_ms)
            .is_some_and(|t| now_ms() - t > SETTLED_MS);
        if partitions == 0 || !settled || self.shared.group().assigned().len() >= partitions {
            return;
        }
        let foreign = self
            .topic_view
            .borrow()
            .groups
            .iter()
            .find(|g| g.group == ours.group)
            .is_some_and(|g| {
                g.members
                    .iter()
                    .any(|m| !ours.members.iter().any(|o| o.member_id == m.member_id))
            });
        // Then the invariant is no longer checked here.
        if foreign && self.writers.promise.topic_shared() {
            self.shared.ledger().topic_shared_with_another_server();
        }
    }

    /// The invariant's counts differ, stay the same, and the calculator has read every
    /// partition to the end the broker reported: after [`STUCK_AFTER`] of that it is no longer
    /// lag but a record acknowledged and never applied (or the reverse), and the invariant says
    /// so. (While records flow, the counts change every second and this never fires.)
    fn notice_lost_records(&self, since: &mut Differs) {
        let view = self.topic_view.borrow().clone();
        let next = self.shared.ledger().next_offsets();
        // Only against ends the broker reported a moment ago: during an outage the last view
        // is stale (records acknowledged since are beyond its ends) and nothing can be fetched,
        // which is no loss.
        // (Unwatched, the view is refreshed every 5 s: at most about that old.)
        let fresh = view.error.is_none()
            && now_ms() - view.taken_ms < 8_000
            && self.shared.health().reachable();
        let read_all = view.taken_ms > 0
            && fresh
            && !self.shared.group().is_paused()
            && view
                .partitions
                .iter()
                .all(|p| next.get(&p.partition).copied().unwrap_or(0) >= p.end);
        let inv = self.shared.invariant();
        let same = since.is_some_and(|(a, b, _)| (a, b) == (inv.acked, inv.applied));
        let promise = &self.writers.promise;
        if !read_all || inv.lag == 0 {
            *since = None;
            promise.set_stuck(false);
        } else if !same {
            *since = Some((inv.acked, inv.applied, Instant::now()));
            promise.set_stuck(false);
        } else if since.is_some_and(|(_, _, t)| t.elapsed() >= STUCK_AFTER) {
            promise.set_stuck(true);
        }
    }

    /// What the guided lessons' checks are fed.
    fn observe(&self) -> Observation {
        let s = &self.shared;
        let g = s.producer().generator().unwrap_or_default();
        let v = self.topic_view.borrow().clone();
        let ledger = s.ledger().stats();
        let ordering = s.ledger().ordering();
        let invariant = s.invariant();
        let lessons = s.lessons();
        Observation {
            keys: g.keys,
            members: s.group().status().members.len(),
            applied: ledger.applied,
            violations: ordering.violations,
            keyed_violations: ordering.keyed_violations,
            invariant: invariant.state,
            acked: invariant.acked,
            own_applied: invariant.applied,
            in_flight: s.producer().counts().in_flight(),
            naive: lessons.naive().get(),
            replay: lessons.replay().get(),
            dead_lettered: ledger.dead_lettered,
            outage: lessons.outage().get(),
            brokers: v.brokers.len(),
            replicas: v
                .partitions
                .iter()
                .map(|p| p.replicas.len())
                .max()
                .unwrap_or(0),
            all_led: !v.partitions.is_empty() && v.partitions.iter().all(|p| p.leader >= 0),
            max_lag: g.max_lag,
            held_by_lag: g.held_by_lag,
        }
    }
}
