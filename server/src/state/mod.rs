//! State shared by the Kafka tasks and the HTTP server, as small domain stores.
//!
//! [`Shared`] holds one store per piece of state, each with its own lock and its own verbs:
//!
//! | store | what | written by |
//! |---|---|---|
//! | [`LedgerStore`] | the balances, per partition | the calculator's members, its restore, the monitor (another server seen), a re-created topic |
//! | [`health::Health`] | the broker, the clients' errors, tasks down, stops | the broker watch, the clients' callbacks, `supervise`, the shutdown |
//! | [`store::StoreBoard`] | the state store's restore and snapshots | the restore, the snapshot writer, the reset, a re-created topic |
//! | [`producer::ProducerBoard`] | the producer's counts and the generator's settings | the producer actor and its delivery reports, a re-created topic |
//! | [`group::GroupBoard`] | the calculator's members, owners, pause, latency | the calculator group, holding its writing half ([`Writers`]); each member its own rows through it |
//! | [`acks::AckBoard`] | the invariant's acknowledged side, and what it can still promise | the producer's delivery reports, the restore, a re-created topic; the promise: the monitor alone ([`Writers`]) |
//! | [`flow::FlowBoard`] | the records the page animates | the delivery reports, the calculator's members, a re-created topic |
//! | [`feed::Feed`] | the log feed, the charts' history, the dead letters | each part one writer, holding its writing half ([`Writers`]): the logging consumer, the monitor, the dead-letter reader |
//! | [`lessons::LessonBoard`] | each lesson's status and the guided checks | each status one writer, holding its writing half ([`Writers`]): its lesson; the checks: the monitor |
//!
//! Where the table names a writing half, [`Shared::new`] hands it out once (in [`Writers`],
//! not `Clone`) and the store's own verbs only read: no other task can write that part. The
//! other stores are still written through `&Shared` by the tasks named ("a re-created topic"
//! is [`Shared::start_afresh`]); making each of them one writer's is the work left.
//!
//! No lock guard leaves a store: reads return copies, changes are verbs. No lock is taken
//! while another is held; the few verbs that span stores ([`Shared::flow_acked`],
//! [`Shared::invariant`], [`Shared::start_afresh`], …) take one after the other.

pub mod acks;
pub mod feed;
pub mod flow;
pub mod group;
pub mod health;
pub mod ledger;
pub mod lessons;
pub mod producer;
pub mod store;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

use cashflow_shared::api::{Balances, BrokerHealth};
use cashflow_shared::flow::FlowDot;
use cashflow_shared::invariant::InvariantStatus;
use cashflow_shared::protocol::{MAX_SHOWN_PARTITIONS, PartitionView};
use cashflow_shared::{AccountId, Ledger};
use tokio::sync::{Notify, watch};

use crate::state::ledger::LedgerStore;

pub use feed::RECENT_CAPACITY;
pub use lessons::Versioned;

/// The producer's view of the accounts once the restore is done (`None` until then).
pub type RestoredView =
    watch::Sender<Option<BTreeMap<AccountId, cashflow_shared::ledger::AccountState>>>;

/// The writing halves of the stores whose parts have one writer each, made with [`Shared`]
/// and handed by `App::start` to those writers, each to its own.
pub struct Writers {
    pub feed: feed::FeedWriters,
    /// What the invariant can still promise: the monitor's.
    pub promise: acks::PromiseWriter,
    /// Each lesson's status (its lesson's) and the checks (the monitor's).
    pub lessons: lessons::LessonWriters,
    /// The calculator's group: the calculator group's (each member writes its own rows).
    pub group: group::GroupWriter,
}

pub struct Shared {
    topic: String,
    ledger: LedgerStore,
    health: health::Health,
    store: store::StoreBoard,
    producer: producer::ProducerBoard,
    group: group::GroupBoard,
    acks: acks::AckBoard,
    flow: flow::FlowBoard,
    feed: feed::Feed,
    lessons: lessons::LessonBoard,
    /// The producer id written into every record this server produces: the one the state
    /// store names (so the invariant goes on across restarts), or a new one. Fixed once.
    producer_id: OnceLock<String>,
    /// Woken by the consumers' batches; the hub waits on it.
    changes: Notify,
    /// Re-creations of the topic noticed while running: consumers move to its beginning.
    recreations: watch::Sender<u32>,
}

