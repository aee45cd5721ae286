//! The hub: turns the shared state into frames for the page's viewers.
//!
//! It conflates: whatever the transaction rate, it reads the state at most 20 times a second,
//! diffs it against what it sent last, serialises one delta frame and broadcasts it to every
//! viewer. Its cost grows with viewers × frame size, not with transactions.
//!
//! Light on a classroom's Wi-Fi: a delta carries only what changed, the busy parts at a rate
//! the eye can use (account rows, the feed, the counters' and the group's patches: see the
//! constants), every figure exact. A part sent as changes is a change of what the hub sent
//! before (`Sent`), so a viewer joins through the hub's loop ([`Hub::join`]): its snapshot
//! is exactly what the deltas so far add up to, and its deltas start right after it. A viewer
//! that falls behind the broadcast joins again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cashflow_shared::AccountId;
use cashflow_shared::api::{AccountBalance, LogLine, TopicView};
use cashflow_shared::group::GroupStatus;
use cashflow_shared::protocol::{
    Counters, Delta, GeneratorStatus, MAX_SHOWN_ACCOUNTS, MAX_SHOWN_PARTITIONS, PartitionView,
    Sample, ServerMsg, StoreStatus,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

mod budget;
mod join;
mod look;
use budget::FrameBudget;
pub use join::Joined;
use look::Look;

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
    topic_view: crate::kafka::topic_view::TopicViews,
    /// The lessons with statuses of their own.
    lessons: Arc<crate::lessons::Lessons>,
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
        lessons: Arc<crate::lessons::Lessons>,
        topic_view: crate::kafka::topic_view::TopicViews,
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
            lessons,
            prefix: Arc::from(prefix),
        }
    }

    /// Chooses the accounts to show: the generator's (up to [`MAX_SHOWN_ACCOUNTS`]), then
    /// the most active.
    fn choose_shown(&self) -> Vec<AccountId> {
        let pinned = self
            .shared
            .producer()
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
        let p = self.shared.producer().counts();
        Counters {
            ledger,
            totals: self.shared.ledger().totals(),
            malformed: ledger.dead_lettered,
            sent: p.sent,
            delivered: p.delivered,
            failed: p.failed,
            applied_per_second,
            latency: self.shared.group().latency(),
            invariant: self.shared.invariant(),
            ordering: self.shared.ledger().ordering(),
        }
    }

    /// The topic view for the page (`None` before the broker first answered).
    fn topic_view(&self) -> Option<TopicView> {
        let v = self.topic_view.borrow().clone();
        (v.taken_ms > 0).then(|| v.for_page(&self.prefix, MAX_SHOWN_PARTITIONS))
    }

    /// The parts sent whole when they change: into `delta` if they did, and into `sent`.
    fn whole_parts(&self, sent: &mut Sent, delta: &mut Delta) {
        delta.generator = self
            .shared
            .producer()
            .generator()
            .filter(|g| sent.generator.as_ref() != Some(g));
        if let Some(g) = &delta.generator {
            sent.generator = Some(g.clone());
        }
        delta.broker_reachable =
            Some(self.shared.health().reachable()).filter(|r| sent.reachable != Some(*r));
        if delta.broker_reachable.is_some() {
            sent.reachable = delta.broker_reachable;
        }
        delta.store = Some(self.store_status()).filter(|s| *s != sent.store);
        if let Some(s) = delta.store {
            sent.store = s;
        }
    }

    fn store_status(&self) -> StoreStatus {
        let s = self.shared.store().health();
        StoreStatus {
            restoring: s.restoring,
            percent: s.restore.as_ref().map_or(0, |r| r.percent.floor() as u8),
            recreated: s.recreated.saturating_sub(s.reset_by_presenter),
        }
    }

    /// Runs until cancelled, broadcasting at most [`FRAMES_PER_SECOND`] deltas a second: woken
    /// by the consumers' batches ([`Shared::changed`]), so a change goes out within a few ms
    /// at classroom rates, and looking every `IDLE_LOOK` otherwise.
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
        let mut sent = Sent {
            group: self.shared.group().status(),
            ..Sent::default()
        };
        let mut look = Look::new(&self, start);
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
                _ = tokio::time::sleep(IDLE_LOOK) => false,
            };
            let wait = budget.take(Instant::now()) + if woken { COALESCE } else { Duration::ZERO };
            if !wait.is_zero() {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            let delta = look.delta(&self, &mut sent, Instant::now());
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
    /// The charts' newest point sent, and its number in the history.
    sample: Option<(u64, Sample)>,
}
