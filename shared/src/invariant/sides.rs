//! The invariant's two sides as they are kept: the applied side per partition ([`Own`], in the
//! partition's state) and the acknowledged side ([`Acks`], from the producer's delivery reports,
//! per partition with the offset it covers).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Acked, Applied};
use crate::money::Money;
use crate::transaction::AccountId;

/// The applied side, per partition: what this partition's records from the producer `producer`
/// did, and how many records other producers wrote. Part of the partition's state, so a
/// snapshot keeps it with the balances it explains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Own {
    /// The producer counted as this server's (`None`: every record is foreign).
    pub producer: Option<Arc<str>>,
    pub applied: Applied,
    pub foreign: u64,
}

impl Own {
    /// Counts one applied transaction: this producer's per account, others' as a number.
    pub fn count(&mut self, producer: Option<&str>, account: AccountId, delta: Money) {
        match (&self.producer, producer) {
            (Some(mine), Some(theirs)) if **mine == *theirs => {
                let e = self.applied.entry(account).or_default();
                e.0 = e.0.saturating_add(delta.minor());
                e.1 += 1;
            }
            _ => self.foreign += 1,
        }
    }

    /// From now on `producer`'s records are this server's. Counts of another producer cannot
    /// be compared with its acknowledgements: they start over.
    pub fn count_as_own(&mut self, producer: &Arc<str>) {
        if self.producer.as_deref() != Some(&**producer) {
            *self = Own {
                producer: Some(producer.clone()),
                ..Own::default()
            };
        }
    }
}

/// The acknowledged side of one partition: the nets of this producer's records Kafka
/// acknowledged there. Every such record below `next` is counted and none above, so a restart
/// goes on from `next`, counting the producer's records it finds in the log (a record in the log
/// was acknowledged, or would have been but for the crash).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckedPartition {
    pub next: i64,
    pub nets: BTreeMap<AccountId, Acked>,
}

impl AckedPartition {
    /// The producer's record at `offset` was found in the log at a restart. False (nothing
    /// counted) if it lies below the cut, so was counted already.
    pub fn add(&mut self, offset: i64, account: AccountId, delta: Money) -> bool {
        if offset >= 0 && offset < self.next {
            return false;
        }
        self.count(Some(offset), account, delta);
        true
    }

    /// Counts a record; a known offset moves the cut past it.
    fn count(&mut self, offset: Option<i64>, account: AccountId, delta: Money) {
        if let Some(o) = offset {
            self.next = self.next.max(o + 1);
        }
        let t = self.nets.entry(account).or_default();
        t.net = t.net.checked_add(delta).unwrap_or(t.net);
        t.count += 1;
    }
}

/// Everything this server's producer had acknowledged, per partition (kept by the state store
/// with each partition's snapshot), and how many of its records are on their way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acks {
    in_flight: u64,
    parts: BTreeMap<i32, AckedPartition>,
    /// Per account, over the partitions: what the invariant compares.
    totals: BTreeMap<AccountId, Acked>,
    /// Per partition, the number librdkafka reported last within a batch acknowledged without
    /// its offsets (see [`Acks::position`]).
    unknown_run: BTreeMap<i32, i64>,
    /// Per partition, records acknowledged without their offset: counted in `totals`, but kept
    /// out of the snapshot's cut (they lie above its `next`, where a restart would count them
    /// again) until a real offset in the partition shows they lie below it.
    pending: BTreeMap<i32, BTreeMap<AccountId, Acked>>,
    /// Partitions whose acknowledged side this process recovered from the log: recovered once
    /// (a calculator restarting later would count the live reports since a second time).
    restored: std::collections::BTreeSet<i32>,
}

fn add_to(map: &mut BTreeMap<AccountId, Acked>, account: AccountId, net: Money, count: u64) {
    let t = map.entry(account).or_default();
    t.net = t.net.checked_add(net).unwrap_or(t.net);
    t.count += count;
}

impl Acks {
    /// A record is about to be handed to the producer.
    pub fn sending(&mut self) {
        self.in_flight += 1;
    }

