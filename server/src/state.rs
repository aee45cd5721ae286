//! State shared by the Kafka tasks and the HTTP server. Every collection here is bounded.
//!
//! No lock guard leaves this module: reads return copies, changes go through `with_*`
//! closures or domain verbs (the ledger's are in [`crate::ledger_store`]), so no caller holds
//! a lock across an `.await` or takes two at once.

use std::collections::BTreeMap;
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use cashflow_shared::api::{Balances, BrokerHealth, LogLine, ProducerStats, StoreHealth};
use cashflow_shared::flow::{Flow, FlowDot};
use cashflow_shared::group::{Group, GroupStatus};
use cashflow_shared::invariant::{AckedPartition, Acks, InvariantStatus};
use cashflow_shared::latency::{LatencySummary, LatencyWindow};
use cashflow_shared::poison::{DeadLetterLog, DeadLetterView};
use cashflow_shared::protocol::{
    GeneratorStatus, HISTORY_SAMPLES, MAX_SHOWN_PARTITIONS, PartitionView, Sample,
};
use cashflow_shared::replay::ReplayStatus;
use cashflow_shared::{AccountId, Ledger};

use crate::ledger_store::LedgerStore;

/// The producer's view of the accounts once the restore is done (`None` until then).
pub type RestoredView =
    tokio::sync::watch::Sender<Option<BTreeMap<AccountId, cashflow_shared::ledger::AccountState>>>;

/// Stops remembered (a consumer restarted by its supervisor stops too).
const STOPS_KEPT: usize = 32;

/// Lines kept in the recent-transactions feed.
pub const RECENT_CAPACITY: usize = 500;

pub struct Shared {
    pub topic: String,
    ledger: LedgerStore,
    /// Newest first, each with a sequence number so the hub sends only new ones.
    recent: Mutex<VecDeque<(u64, LogLine)>>,
    recent_seq: AtomicU64,
    producer: Mutex<ProducerStats>,
    generator: Mutex<Option<GeneratorStatus>>,
    /// Charted history, oldest first (written by the hub).
    history: Mutex<VecDeque<Sample>>,
    broker: Mutex<BrokerHealth>,
    /// The Kafka clients' latest error, which says why better than the broker watch's failed
    /// request does (e.g. "SASL authentication error" rather than "broker transport failure").
    client_error: Mutex<Option<String>>,
    /// The balance calculator's members: who owns which partition, and the rebalances.
    group: Mutex<Group>,
    /// The presenter stopped the calculator's fetching (its members stay in the group).
    paused: tokio::sync::watch::Sender<bool>,
    /// Produce → applied, over the last seconds.
    latency: Mutex<LatencyWindow>,
    /// Woken by the consumers' batches; the hub waits on it.
    changes: tokio::sync::Notify,
    /// The producer id written into every record this server produces: the one the state
    /// store names (so the invariant goes on across restarts), or a new one. Fixed once.
    producer_id: std::sync::OnceLock<String>,
    /// What this producer had acknowledged, per partition (the invariant's acknowledged side;
    /// the applied side is in the ledger, see [`cashflow_shared::invariant`]).
    acks: Mutex<Acks>,
    /// The real records the page animates, and how many of them wait to be applied (so the
    /// calculator takes the lock only while some do).
    flow: Mutex<Flow>,
    flow_waiting: AtomicU64,
    /// The replay lesson's latest run.
    pub replay: Versioned<ReplayStatus>,
    /// The delivery-semantics lesson's naive calculator.
    pub naive: Versioned<cashflow_shared::naive::NaiveStatus>,
    /// The outage lesson's latest outage.
    pub outage: Versioned<cashflow_shared::outage::OutageStatus>,
    /// The guided lessons' checks (the hub feeds them).
    pub lessons: Versioned<cashflow_shared::lessons::LessonsStatus>,
    /// Bumped by a reset of the demo: the hub starts its lesson tracker over.
    lessons_epoch: std::sync::atomic::AtomicU64,
    /// The newest records of the dead-letter topic, read back for the page.
    dead_letters: Mutex<DeadLetterLog>,
    /// Set by the hub while the calculator has read the whole topic for a while and the
    /// invariant's counts still differ.
    invariant_stuck: std::sync::atomic::AtomicBool,
    /// Cleared once another cashflow server is seen owning some partitions: the invariant
    /// cannot be checked from here after that.
    whole_topic: std::sync::atomic::AtomicBool,
    store: Mutex<StoreHealth>,
    /// Per partition, the newest snapshot known (read at restore or written): its slot and the
    /// offset it reflects.
    snapshot_marks: Mutex<BTreeMap<i32, (u8, i64)>>,
    /// What stopped, in order (the last [`STOPS_KEPT`]).
    stops: Mutex<VecDeque<String>>,
    /// Re-creations of the topic noticed while running: consumers move to its beginning.
    recreations: tokio::sync::watch::Sender<u32>,
    /// Supervised tasks that stopped and wait to be started again, with the reason.
    tasks_down: Mutex<BTreeMap<String, String>>,
}

