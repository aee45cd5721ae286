//! What the naive calculator does with each batch: learn where newly assigned partitions start,
//! apply the records, commit, and publish its status with the comparison to the exact balances.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use cashflow_shared::Transaction;
use cashflow_shared::naive::{Coverage, NaiveBook, NaiveState, PartitionDiff};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::warn;

use crate::kafka::Context;

use super::run::Lesson;
use super::{Control, ROLE};

impl Lesson {
    /// The offsets each newly assigned partition starts from (its committed offset): a jump
    /// past what was read before is a loss.
    pub(super) fn learn_starts(
        &self,
        consumer: &BaseConsumer<Context>,
        positions: &mut BTreeMap<i32, i64>,
        known: &mut BTreeSet<i32>,
        coverage: &mut Coverage,
    ) {
        let Ok(assigned) = consumer.assignment() else {
            return;
        };
        if assigned
            .elements()
            .iter()
            .all(|e| known.contains(&e.partition()))
        {
            return;
        }
        match consumer.committed(Duration::from_secs(2)) {
            Ok(committed) => {
                for e in committed.elements() {
                    if !known.insert(e.partition()) || positions.contains_key(&e.partition()) {
                        continue;
                    }
                    // Nothing committed: it starts wherever its first record is.
                    if let Offset::Offset(o) = e.offset() {
                        coverage.starts_at(e.partition(), o);
                        positions.insert(e.partition(), o);
                    }
                }
            }
            Err(e) => warn!(%e, "{ROLE}: cannot read its committed offsets"),
        }
    }

    pub(super) fn apply(
        &self,
        batch: &[(i32, i64, Option<Transaction>)],
        book: &mut NaiveBook,
        positions: &mut BTreeMap<i32, i64>,
        coverage: &mut Coverage,
    ) {
        for (p, o, tx) in batch {
            coverage.read(*p, *o);
            if let Some(tx) = tx {
                // Naive: no duplicate check, no offsets; an overflow is just skipped.
                book.apply(*p, tx);
            }
            positions.insert(*p, o + 1);
        }
    }

    /// Commits synchronously; a failure (e.g. a rebalance under way) is logged and the batch
    /// goes on, as such a consumer would.
    pub(super) fn commit(&self, consumer: &BaseConsumer<Context>, next: &TopicPartitionList) {
        if let Err(e) = consumer.commit(next, CommitMode::Sync) {
            warn!(%e, "{ROLE}: commit failed");
        }
    }

    /// Compares with the exact calculator where both stand at the same offset, and publishes.
    pub(super) fn publish(
        &self,
        book: &NaiveBook,
        positions: &BTreeMap<i32, i64>,
        diffs: &mut BTreeMap<i32, PartitionDiff>,
        coverage: &Coverage,
        control: &Control,
    ) {
        let ledger = self.shared.ledger();
        for (p, next) in positions {
            if let Some(d) = ledger.compare_naive(*p, book.partition(*p), *next) {
                diffs.insert(*p, d);
            }
        }
        let opening = ledger.opening_balance();
        self.status.update(|s| {
            s.state = NaiveState::Running;
            s.delivery = control.delivery();
            s.crash_armed = control.crash.load(Ordering::Relaxed);
            s.lost = coverage.lost;
            s.doubled = coverage.doubled;
            s.partitions = positions.len() as u32;
            s.set_comparison(diffs, |a| {
                (ledger.account(a).balance, book.balance(a, opening))
            });
        });
    }
}
