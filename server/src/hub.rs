//! The hub: turns the shared state into frames for the page's viewers.
//!
//! It conflates: whatever the transaction rate, it reads the state at most 20 times a second,
//! diffs it against what it sent last, serialises one delta frame and broadcasts it to every
//! viewer. Its cost grows with viewers × frame size, not with transactions. Frames carry
//! absolute values (balances, counters), so a viewer that missed some catches up with the
//! next snapshot, and a frame seen twice changes nothing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cashflow_shared::AccountId;
use cashflow_shared::api::TopicView;
use cashflow_shared::ledger::AccountState;
use cashflow_shared::protocol::{
    Counters, DELTA_LOG_LINES, Delta, GeneratorStatus, MAX_CHARTED_ACCOUNTS, MAX_SHOWN_ACCOUNTS,
    MAX_SHOWN_PARTITIONS, PartitionView, SNAPSHOT_LOG_LINES, Sample, ServerMsg, Snapshot,
    StoreStatus,
};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::state::{Shared, now_ms};

/// How long the invariant's counts may differ with the whole topic read before it is broken.
const STUCK_AFTER: Duration = Duration::from_secs(10);

/// Frames per second at most, per viewer (over a second; [`FRAME_BURST`] may come at once).
pub const FRAMES_PER_SECOND: u64 = 20;
/// Frames that may go out back to back after a quiet spell, so a change the logger and the
/// calculator make a few ms apart reaches the page without waiting for the next slot.
pub const FRAME_BURST: f64 = 3.0;
/// A frame goes out this soon after a consumer's change: the other consumer's change to the
/// same record, a moment later, usually rides along.
const COALESCE: Duration = Duration::from_millis(3);
/// How often the hub looks without being woken: what changes without a consumer's batch (the
/// broker's view, the producer's status, the lessons' clocks).
const IDLE_LOOK: Duration = Duration::from_millis(250);

/// The frame rate's token bucket: [`FRAMES_PER_SECOND`] a second, [`FRAME_BURST`] at once.
#[derive(Debug)]
struct FrameBudget {
    tokens: f64,
    at: Instant,
}

impl FrameBudget {
    fn new(now: Instant) -> Self {
        FrameBudget {
            tokens: FRAME_BURST,
            at: now,
        }
    }

    /// Takes one frame's token: how long to wait before it may go out.
    fn take(&mut self, now: Instant) -> Duration {
        let rate = FRAMES_PER_SECOND as f64;
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(FRAME_BURST);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }

    /// The frame was not sent after all (nothing had changed).
    fn give_back(&mut self) {
        self.tokens = (self.tokens + 1.0).min(FRAME_BURST);
    }
}
/// Frames buffered for all viewers together; a viewer further behind gets a snapshot instead.
pub const BROADCAST_CAPACITY: usize = 32;

#[derive(Clone)]
pub struct Hub {
    frames: broadcast::Sender<Arc<str>>,
    shared: Arc<Shared>,
    /// The accounts viewers are sent (at most [`MAX_SHOWN_ACCOUNTS`]), chosen by the hub's loop
    /// once a second; a new viewer's snapshot shows the same ones.
    shown: Arc<watch::Sender<Arc<[AccountId]>>>,
    topic_view: crate::topic_view::TopicViews,
    /// cashflow's group prefix: its groups are shown first.
    prefix: Arc<str>,
}

impl Hub {
    /// Open WebSocket connections: each holds one receiver of the frames.
    pub fn viewers(&self) -> usize {
        self.frames.receiver_count()
    }

    pub fn new(
        shared: Arc<Shared>,
        topic_view: crate::topic_view::TopicViews,
        prefix: &str,
    ) -> Hub {
        let (frames, _) = broadcast::channel(BROADCAST_CAPACITY);
        let shown = Arc::new(watch::Sender::new(Arc::from(Vec::new())));
        Hub {
            frames,
            shared,
            shown,
            topic_view,
            prefix: Arc::from(prefix),
        }
    }