// A panic while a lock was held leaves plain data behind, still consistent field by field:
// keep serving it rather than poisoning every later request.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(topic: String, group: &str, ledger: Ledger, broker: BrokerHealth) -> Self {
        Shared {
            topic,
            ledger: LedgerStore::new(ledger),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_CAPACITY)),
            recent_seq: AtomicU64::new(0),
            producer: Mutex::new(ProducerStats::default()),
            generator: Mutex::new(None),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_SAMPLES)),
            broker: Mutex::new(broker),
            client_error: Mutex::new(None),
            group: Mutex::new(Group::new(group)),
            paused: tokio::sync::watch::Sender::new(false),
            latency: Mutex::new(LatencyWindow::default()),
            changes: tokio::sync::Notify::new(),
            producer_id: std::sync::OnceLock::new(),
            acks: Mutex::new(Acks::default()),
            whole_topic: std::sync::atomic::AtomicBool::new(true),
            invariant_stuck: std::sync::atomic::AtomicBool::new(false),
            flow: Mutex::new(Flow::default()),
            flow_waiting: AtomicU64::new(0),
            dead_letters: Mutex::new(DeadLetterLog::default()),
            replay: Versioned::default(),
            naive: Versioned::default(),
            outage: Versioned::default(),
            lessons: Versioned::default(),
            lessons_epoch: Default::default(),
            store: Mutex::new(StoreHealth {
                restoring: true,
                ..StoreHealth::default()
            }),
            snapshot_marks: Mutex::new(BTreeMap::new()),
            tasks_down: Mutex::new(BTreeMap::new()),
            recreations: tokio::sync::watch::Sender::new(0),
            stops: Mutex::new(VecDeque::new()),
        }
    }

    /// `name` stopped (`Some(reason)`) or runs again (`None`).
    pub fn set_task_down(&self, name: &str, reason: Option<String>) {
        let mut t = lock(&self.tasks_down);
        match reason {
            Some(r) => t.insert(name.to_owned(), r),
            None => t.remove(name),
        };
    }

    pub fn tasks_down(&self) -> BTreeMap<String, String> {
        lock(&self.tasks_down).clone()
    }

    pub fn store(&self) -> StoreHealth {
        lock(&self.store).clone()
    }

    /// Changes the store's health (under its lock, for as long as `f` runs).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut StoreHealth) -> R) -> R {
        f(&mut lock(&self.store))
    }

    /// The newest snapshot of `partition` known: its slot and the offset it reflects.
    pub fn snapshot_mark(&self, partition: i32) -> Option<(u8, i64)> {
        lock(&self.snapshot_marks).get(&partition).copied()
    }

    /// A piece of the server stopped (at shutdown): the log of [`stops`](Self::stops).
    pub fn record_stop(&self, what: impl Into<String>) {
        let mut s = lock(&self.stops);
        if s.len() == STOPS_KEPT {
            s.pop_front();
        }
        s.push_back(what.into());
    }

    /// What stopped so far, in order.
    pub fn stops(&self) -> Vec<String> {
        lock(&self.stops).iter().cloned().collect()
    }

    /// The topic was deleted and created again (its offsets started over, e.g. by
    /// `kafka-topics --delete` while cashflow ran; the broker watch notices): its old balances
    /// would make every new record look applied already, so they are forgotten. The consumers
    /// move to the new topic's beginning (a record above a partition's next offset is caught up
    /// first), the snapshot writer writes the new topic's state over the old, and the producer's
    /// view starts from the opening balance. Said in the log, `/health` and on the page.
    pub fn start_afresh(&self, restored: &RestoredView, why: &str) {
        tracing::warn!(topic = %self.topic, "the topic was deleted and created again ({why}): balances start afresh");
        self.ledger.clear();
        self.clear_snapshot_marks();
        // The invariant starts over with the balances: the old topic's records are gone (the
        // ledger's side went with `clear`).
        lock(&self.acks).clear();
        self.with_producer(|p| p.delivered_by_account.clear());
        lock(&self.flow).clear();
        lock(&self.dead_letters).clear();
        self.flow_waiting.store(0, Ordering::Relaxed);
        self.with_store(|s| {
            s.recreated += 1;
            if s.resetting {
                // The presenter's own reset: no warning.
                s.reset_by_presenter += 1;
            } else {
                s.last_error = Some(format!(
                    "the topic was deleted and created again ({why}): balances started afresh"
                ));
            }
        });
        restored.send_replace(Some(BTreeMap::new()));
        // The lessons' counters start over with the balances: so do their checks.
        self.reset_lessons();
        self.recreations.send_modify(|n| *n += 1);
    }

    /// The lessons' checks start over (a reset of the demo).
    pub fn reset_lessons(&self) {
        self.lessons.set(Default::default());
        self.lessons_epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes with every [`reset_lessons`](Self::reset_lessons).
    pub fn lessons_epoch(&self) -> u64 {
        self.lessons_epoch.load(Ordering::Relaxed)
    }

    /// Tells when the topic is found re-created while running.
    pub fn recreations(&self) -> tokio::sync::watch::Receiver<u32> {
        self.recreations.subscribe()
    }

    /// Forgets every snapshot mark: the topic they were of is gone.
    pub fn clear_snapshot_marks(&self) {
        lock(&self.snapshot_marks).clear();
    }

    pub fn set_snapshot_mark(&self, partition: i32, slot: u8, next_offset: i64) {
        lock(&self.snapshot_marks).insert(partition, (slot, next_offset));
    }

    /// The balance calculator's ledger (its verbs take the lock themselves).
    pub fn ledger(&self) -> &LedgerStore {
        &self.ledger
    }

    /// Up to `limit` accounts with ids above `after`, and the totals over all.
    pub fn balances(&self, after: AccountId, limit: usize) -> Balances {
        let mut b = self.ledger().balances(after, limit);
        b.topic = self.topic.clone();
        b
    }

    /// Changes the calculator group's state (members, owners, timeline).
    pub fn with_group<R>(&self, f: impl FnOnce(&mut Group) -> R) -> R {
        f(&mut lock(&self.group))
    }

    /// The calculator group as the page shows it.
    pub fn group(&self) -> GroupStatus {
        let mut g = lock(&self.group);
        g.tick(now_ms());
        g.status()
    }

    /// Partitions some member of this server's balance calculator owns now.
    pub fn assigned(&self) -> BTreeSet<i32> {
        lock(&self.group).owners().into_keys().collect()
    }

    /// Stops (`true`) or resumes the calculator's fetching.
    pub fn set_paused(&self, paused: bool) {
        self.with_group(|g| g.set_paused(paused));
        self.paused.send_replace(paused);
    }

    pub fn paused(&self) -> tokio::sync::watch::Receiver<bool> {
        self.paused.subscribe()
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// The producer id this server writes (a new one if no restore named one).
    pub fn producer_id(&self) -> &str {
        match self.producer_id.get() {
            Some(id) => id,
            None => self.adopt_producer_id(None),
        }
    }

    /// Fixes the producer id, to `found` (the state store's) unless one is fixed already, and
    /// has the ledger count that producer's records as this server's.
    pub fn adopt_producer_id(&self, found: Option<String>) -> &str {
        let id = self.producer_id.get_or_init(|| {
            found.unwrap_or_else(|| format!("cashflow-{:016x}", rand::random::<u64>()))
        });
        self.ledger.count_as_own(id);
        id
    }

    /// A record of this server's producer is about to be sent (the invariant's in-flight).
    pub fn acks_sending(&self) {
        lock(&self.acks).sending();
    }

    /// A record that was to be sent was refused, or its delivery failed.
    pub fn acks_not_sent(&self) {
        lock(&self.acks).not_sent();
    }

    /// Kafka acknowledged this producer's record at (`partition`, `offset`) as librdkafka
    /// reports it. Returns the offset if it is real (see [`Acks::acked`]).
    pub fn acked(
        &self,
        partition: i32,
        offset: i64,
        account: cashflow_shared::AccountId,
        delta: cashflow_shared::Money,
    ) -> Option<i64> {
        lock(&self.acks).acked(partition, offset, account, delta)
    }

    /// Where a delivered record that is not counted lies (see [`Acks::position`]).
    pub fn ack_position(&self, partition: i32, offset: i64) -> Option<i64> {
        lock(&self.acks).position(partition, offset)
    }

    /// What a snapshot of `partition` keeps of the acknowledged side (see [`Acks::cut`]).
    pub fn acked_cut(&self, partition: i32, ledger_next: i64, own_applied: u64) -> AckedPartition {
        lock(&self.acks).cut(partition, ledger_next, own_applied)
    }

    /// Installs the acknowledged side a restart recovered for `partition`.
    pub fn restore_acked(&self, partition: i32, recovered: AckedPartition) {
        lock(&self.acks).restore(partition, recovered);
    }

    /// Kafka acknowledged a record of this server's producer: followed on the page if the
    /// sampling admits it (see [`cashflow_shared::flow`]).
    pub fn flow_acked(&self, dot: FlowDot) {
        let pos = cashflow_shared::ledger::Position {
            partition: dot.partition,
            offset: dot.offset,
        };
        let mut f = lock(&self.flow);
        // Raised before asking the ledger: a member applying the record right now then either
        // is seen here as applied, or sees a waiting record and looks under the flow lock.
        self.flow_waiting.fetch_add(1, Ordering::SeqCst);
        let applied = self.ledger().has_seen(pos).then(|| {
            let owner = lock(&self.group).owners().get(&dot.partition).copied();
            (now_ms(), owner)
        });
        f.acked(dot, applied);
        self.flow_waiting
            .store(f.waiting_count() as u64, Ordering::SeqCst);
    }

    /// The calculator's `member` applied the record at (`partition`, `offset`).
    pub fn flow_applied(&self, partition: i32, offset: i64, member: u32) {
        if self.flow_waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut f = lock(&self.flow);
        if f.waiting(partition, offset) {
            f.applied(partition, offset, member, now_ms());
            self.flow_waiting
                .store(f.waiting_count() as u64, Ordering::SeqCst);
        }
    }

    /// Followed records changed after `after` (a version), and the newest version.
    pub fn flow_since(&self, after: u64) -> (Vec<FlowDot>, u64) {
        lock(&self.flow).since(after)
    }

    pub fn flow_all(&self) -> Vec<FlowDot> {
        lock(&self.flow).all()
    }

    /// A record read back from the dead-letter topic.
    pub fn dead_letter_read(&self, letter: DeadLetterView) {
        lock(&self.dead_letters).push(letter);
    }

    /// The newest dead letters (newest first), how many were read, and their version.
    pub fn dead_letters(&self) -> (Vec<DeadLetterView>, u64, u64) {
        let l = lock(&self.dead_letters);
        (l.newest(), l.read(), l.version())
    }

    /// The newest dead letters and their version, if it is not `seen`.
    pub fn dead_letters_since(&self, seen: u64) -> Option<(Vec<DeadLetterView>, u64)> {
        let l = lock(&self.dead_letters);
        (l.version() != seen).then(|| (l.newest(), l.version()))
    }

    /// Another cashflow server owns some partitions: the invariant is no longer checked here.
    pub fn topic_shared_with_another_server(&self) {
        if !self.whole_topic.swap(false, Ordering::Relaxed) {
            return;
        }
        self.ledger.topic_shared_with_another_server();
    }

    /// Records of this server's producer acknowledged but not applied yet (back-pressure), when
    /// that can close: not while another server has some partitions, nor once the invariant is
    /// stuck (a gap waiting will not close must not hold generation for good).
    pub fn backpressure_lag(&self) -> Option<i64> {
        let whole = self.whole_topic.load(Ordering::Relaxed);
        let stuck = self.invariant_stuck.load(Ordering::Relaxed);
        (whole && !stuck).then(|| self.own_lag())
    }

    /// Records of this server's producer acknowledged but not applied yet.
    pub fn own_lag(&self) -> i64 {
        let applied = self.ledger.own_applied_count();
        let acked: u64 = lock(&self.acks).totals().values().map(|t| t.count).sum();
        acked as i64 - applied as i64
    }

    /// The producer's acknowledged nets against the calculator's applied ones.
    pub fn invariant(&self) -> InvariantStatus {
        let (applied, foreign) = self.ledger.own_applied();
        let whole = self.whole_topic.load(Ordering::Relaxed);
        let stuck = self.invariant_stuck.load(Ordering::Relaxed);
        let acks = lock(&self.acks);
        cashflow_shared::invariant::check(acks.totals(), &applied, foreign, whole, stuck)
    }

    /// See [`invariant`](Self::invariant): whether waiting can still close its gap.
    pub fn set_invariant_stuck(&self, stuck: bool) {
        self.invariant_stuck.store(stuck, Ordering::Relaxed);
    }

    /// Records were just applied this long (ms) after they were produced.
    pub fn record_latencies(&self, latencies_ms: &[i64]) {
        if latencies_ms.is_empty() {
            return;
        }
        let now = now_ms();
        let mut l = lock(&self.latency);
        for ms in latencies_ms {
            l.record(now, *ms);
        }
    }

    /// A consumer handled a batch: wakes the hub (one wake-up is kept if it is busy).
    pub fn changed(&self) {
        self.changes.notify_one();
    }

    /// Completes at the next [`Shared::changed`] (or at once if one came since the last).
    pub async fn changes(&self) {
        self.changes.notified().await
    }

    pub fn latency(&self) -> LatencySummary {
        lock(&self.latency).summary(now_ms())
    }

    /// Every produce → applied latency since start (`/metrics`).
    pub fn latency_totals(&self) -> cashflow_shared::latency::LatencyTotals {
        lock(&self.latency).totals().clone()
    }

    /// The topic's partitions for the page: records handled on each and who owns it.
    pub fn partition_views(&self) -> Vec<PartitionView> {
        let count = self.broker().partitions as usize;
        let owners = lock(&self.group).owners();
        let next = self.ledger().next_offsets();
        (0..count.min(MAX_SHOWN_PARTITIONS) as i32)
            .map(|p| PartitionView {
                partition: p,
                records: next.get(&p).copied().unwrap_or(0),
                owned: owners.contains_key(&p),
                member: owners.get(&p).copied(),
            })
            .collect()
    }

    pub fn push_recent(&self, line: LogLine) {
        let mut r = lock(&self.recent);
        let seq = self.recent_seq.fetch_add(1, Ordering::Relaxed) + 1;
        if r.len() == RECENT_CAPACITY {
            r.pop_back();
        }
        r.push_front((seq, line));
    }

    /// A record the feed would have pushed out at once: counted, never kept.
    pub fn skip_recent(&self) {
        self.recent_seq.fetch_add(1, Ordering::Relaxed);
    }

    /// Newest first.
    pub fn recent(&self, limit: usize) -> Vec<LogLine> {
        lock(&self.recent)
            .iter()
            .take(limit)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Up to `limit` lines newer than `after` (newest first), and the newest sequence number.
    pub fn recent_since(&self, after: u64, limit: usize) -> (Vec<LogLine>, u64) {
        let r = lock(&self.recent);
        let newest = r.front().map(|(s, _)| *s).unwrap_or(after);
        let lines = r
            .iter()
            .take_while(|(s, _)| *s > after)
            .take(limit)
            .map(|(_, l)| l.clone())
            .collect();
        (lines, newest)
    }

    pub fn generator(&self) -> Option<GeneratorStatus> {
        lock(&self.generator).clone()
    }

    pub fn set_generator(&self, g: GeneratorStatus) {
        *lock(&self.generator) = Some(g);
    }

    pub fn push_sample(&self, s: Sample) {
        let mut h = lock(&self.history);
        if h.len() == HISTORY_SAMPLES {
            h.pop_front();
        }
        h.push_back(s);
    }

    pub fn last_sample(&self) -> Option<Sample> {
        lock(&self.history).back().cloned()
    }

    pub fn history(&self) -> Vec<Sample> {
        lock(&self.history).iter().cloned().collect()
    }

    pub fn producer(&self) -> ProducerStats {
        lock(&self.producer).clone()
    }

    pub fn with_producer<R>(&self, f: impl FnOnce(&mut ProducerStats) -> R) -> R {
        f(&mut lock(&self.producer))
    }

    pub fn set_client_error(&self, reason: String) {
        *lock(&self.client_error) = Some(reason);
    }

    pub fn take_client_error(&self) -> Option<String> {
        lock(&self.client_error).take()
    }

    pub fn broker(&self) -> BrokerHealth {
        lock(&self.broker).clone()
    }

    pub fn with_broker<R>(&self, f: impl FnOnce(&mut BrokerHealth) -> R) -> R {
        f(&mut lock(&self.broker))
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A lesson's status and a version that changes with every change, so the hub sends it only
/// when it changed.
#[derive(Default)]
pub struct Versioned<T> {
    inner: Mutex<(T, u64)>,
}

impl<T: Clone> Versioned<T> {
    pub fn get(&self) -> T {
        lock(&self.inner).0.clone()
    }

    pub fn set(&self, value: T) {
        self.with(|v| *v = value);
    }

    /// Changes it (under its lock, for as long as `f` runs).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut v = lock(&self.inner);
        v.1 += 1;
        f(&mut v.0)
    }

    /// It and its version, if the version is not `seen`.
    pub fn since(&self, seen: u64) -> Option<(T, u64)> {
        let v = lock(&self.inner);
        (v.1 != seen).then(|| (v.0.clone(), v.1))
    }
}
