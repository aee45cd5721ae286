//! The hub: turns the shared state into frames for the page's viewers.
//!
//! It conflates: whatever the transaction rate, it reads the state at most 20 times a second,
//! diffs it against what it sent last, serialises one delta frame and broadcasts it to every
//! viewer. Its cost grows with viewers × frame size, not with transactions.
//!
//! Light on a classroom's Wi-Fi: a delta carries only what changed, the busy parts at a rate
//! the eye can use (account rows, the feed, the counters' and the group's patches: see the
//! constants), every figure exact. A part sent as changes is a change of what the hub sent
//! before ([`Sent`]), so a viewer joins through the hub's loop ([`Hub::join`]): its snapshot
//! is exactly what the deltas so far add up to, and its deltas start right after it. A viewer
//! that falls behind the broadcast joins again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cashflow_shared::AccountId;
use cashflow_shared::api::{AccountBalance, LogLine, TopicView};
use cashflow_shared::dashboard::patch_topic_view;
use cashflow_shared::group::GroupStatus;
use cashflow_shared::patch;
use cashflow_shared::protocol::{
    AccountRow, Counters, Delta, GeneratorStatus, MAX_CHARTED_ACCOUNTS, MAX_SHOWN_ACCOUNTS,
    MAX_SHOWN_PARTITIONS, PartitionView, SNAPSHOT_LOG_LINES, Sample, SampleChange, ServerMsg,
    Snapshot, StoreStatus,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::state::{Shared, now_ms};

mod budget;
use budget::{Allowance, FrameBudget};

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
/// Account rows a second at most, over a burst of a full page of them: every change at
/// classroom rates; above, every shown account about four times a second (each figure exact
/// as of its frame). Most of a busy frame's bytes are these rows.
const ACCOUNT_ROWS_PER_SECOND: f64 = 400.0;
/// Log lines a second at most: the feed shows every record at classroom rates and the newest
/// few above (the log itself has them all).
const LOG_LINES_PER_SECOND: f64 = 8.0;
/// The counters' patch at most this often (the lessons' checks read them at every look).
const COUNTERS_EVERY: Duration = Duration::from_secs(1);
/// The group's patch at most this often (its members' record counts change with every batch).
const GROUP_EVERY: Duration = Duration::from_millis(500);
/// Viewers joining at once, queued for the hub's loop.
const JOINS_QUEUED: usize = 256;
/// How often the hub looks without being woken: what changes without a consumer's batch (the
/// broker's view, the producer's status, the lessons' clocks).
const IDLE_LOOK: Duration = Duration::from_millis(250);

/// Frames buffered for all viewers together; a viewer further behind gets a snapshot instead.
/// About 13 s of frames at the full rate (most are a few hundred bytes now): time for a slow
/// link to take in a snapshot before the frames after it overflow (and it is sent another).
pub const BROADCAST_CAPACITY: usize = 256;

#[derive(Clone)]
pub struct Hub {
    frames: broadcast::Sender<Arc<str>>,
    shared: Arc<Shared>,
    /// Viewers asking to join, answered by the loop (see [`Hub::join`]).
    joins: mpsc::Sender<oneshot::Sender<Joined>>,
    /// The other end, taken by [`Hub::run`].
    joins_rx: Arc<std::sync::Mutex<Option<mpsc::Receiver<oneshot::Sender<Joined>>>>>,
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
        let (joins, joins_rx) = mpsc::channel(JOINS_QUEUED);
        Hub {
            frames,
            shared,
            joins,
            joins_rx: Arc::new(std::sync::Mutex::new(Some(joins_rx))),
            topic_view,
            prefix: Arc::from(prefix),
        }
    }

    /// Chooses the accounts to show: the generator's (up to [`MAX_SHOWN_ACCOUNTS`]), then
    /// the most active.
    fn choose_shown(&self) -> Vec<AccountId> {
        let pinned = self
            .shared
            .generator()
            .map_or(0, |g| g.settings.accounts)
            .min(MAX_SHOWN_ACCOUNTS as u32);
        self.shared
            .ledger()
            .shown_accounts(pinned, MAX_SHOWN_ACCOUNTS)
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
        // (Unwatched, the view is refreshed every 5 s: at most about that old.)
        let fresh = view.error.is_none()
            && now_ms() - view.taken_ms < 8_000
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

    /// A new viewer, or one that fell behind: the snapshot of what the deltas so far add up
    /// to, and the deltas from there. Answered by the hub's loop, between two deltas, so none
    /// is missed or seen twice; `None` when the hub has stopped.
    pub async fn join(&self) -> Option<Joined> {
        let (reply, answer) = oneshot::channel();
        self.joins.send(reply).await.ok()?;
        answer.await.ok()
    }

    /// The snapshot of `sent`, with the parts that are read whole every time (they are sent
    /// whole when they change, so reading them fresh cannot leave a viewer behind).
    fn snapshot(&self, sent: &Sent) -> ServerMsg {
        let (broker_reachable, broker_managed) =
            self.shared.with_broker(|b| (b.reachable, b.managed));
        ServerMsg::Snapshot(Box::new(Snapshot {
            topic: self.shared.topic.clone(),
            opening_balance: self.shared.ledger().opening_balance(),
            accounts: sent.accounts.values().cloned().collect(),
            counters: sent.counters,
            generator: sent.generator.clone().unwrap_or_default(),
            broker_reachable: sent.reachable.unwrap_or(broker_reachable),
            broker_managed,
            log: sent.log.iter().cloned().collect(),
            history: self.shared.history(),
            partitions: sent.partitions.clone(),
            store: sent.store,
            topic_view: sent.topic_view.clone(),
            group: sent.group.clone(),
            flow: self.shared.flow_all(),
            dead_letters: self.shared.dead_letters().0,
            replay: self.shared.replay.get(),
            naive: self.shared.naive.get(),
            outage: self.shared.outage.get(),
            lessons: self.shared.lessons.get(),
        }))
    }

    /// Answers `first` and every other join waiting now with one snapshot. The parts sent whole
    /// when they change (the generator, the broker's reachability, the store) are brought up
    /// to date first, for every viewer: a new one then never starts from a setting older than
    /// the one in force (the others come within a second; they are not forced here, so joins
    /// cannot make busy frames more frequent).
    fn answer_joins(
        &self,
        first: oneshot::Sender<Joined>,
        joins: &mut mpsc::Receiver<oneshot::Sender<Joined>>,
        sent: &mut Sent,
    ) {
        let mut delta = Delta::default();
        self.whole_parts(sent, &mut delta);
        if !delta.is_empty() && self.viewers() > 0 {
            let _ = self
                .frames
                .send(ServerMsg::Delta(Box::new(delta)).to_json().into());
        }
        let snapshot: Arc<str> = self.snapshot(sent).to_json().into();
        let mut waiting = vec![first];
        while let Ok(j) = joins.try_recv() {
            waiting.push(j);
        }
        for reply in waiting {
            let _ = reply.send(Joined {
                snapshot: snapshot.clone(),
                frames: self.frames.subscribe(),
            });
        }
    }

    /// The parts sent whole when they change: into `delta` if they did, and into `sent`.
    fn whole_parts(&self, sent: &mut Sent, delta: &mut Delta) {
        delta.generator = self
            .shared
            .generator()
            .filter(|g| sent.generator.as_ref() != Some(g));
        if let Some(g) = &delta.generator {
            sent.generator = Some(g.clone());
        }
        delta.broker_reachable =
            Some(self.shared.with_broker(|b| b.reachable)).filter(|r| sent.reachable != Some(*r));
        if delta.broker_reachable.is_some() {
            sent.reachable = delta.broker_reachable;
        }
        delta.store = Some(self.store_status()).filter(|s| *s != sent.store);
        if let Some(s) = delta.store {
            sent.store = s;
        }
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
        let Some(mut joins) = self
            .joins_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let start = Instant::now();
        let mut budget = FrameBudget::new(start);
        let mut rows = Allowance::new(ACCOUNT_ROWS_PER_SECOND, MAX_SHOWN_ACCOUNTS as f64, start);
        let mut lines = Allowance::new(LOG_LINES_PER_SECOND, LOG_LINES_PER_SECOND, start);
        let mut counters_at: Option<Instant> = None;
        let mut group_at: Option<Instant> = None;
        // The lessons' checks keep a steady four a second whatever wakes the hub.
        let lessons_every = Duration::from_millis(250);
        let mut next_lessons = start + lessons_every;
        let mut sent = Sent {
            group: self.shared.group(),
            ..Sent::default()
        };
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
        let mut last_sample = start;
        let mut shown = self.choose_shown();
        // (when, applied) over the last second, for the applied-per-second rate.
        let mut window: VecDeque<(Instant, u64)> = VecDeque::new();
        // Joins wait for the first look: before it, `sent` is empty (a snapshot of nothing).
        let mut primed = false;
        loop {
            let woken = tokio::select! {
                _ = token.cancelled() => return,
                Some(j) = joins.recv(), if primed => {
                    self.answer_joins(j, &mut joins, &mut sent);
                    continue;
                }
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
            let mut delta = Delta::default();

            // The accounts and partitions, exact, at most ACCOUNT_ROWS_PER_SECOND rows a second.
            let changed = l.changed(&shown, &sent.accounts);
            if rows.take(changed.len() as f64, now) {
                delta.dropped = sent
                    .accounts
                    .keys()
                    .filter(|a| !shown.contains(a))
                    .copied()
                    .collect();
                for a in &delta.dropped {
                    sent.accounts.remove(a);
                }
                delta.accounts = changed.iter().map(AccountRow::from).collect();
                for a in changed {
                    sent.accounts.insert(a.account, a);
                }
                let partitions = self.shared.partition_views();
                let same_ids = partitions.len() == sent.partitions.len()
                    && partitions
                        .iter()
                        .zip(&sent.partitions)
                        .all(|(a, b)| a.partition == b.partition);
                if !same_ids {
                    delta.partitions = Some(partitions.clone());
                } else {
                    delta.partitions_changed = partitions
                        .iter()
                        .zip(&sent.partitions)
                        .filter(|(a, b)| a != b)
                        .map(|(a, _)| *a)
                        .collect();
                }
                sent.partitions = partitions;
            }

            let applied = l.stats().applied;
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
            if counters_at.is_none_or(|t| now.duration_since(t) >= COUNTERS_EVERY)
                && let Some(p) = patch::diff_of(&sent.counters, &counters)
            {
                delta.counters = Some(p);
                sent.counters = counters;
                counters_at = Some(now);
            }
            if due {
                last_sample = now;
                let s = Sample {
                    t_ms: now_ms(),
                    balances: l.first_balances(MAX_CHARTED_ACCOUNTS as u32),
                    applied_per_second: counters.applied_per_second,
                };
                delta.sample = Some(SampleChange::between(
                    self.shared.last_sample().as_ref(),
                    &s,
                ));
                self.shared.push_sample(s);
            }

            // The feed: every line at classroom rates, the newest few a second above.
            let room = lines.available(now).floor();
            if room >= 1.0 {
                let (log, newest) = self.shared.recent_since(log_seq, room as usize);
                log_seq = newest;
                lines.take(log.len() as f64, now);
                for line in log.iter().rev() {
                    sent.log.push_front(line.clone());
                }
                sent.log.truncate(SNAPSHOT_LOG_LINES);
                delta.log = log;
            }

            self.whole_parts(&mut sent, &mut delta);
            if let Ok(true) = topic_views.has_changed() {
                topic_views.mark_unchanged();
                let view = self.topic_view();
                delta.topic_view = patch::diff_of(
                    &without_lag_history(&sent.topic_view),
                    &without_lag_history(&view),
                );
                // The pages' rule, not the server's histories: a snapshot holds what they hold.
                if let Some(p) = &delta.topic_view {
                    patch_topic_view(&mut sent.topic_view, p);
                }
            }
            if group_at.is_none_or(|t| now.duration_since(t) >= GROUP_EVERY) {
                let group = self.shared.group();
                delta.group = patch::diff_of(&sent.group, &group);
                if delta.group.is_some() {
                    sent.group = group;
                    group_at = Some(now);
                }
            }
            let (flow, v) = self.shared.flow_since(flow_version);
            flow_version = v;
            delta.flow = flow;
            delta.dead_letters =
                self.shared
                    .dead_letters_since(letters_version)
                    .map(|(letters, v)| {
                        letters_version = v;
                        letters
                    });
            delta.replay = self.shared.replay.since(replay_version).map(|(r, v)| {
                replay_version = v;
                r
            });
            delta.naive = self.shared.naive.since(naive_version).map(|(n, v)| {
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
            delta.lessons = (restarted
                || (lessons_due && lessons.observe(&self.observe(&counters))))
            .then(|| {
                let l = lessons.status().clone();
                self.shared.lessons.set(l.clone());
                l
            });
            delta.outage = self.shared.outage.since(outage_version).map(|(o, v)| {
                outage_version = v;
                o
            });
            primed = true;
            // A quiet look gives its frame's slot back; with no viewer the slot is spent all the
            // same, so the hub looks at most at the frame rate.
            if self.viewers() == 0 {
                continue;
            }
            if delta.is_empty() {
                budget.give_back();
                continue;
            }
            let _ = self
                .frames
                .send(ServerMsg::Delta(Box::new(delta)).to_json().into());
        }
    }
}

/// A view as its patches compare it: the groups' lag histories grow on both sides alike.
fn without_lag_history(v: &Option<TopicView>) -> Option<TopicView> {
    v.clone().map(|mut v| {
        for g in &mut v.groups {
            g.lag_history.clear();
        }
        v
    })
}

/// A joined viewer's start: see [`Hub::join`].
pub struct Joined {
    pub snapshot: Arc<str>,
    pub frames: broadcast::Receiver<Arc<str>>,
}

/// What the viewers were sent of the parts that travel as changes: the base of the next
/// delta, and a new viewer's snapshot. A snapshot read fresh could be ahead of it, and a
/// change against the base would then never reach that viewer (a field changed and back).
#[derive(Default)]
struct Sent {
    accounts: BTreeMap<AccountId, AccountBalance>,
    counters: Counters,
    generator: Option<GeneratorStatus>,
    reachable: Option<bool>,
    partitions: Vec<PartitionView>,
    store: StoreStatus,
    group: GroupStatus,
    /// As of its last patch, lag histories included.
    topic_view: Option<TopicView>,
    /// Newest first, at most [`SNAPSHOT_LOG_LINES`].
    log: VecDeque<LogLine>,
}