    /// Chooses the accounts to show: the generator's (up to [`MAX_SHOWN_ACCOUNTS`]), then
    /// the most active.
    fn choose_shown(&self) -> Arc<[AccountId]> {
        let pinned = self
            .shared
            .generator()
            .map_or(0, |g| g.settings.accounts)
            .min(MAX_SHOWN_ACCOUNTS as u32);
        let shown = self
            .shared
            .ledger()
            .shown_accounts(pinned, MAX_SHOWN_ACCOUNTS);
        let shown: Arc<[AccountId]> = Arc::from(shown);
        self.shown.send_replace(shown.clone());
        shown
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.frames.subscribe()
    }

    fn counters(&self, applied_per_second: f64) -> Counters {
        let ledger = self.shared.ledger().stats();
        // Only the counters: the producer's stats also hold a map per account.
        let (sent, delivered, failed) = self
            .shared
            .with_producer(|p| (p.sent, p.delivered, p.failed));
        Counters {
            ledger,
            totals: self.shared.ledger().totals(),
            malformed: ledger.dead_lettered,
            sent,
            delivered,
            failed,
            applied_per_second,
            latency: self.shared.latency(),
            invariant: self.shared.invariant(),
            ordering: self.shared.ledger().ordering(),
        }
    }

    /// Once the calculator's own rebalances have settled for a while, some partitions are still
    /// not its members' and the broker lists a member of the group that is not one of them,
    /// another cashflow server has those partitions: the invariant cannot be checked from here
    /// any more. (Missing owners alone are not enough: a sole member waiting out a broker
    /// outage owns nothing for a while too.)
    fn notice_another_server(&self) {
        let partitions = self.shared.with_broker(|b| b.partitions) as usize;
        let ours = self.shared.group();
        let settled = ours
            .rebalances
            .last()
            .and_then(|r| r.ended_ms)
            .is_some_and(|t| now_ms() - t > 5_000);
        if partitions == 0 || !settled || self.shared.assigned().len() >= partitions {
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
        if foreign {
            self.shared.topic_shared_with_another_server();
        }
    }

    /// The invariant's counts differ, stay the same, and the calculator has read every
    /// partition to the end the broker reported: after [`STUCK_AFTER`] of that it is no longer
    /// lag but a record acknowledged and never applied (or the reverse), and the invariant says
    /// so. (While records flow, the counts change every second and this never fires.)
    fn notice_lost_records(&self, since: &mut Option<(u64, u64, Instant)>) {
        let view = self.topic_view.borrow().clone();
        let next = self.shared.ledger().next_offsets();
        // Only against ends the broker reported a moment ago: during an outage the last view
        // is stale (records acknowledged since are beyond its ends) and nothing can be fetched,
        // which is no loss.
        let fresh = view.error.is_none()
            && now_ms() - view.taken_ms < 5_000
            && self.shared.with_broker(|b| b.reachable);
        let read_all = view.taken_ms > 0
            && fresh
            && !self.shared.is_paused()
            && view
                .partitions
                .iter()
                .all(|p| next.get(&p.partition).copied().unwrap_or(0) >= p.end);
        let inv = self.shared.invariant();
        let same = since.is_some_and(|(a, b, _)| (a, b) == (inv.acked, inv.applied));
        if !read_all || inv.lag == 0 {
            *since = None;
            self.shared.set_invariant_stuck(false);
        } else if !same {
            *since = Some((inv.acked, inv.applied, Instant::now()));
            self.shared.set_invariant_stuck(false);
        } else if since.is_some_and(|(_, _, t)| t.elapsed() >= STUCK_AFTER) {
            self.shared.set_invariant_stuck(true);
        }
    }

    /// The topic view for the page (`None` before the broker first answered).
    fn topic_view(&self) -> Option<TopicView> {
        let v = self.topic_view.borrow().clone();
        (v.taken_ms > 0).then(|| v.for_page(&self.prefix, MAX_SHOWN_PARTITIONS))
    }

    /// What the guided lessons' checks are fed.
    /// (From this frame's `counters`, not computed again: the invariant walks every account.)
    fn observe(&self, c: &Counters) -> cashflow_shared::lessons::Observation {
        let g = self.shared.generator().unwrap_or_default();
        let v = self.topic_view.borrow().clone();
        cashflow_shared::lessons::Observation {
            keys: g.keys,
            members: self.shared.group().members.len(),
            applied: c.ledger.applied,
            violations: c.ordering.violations,
            keyed_violations: c.ordering.keyed_violations,
            invariant: c.invariant.state,
            acked: c.invariant.acked,
            own_applied: c.invariant.applied,
            in_flight: c.sent.saturating_sub(c.delivered + c.failed),
            naive: self.shared.naive.get(),
            replay: self.shared.replay.get(),
            dead_lettered: c.ledger.dead_lettered,
            outage: self.shared.outage.get(),
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

    /// The full state, for a new viewer or one that fell behind.
    pub fn snapshot(&self) -> ServerMsg {
        let shown = self.shown.borrow().clone();
        let accounts = self.shared.ledger().accounts_of(&shown);
        let (topic, opening_balance) = (
            self.shared.topic.clone(),
            self.shared.ledger().opening_balance(),
        );
        let history = self.shared.history();
        let aps = history.last().map(|s| s.applied_per_second).unwrap_or(0.0);
        let generator = self.shared.generator().unwrap_or_else(|| GeneratorStatus {
            running: false,
            rate: None,
            ..GeneratorStatus::default()
        });
        let partitions = self.shared.partition_views();
        let (broker_reachable, broker_embedded) =
            self.shared.with_broker(|b| (b.reachable, b.embedded));
        let store = self.store_status();
        ServerMsg::Snapshot(Box::new(Snapshot {
            topic,
            opening_balance,
            accounts,
            counters: self.counters(aps),
            generator,
            broker_reachable,
            broker_embedded,
            log: self.shared.recent(SNAPSHOT_LOG_LINES),
            history,
            partitions,
            store,
            topic_view: self.topic_view(),
            group: self.shared.group(),
            flow: self.shared.flow_all(),
            dead_letters: self.shared.dead_letters().0,
            replay: self.shared.replay.get(),
            naive: self.shared.naive.get(),
            outage: self.shared.outage.get(),
            lessons: self.shared.lessons.get(),
        }))
    }

    fn store_status(&self) -> StoreStatus {
        let s = self.shared.store();
        StoreStatus {
            restoring: s.restoring,
            percent: s.restore.as_ref().map_or(0, |r| r.percent.floor() as u8),
            recreated: s.recreated.saturating_sub(s.reset_by_presenter),
        }
    }

    /// Runs until cancelled, broadcasting at most [`FRAMES_PER_SECOND`] deltas a second: woken
    /// by the consumers' batches ([`Shared::changed`]), so a change goes out within a few ms
    /// at classroom rates, and looking every [`IDLE_LOOK`] otherwise.
    pub async fn run(self, token: CancellationToken) {
        let mut budget = FrameBudget::new(Instant::now());
        // The lessons' checks keep a steady four a second whatever wakes the hub.
        let lessons_every = Duration::from_millis(250);
        let mut next_lessons = Instant::now() + lessons_every;
        let mut sent_accounts: BTreeMap<AccountId, AccountState> = BTreeMap::new();
        let mut sent_generator: Option<GeneratorStatus> = None;
        let mut sent_reachable: Option<bool> = None;
        let mut sent_partitions: Vec<PartitionView> = Vec::new();
        let mut sent_store = StoreStatus::default();
        let mut sent_counters = Counters::default();
        let mut sent_group = self.shared.group();
        let mut topic_views = self.topic_view.clone();
        let mut flow_version = 0u64;
        let mut letters_version = self.shared.dead_letters().2;
        let mut replay_version = self.shared.replay.since(u64::MAX).map_or(0, |r| r.1);
        let mut naive_version = self.shared.naive.since(u64::MAX).map_or(0, |r| r.1);
        let mut outage_version = self.shared.outage.since(u64::MAX).map_or(0, |r| r.1);
        // From the checks kept across a restart, if any (see `kept_settings`).
        let mut lessons = cashflow_shared::lessons::Tracker::resumed(self.shared.lessons.get());
        let mut lessons_epoch = self.shared.lessons_epoch();
        let mut differs_since: Option<(u64, u64, Instant)> = None;
        let mut log_seq = 0u64;
        let mut last_sample = Instant::now();
        let mut shown = self.choose_shown();
        // (when, applied) over the last second, for the applied-per-second rate.
        let mut window: VecDeque<(Instant, u64)> = VecDeque::new();
        loop {
            let woken = tokio::select! {
                _ = token.cancelled() => return,
                _ = self.shared.changes() => true,
                _ = tokio::time::sleep(IDLE_LOOK.min(next_lessons.saturating_duration_since(Instant::now()))) => false,
            };
            let wait = budget.take(Instant::now()) + if woken { COALESCE } else { Duration::ZERO };
            if !wait.is_zero() {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            let now = Instant::now();
            let due = now.duration_since(last_sample) >= Duration::from_secs(1);
            let l = self.shared.ledger();
            // A new account is shown at once while there is room (else up to a second late).
            if due || (shown.len() < MAX_SHOWN_ACCOUNTS && l.account_count() > shown.len()) {
                shown = self.choose_shown();
            }
            if due {
                self.notice_another_server();
                self.notice_lost_records(&mut differs_since);
            }
            let dropped: Vec<AccountId> = sent_accounts
                .keys()
                .filter(|a| !shown.contains(a))
                .copied()
                .collect();
            for a in &dropped {
                sent_accounts.remove(a);
            }
            let changed = l.changed(&shown, &sent_accounts);
            let sample_balances = due.then(|| l.first_balances(MAX_CHARTED_ACCOUNTS as u32));
            let applied = l.stats().applied;
            for a in &changed {
                sent_accounts.insert(
                    a.account,
                    AccountState {
                        balance: a.balance,
                        count: a.count,
                    },
                );
            }
            window.push_back((now, applied));
            while window
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(1))
            {
                window.pop_front();
            }
            let aps = match (window.front(), window.back()) {
                (Some((t0, a0)), Some((t1, a1))) if t1 > t0 => {
                    // (Applied drops to 0 when a re-created topic starts the balances afresh.)
                    a1.saturating_sub(*a0) as f64 / t1.duration_since(*t0).as_secs_f64()
                }
                _ => 0.0,
            };
            let counters = self.counters((aps * 10.0).round() / 10.0);
            let sample = sample_balances.map(|balances| {
                last_sample = now;
                let s = Sample {
                    t_ms: now_ms(),
                    balances,
                    applied_per_second: counters.applied_per_second,
                };
                self.shared.push_sample(s.clone());
                s
            });
            let (log, newest) = self.shared.recent_since(log_seq, DELTA_LOG_LINES);
            log_seq = newest;
            let generator = self
                .shared
                .generator()
                .filter(|g| sent_generator.as_ref() != Some(g));
            if let Some(g) = &generator {
                sent_generator = Some(g.clone());
            }
            let reachable = Some(self.shared.with_broker(|b| b.reachable))
                .filter(|r| sent_reachable != Some(*r));
            if reachable.is_some() {
                sent_reachable = reachable;
            }
            let store = Some(self.store_status()).filter(|s| *s != sent_store);
            if let Some(s) = store {
                sent_store = s;
            }
            let partitions = Some(self.shared.partition_views()).filter(|p| *p != sent_partitions);
            if let Some(p) = &partitions {
                sent_partitions = p.clone();
            }
            let topic_view = match topic_views.has_changed() {
                Ok(true) => {
                    topic_views.mark_unchanged();
                    self.topic_view()
                }
                _ => None,
            };
            let group = Some(self.shared.group()).filter(|g| *g != sent_group);
            if let Some(g) = &group {
                sent_group = g.clone();
            }
            let (flow, v) = self.shared.flow_since(flow_version);
            flow_version = v;
            let dead_letters =
                self.shared
                    .dead_letters_since(letters_version)
                    .map(|(letters, v)| {
                        letters_version = v;
                        letters
                    });
            let replay = self.shared.replay.since(replay_version).map(|(r, v)| {
                replay_version = v;
                r
            });
            let naive = self.shared.naive.since(naive_version).map(|(n, v)| {
                naive_version = v;
                n
            });
            // The lessons' checks, four times a second.
            let lessons_due = now >= next_lessons;
            if lessons_due {
                next_lessons += lessons_every;
                if next_lessons <= now {
                    next_lessons = now + lessons_every;
                }
            }
            let mut restarted = false;
            if self.shared.lessons_epoch() != lessons_epoch {
                lessons_epoch = self.shared.lessons_epoch();
                lessons = cashflow_shared::lessons::Tracker::default();
                restarted = true;
            }
            let lessons = (restarted || (lessons_due && lessons.observe(&self.observe(&counters))))
                .then(|| {
                    let l = lessons.status().clone();
                    self.shared.lessons.set(l.clone());
                    l
                });
            let outage = self.shared.outage.since(outage_version).map(|(o, v)| {
                outage_version = v;
                o
            });
            let quiet = changed.is_empty()
                && naive.is_none()
                && outage.is_none()
                && lessons.is_none()
                && flow.is_empty()
                && dead_letters.is_none()
                && replay.is_none()
                && topic_view.is_none()
                && group.is_none()
                && dropped.is_empty()
                && partitions.is_none()
                && log.is_empty()
                && sample.is_none()
                && generator.is_none()
                && reachable.is_none()
                && store.is_none()
                && counters == sent_counters;
            sent_counters = counters;
            // A quiet look gives its frame's slot back; with no viewer the slot is spent all the
            // same, so the hub looks at most at the frame rate.
            if self.viewers() == 0 {
                continue;
            }
            if quiet {
                budget.give_back();
                continue;
            }
            let delta = Delta {
                accounts: changed,
                dropped,
                counters,
                log,
                sample,
                generator,
                broker_reachable: reachable,
                partitions,
                store,
                topic_view,
                group,
                flow,
                dead_letters,
                replay,
                naive,
                outage,
                lessons,
            };
            let _ = self
                .frames
                .send(ServerMsg::Delta(Box::new(delta)).to_json().into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_keep_to_their_rate_after_a_burst() {
        let t0 = Instant::now();
        let mut b = FrameBudget::new(t0);
        // After a quiet spell, three go out at once; the fourth waits one slot.
        for _ in 0..3 {
            assert_eq!(b.take(t0), Duration::ZERO);
        }
        let slot = Duration::from_millis(1000 / FRAMES_PER_SECOND);
        let wait = b.take(t0);
        assert!(
            wait > slot - Duration::from_millis(1) && wait <= slot,
            "{wait:?}"
        );
        // Woken without pause for a second: no more than the rate (and the burst) go out.
        let mut at = t0 + wait;
        let mut sent = 4;
        while at < t0 + Duration::from_secs(1) {
            at += b.take(at).max(Duration::from_millis(1));
            sent += 1;
        }
        assert!(sent <= FRAMES_PER_SECOND as usize + 4, "{sent}");
        // A frame not sent gives its slot back.
        let mut q = FrameBudget::new(t0);
        for _ in 0..10 {
            assert_eq!(q.take(t0), Duration::ZERO);
            q.give_back();
        }
    }
}
