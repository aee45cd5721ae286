//! The balance calculator's pure core.
//!
//! State is kept **per partition**, the way a Kafka Streams task keeps its store: a
//! [`PartitionLedger`] holds, for the records of one partition, each account's net amount and
//! count, the next offset to apply, its counters and a window of recent transaction ids. It
//! depends only on that partition's records, so live consumption, a restore from a snapshot and
//! any member of the group compute exactly the same state for it, and a partition can be
//! snapshotted, moved and restored on its own.
//!
//! A [`Ledger`] is the set of partitions this process holds plus the accounts' totals: an
//! account's balance is the opening balance plus the sum of its partial nets (one partial in the
//! usual case, where records are keyed by account).
//!
//! Idempotence, so at-least-once delivery never applies anything twice:
//! - by position: a record below the partition's next offset is a replay;
//! - by id: a `transaction_id` equal to one of a transaction in the previous
//!   [`DEFAULT_ID_WINDOW`] offsets *of the same partition* is a duplicate. Deciding by offsets
//!   (not by arrival order) makes the decision the same wherever the partition is read.
//!
//! Balances are computed here; the producer's `new_balance` is only *checked*. The producer
//! writes its view of the whole account, so the check is against the account's total: opening
//! plus the partition's net where records are keyed by account (the account lives in one
//! partition), plus the other partitions' nets where an account's records were spread (the
//! keys-and-ordering lesson's random keys). A record not keyed by account whose account is
//! spread, or a spread account while another server holds some partitions, cannot be checked
//! in order and is counted as *unchecked*, not as a mismatch.

use serde::{Deserialize, Serialize};

use crate::money::Money;

mod aggregate;
mod partition;

pub use aggregate::Ledger;
pub use partition::{BalanceCheck, PartitionLedger};

/// Where a record came from: its partition and offset in the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub balance: Money,
    /// Transactions applied to this account.
    pub count: u64,
}

/// What applying one transaction did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        balance: Money,
        count: u64,
        /// `Some(false)` when the producer's `new_balance` disagrees with ours.
        producer_agrees: Option<bool>,
    },
    /// Its position was already applied: skipped.
    Replayed,
    /// Its `transaction_id` was applied within the window: skipped (to be dead-lettered).
    DuplicateId,
    /// Applying it would overflow the balance: skipped (to be dead-lettered).
    Overflow,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerStats {
    pub applied: u64,
    pub replayed: u64,
    pub duplicate_ids: u64,
    pub mismatches: u64,
    /// Records with a `new_balance` that could not be checked (see [`BalanceCheck::Unchecked`]).
    #[serde(default)]
    pub unchecked: u64,
    pub overflows: u64,
    /// Records that were not valid transactions, or were refused (duplicate, overflow), and
    /// went to the dead-letter topic.
    #[serde(default)]
    pub dead_lettered: u64,
    /// Of those, records the dead-letter topic could not take (refused as too large even
    /// truncated, not authorised, …): they stay only in the topic itself.
    #[serde(default)]
    pub dead_letter_failed: u64,
}

impl LedgerStats {
    fn add(&mut self, o: &LedgerStats) {
        self.applied += o.applied;
        self.replayed += o.replayed;
        self.duplicate_ids += o.duplicate_ids;
        self.mismatches += o.mismatches;
        self.unchecked += o.unchecked;
        self.overflows += o.overflows;
        self.dead_lettered += o.dead_lettered;
        self.dead_letter_failed += o.dead_letter_failed;
    }
}

/// How many accounts there are and what they hold together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountTotals {
    pub accounts: u64,
    /// The sum of every balance; `None` if it does not fit in 64-bit minor units (only
    /// hostile amounts get there).
    pub balance: Option<Money>,
}

/// Default width, in offsets of one partition, of the duplicate-id window.
pub const DEFAULT_ID_WINDOW: i64 = 10_000;

/// A stable 64-bit digest of a transaction id: the window keeps 8 bytes per id, whatever the
/// id's length, and the digest never changes between builds (unlike std's hasher).
pub fn id_digest(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

#[cfg(test)]
mod tests;