// A panic while a lock was held leaves plain data behind, still consistent field by field:
// keep serving it rather than poisoning every later request.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(
        topic: String,
        group: &str,
        ledger: Ledger,
        broker: BrokerHealth,
    ) -> (Self, Writers) {
        let (feed, feed_writers) = feed::Feed::new();
        let (acks, promise) = acks::AckBoard::new();
        let (lessons, lesson_writers) = lessons::LessonBoard::new();
        let (group, group_writer) = group::GroupBoard::new(group);
        let shared = Shared {
            topic,
            ledger: LedgerStore::new(ledger),
            health: health::Health::new(broker),
            store: store::StoreBoard::default(),
            producer: producer::ProducerBoard::default(),
            group,
            acks,
            flow: flow::FlowBoard::default(),
            feed,
            lessons,
            producer_id: OnceLock::new(),
            changes: Notify::new(),
            recreations: watch::Sender::new(0),
        };
        let writers = Writers {
            feed: feed_writers,
            promise,
            lessons: lesson_writers,
            group: group_writer,
        };
        (shared, writers)
    }

    /// The transactions topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The balance calculator's ledger (its verbs take the lock themselves).
    pub fn ledger(&self) -> &LedgerStore {
        &self.ledger
    }

    pub fn health(&self) -> &health::Health {
        &self.health
    }

    pub fn store(&self) -> &store::StoreBoard {
        &self.store
    }

    pub fn producer(&self) -> &producer::ProducerBoard {
        &self.producer
    }

    pub fn group(&self) -> &group::GroupBoard {
        &self.group
    }

    pub fn acks(&self) -> &acks::AckBoard {
        &self.acks
    }

    pub fn flow(&self) -> &flow::FlowBoard {
        &self.flow
    }

    pub fn feed(&self) -> &feed::Feed {
        &self.feed
    }

    pub fn lessons(&self) -> &lessons::LessonBoard {
        &self.lessons
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
        self.store.clear_marks();
        // The invariant starts over with the balances: the old topic's records are gone (the
        // ledger's side went with `clear`).
        self.acks.clear();
        self.producer.forget_delivered();
        self.flow.clear();
        // (The dead-letter reader clears its letters on `recreations`.)
        self.store.topic_recreated(why);
        restored.send_replace(Some(BTreeMap::new()));
        // The lessons' counters start over with the balances: so do their checks.
        self.lessons.start_checks_over();
        self.recreations.send_modify(|n| *n += 1);
    }

    /// Tells when the topic is found re-created while running.
    pub fn recreations(&self) -> watch::Receiver<u32> {
        self.recreations.subscribe()
    }

    /// Up to `limit` accounts with ids above `after`, and the totals over all.
    pub fn balances(&self, after: AccountId, limit: usize) -> Balances {
        let mut b = self.ledger.balances(after, limit);
        b.topic = self.topic.clone();
        b
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

    /// Kafka acknowledged a record of this server's producer: followed on the page if the
    /// sampling admits it (see [`cashflow_shared::flow`]).
    ///
    /// The record is followed as waiting *before* the ledger is asked whether it was applied:
    /// a member applying it now then either finds it waiting (it applies to the ledger before
    /// it looks), or applied it before the ledger was asked, which then says so.
    pub fn flow_acked(&self, dot: FlowDot) {
        if !self.flow.acked(dot) {
            return;
        }
        let pos = cashflow_shared::ledger::Position {
            partition: dot.partition,
            offset: dot.offset,
        };
        if self.ledger.has_seen(pos) {
            let owner = self.group.owners().get(&dot.partition).copied();
            self.flow.applied(dot.partition, dot.offset, owner);
        }
    }

    /// Records of this server's producer acknowledged but not applied yet (back-pressure), when
    /// that can close: not while another server has some partitions, nor once the invariant is
    /// stuck (a gap waiting will not close must not hold generation for good).
    pub fn backpressure_lag(&self) -> Option<i64> {
        (self.acks.whole_topic() && !self.acks.stuck()).then(|| self.own_lag())
    }

    /// Records of this server's producer acknowledged but not applied yet.
    pub fn own_lag(&self) -> i64 {
        let applied = self.ledger.own_applied_count();
        self.acks.count() as i64 - applied as i64
    }

    /// The producer's acknowledged nets against the calculator's applied ones.
    pub fn invariant(&self) -> InvariantStatus {
        let (applied, foreign) = self.ledger.own_applied();
        self.acks.check(&applied, foreign)
    }

    /// A consumer handled a batch: wakes the hub (one wake-up is kept if it is busy).
    pub fn changed(&self) {
        self.changes.notify_one();
    }

    /// Completes at the next [`Shared::changed`] (or at once if one came since the last).
    pub async fn changes(&self) {
        self.changes.notified().await
    }

    /// The topic's partitions for the page: records handled on each and who owns it.
    pub fn partition_views(&self) -> Vec<PartitionView> {
        let count = self.health.partitions() as usize;
        let owners = self.group.owners();
        let next = self.ledger.next_offsets();
        (0..count.min(MAX_SHOWN_PARTITIONS) as i32)
            .map(|p| PartitionView {
                partition: p,
                records: next.get(&p).copied().unwrap_or(0),
                owned: owners.contains_key(&p),
                member: owners.get(&p).copied(),
            })
            .collect()
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