    /// A record handed over was refused, or its delivery failed: it is not in the log.
    pub fn not_sent(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Where a record librdkafka reported at `offset` in `partition` lies, if that is known.
    /// Every delivery report of the producer must pass here, in order (a record not counted
    /// too: it may sit inside a run).
    ///
    /// When a broker answers a retried batch with DUPLICATE_SEQUENCE_NUMBER (it wrote the batch
    /// before, and the answer was lost), librdkafka reports the batch delivered with base offset
    /// -1 and numbers the records after the first from there: -1, 0, 1, … (librdkafka 2.12,
    /// `rd_kafka_msgq_set_metadata`: `rkm_offset = base_offset++`). Those are not offsets: the
    /// batch lies further on. Under the idempotent producer a partition's reports come in
    /// offset order, and the batch after such a one starts beyond its real records, so beyond
    /// the run of made-up numbers.
    pub fn position(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let made_up = offset < 0 || self.unknown_run.get(&partition) == Some(&(offset - 1));
        if made_up {
            self.unknown_run.insert(partition, offset.max(-1));
            None
        } else {
            self.unknown_run.remove(&partition);
            Some(offset)
        }
    }

    /// Kafka acknowledged a record of this producer, reported at `offset`. Every delivery report
    /// counts once (librdkafka gives each record exactly one). Returns the record's offset if
    /// it is known ([`Acks::position`]).
    pub fn acked(
        &mut self,
        partition: i32,
        offset: i64,
        account: AccountId,
        delta: Money,
    ) -> Option<i64> {
        self.in_flight = self.in_flight.saturating_sub(1);
        let known = self.position(partition, offset);
        let part = self.parts.entry(partition).or_default();
        match known {
            Some(o) => {
                // The records acknowledged without their offset came before this one.
                for (a, t) in self.pending.remove(&partition).unwrap_or_default() {
                    add_to(&mut part.nets, a, t.net, t.count);
                }
                part.count(Some(o), account, delta);
            }
            None => add_to(
                self.pending.entry(partition).or_default(),
                account,
                delta,
                1,
            ),
        }
        add_to(&mut self.totals, account, delta, 1);
        known
    }

    /// What a snapshot of `partition` keeps, the ledger's own cut being at `ledger_next` (taken
    /// just before) with `own_applied` of this producer's records applied there. `next` moves
    /// up to the ledger's cut when no record of this producer can lie unacknowledged below it,
    /// so a restart does not re-read the records in between (others' records, or none):
    /// - nothing is in flight at all, or
    /// - every acknowledged record lies below the cut and exactly as many were applied there: an
    ///   unacknowledged record below the cut would have been applied too, one more than acked.
    pub fn cut(&self, partition: i32, ledger_next: i64, own_applied: u64) -> AckedPartition {
        let mut cut = self.parts.get(&partition).cloned().unwrap_or_default();
        let acked: u64 = cut.nets.values().map(|t| t.count).sum();
        // Records whose offset is not known yet may lie anywhere above `next`.
        let placed = !self.pending.contains_key(&partition);
        if placed && (self.in_flight == 0 || (cut.next <= ledger_next && acked == own_applied)) {
            cut.next = cut.next.max(ledger_next);
        }
        cut
    }

    /// Installs what a restart recovered for `partition`, once in a process (see `restored`).
    pub fn restore(&mut self, partition: i32, recovered: AckedPartition) {
        if !self.restored.insert(partition) {
            return;
        }
        if let Some(old) = self.parts.insert(partition, recovered) {
            for (a, t) in old.nets {
                if let Some(total) = self.totals.get_mut(&a) {
                    total.net = total.net.checked_sub(t.net).unwrap_or(total.net);
                    total.count = total.count.saturating_sub(t.count);
                }
            }
        }
        for (a, t) in &self.parts[&partition].nets {
            let total = self.totals.entry(*a).or_default();
            total.net = total.net.checked_add(t.net).unwrap_or(total.net);
            total.count += t.count;
        }
        self.totals.retain(|_, t| t.count > 0);
    }

    /// Per account, over every partition.
    pub fn totals(&self) -> &BTreeMap<AccountId, Acked> {
        &self.totals
    }

    /// Forgets everything acknowledged (the topic was re-created).
    pub fn clear(&mut self) {
        self.parts.clear();
        self.totals.clear();
        self.unknown_run.clear();
        self.pending.clear();
        self.restored.clear();
    }
}
