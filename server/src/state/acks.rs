//! The invariant's acknowledged side: what Kafka acknowledged of this server's producer, per
//! partition (the applied side is in the ledger, see [`cashflow_shared::invariant`]), and what
//! the invariant can still promise.
//!
//! The counts are written by the producer ([`crate::pipeline::producer`]: sending, delivery
//! reports) and the restore ([`crate::store::restore`]: the acknowledged side a snapshot kept).
//! What the invariant can still promise (whether the topic is shared with another server,
//! whether a gap is stuck) is the monitor's judgement alone: it holds the one
//! [`PromiseWriter`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cashflow_shared::invariant::{AckedPartition, Acks, Applied, InvariantStatus};
use cashflow_shared::{AccountId, Money};

use super::lock;

pub struct AckBoard {
    acks: Mutex<Acks>,
    promise: Arc<Promise>,
}

/// What the invariant can still promise.
struct Promise {
    /// Cleared once another cashflow server is seen owning some partitions: the invariant
    /// cannot be checked from here after that.
    whole_topic: AtomicBool,
    /// Set while the calculator has read the whole topic for a while and the invariant's
    /// counts still differ.
    stuck: AtomicBool,
}

/// The writing half of what the invariant can still promise: the monitor's.
pub struct PromiseWriter(Arc<Promise>);

impl PromiseWriter {
    /// Another server owns some partitions; `true` if that is news.
    pub fn topic_shared(&self) -> bool {
        self.0.whole_topic.swap(false, Ordering::Relaxed)
    }

    /// Whether waiting can still close the invariant's gap (`false`) or not.
    pub fn set_stuck(&self, stuck: bool) {
        self.0.stuck.store(stuck, Ordering::Relaxed);
    }
}

impl AckBoard {
    pub(super) fn new() -> (AckBoard, PromiseWriter) {
        let promise = Arc::new(Promise {
            whole_topic: AtomicBool::new(true),
            stuck: AtomicBool::new(false),
        });
        let board = AckBoard {
            acks: Mutex::new(Acks::default()),
            promise: promise.clone(),
        };
        (board, PromiseWriter(promise))
    }

    /// A record of this server's producer is about to be sent (the invariant's in-flight).
    pub fn sending(&self) {
        lock(&self.acks).sending();
    }

    /// A record that was to be sent was refused, or its delivery failed.
    pub fn not_sent(&self) {
        lock(&self.acks).not_sent();
    }

    /// Kafka acknowledged this producer's record at (`partition`, `offset`) as librdkafka
    /// reports it. Returns the offset if it is real (see [`Acks::acked`]).
    pub fn acked(
        &self,
        partition: i32,
        offset: i64,
        account: AccountId,
        delta: Money,
    ) -> Option<i64> {
        lock(&self.acks).acked(partition, offset, account, delta)
    }

    /// Where a delivered record that is not counted lies (see [`Acks::position`]).
    pub fn position(&self, partition: i32, offset: i64) -> Option<i64> {
        lock(&self.acks).position(partition, offset)
    }

    /// What a snapshot of `partition` keeps of the acknowledged side (see [`Acks::cut`]).
    pub fn cut(&self, partition: i32, ledger_next: i64, own_applied: u64) -> AckedPartition {
        lock(&self.acks).cut(partition, ledger_next, own_applied)
    }

    /// Installs the acknowledged side a restart recovered for `partition`.
    pub fn restore(&self, partition: i32, recovered: AckedPartition) {
        lock(&self.acks).restore(partition, recovered);
    }

    /// The invariant: what was acknowledged against `applied` (the ledger's side, read first:
    /// no lock is held across both).
    pub fn check(&self, applied: &Applied, foreign_records: u64) -> InvariantStatus {
        let (whole, stuck) = (self.whole_topic(), self.stuck());
        cashflow_shared::invariant::check(
            lock(&self.acks).totals(),
            applied,
            foreign_records,
            whole,
            stuck,
        )
    }

    /// Records acknowledged in all.
    pub fn count(&self) -> u64 {
        lock(&self.acks).totals().values().map(|t| t.count).sum()
    }

    /// The topic's records are gone: so is what was acknowledged of them.
    pub fn clear(&self) {
        lock(&self.acks).clear();
    }

    pub fn whole_topic(&self) -> bool {
        self.promise.whole_topic.load(Ordering::Relaxed)
    }

    pub fn stuck(&self) -> bool {
        self.promise.stuck.load(Ordering::Relaxed)
    }
}
