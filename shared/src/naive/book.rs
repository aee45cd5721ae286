//! The naive calculator's own store (its book of balances per partition), what it read by
//! offset ([`Coverage`]), and its comparison with the exact ledger partition by partition.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ledger::{AccountState, Ledger, PartitionLedger};
use crate::money::Money;
use crate::transaction::{AccountId, Transaction};

/// One account's state in one partition, as the naive calculator saves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookEntry {
    #[serde(rename = "p")]
    pub partition: i32,
    #[serde(rename = "a")]
    pub account: AccountId,
    #[serde(rename = "s")]
    pub state: AccountState,
}

/// The naive calculator's balances: per partition, per account, the net it applied and how
/// many transactions. No offsets: those live in Kafka, committed separately (the flaw).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NaiveBook {
    partitions: BTreeMap<i32, BTreeMap<AccountId, AccountState>>,
    /// Entries changed since the last [`take_changed`](Self::take_changed).
    changed: BTreeSet<(i32, AccountId)>,
}

impl NaiveBook {
    /// A copy of the exact ledger's balances, and the offsets they cover: the naive calculator
    /// starts in step with the exact one, so any later difference is its own doing.
    pub fn seeded_from(ledger: &Ledger) -> (NaiveBook, BTreeMap<i32, i64>) {
        let mut book = NaiveBook::default();
        let mut offsets = BTreeMap::new();
        for (p, state) in ledger.partitions() {
            book.partitions.insert(*p, state.accounts().clone());
            offsets.insert(*p, state.next_offset());
        }
        book.changed = book
            .partitions
            .iter()
            .flat_map(|(p, a)| a.keys().map(move |a| (*p, *a)))
            .collect();
        (book, offsets)
    }

    /// Builds the book from saved entries (a later entry for the same account replaces an
    /// earlier one).
    pub fn from_entries(entries: impl IntoIterator<Item = BookEntry>) -> NaiveBook {
        let mut book = NaiveBook::default();
        for e in entries {
            book.partitions
                .entry(e.partition)
                .or_default()
                .insert(e.account, e.state);
        }
        book
    }

    /// Every entry (to rewrite the saved file whole).
    pub fn entries(&self) -> Vec<BookEntry> {
        self.partitions
            .iter()
            .flat_map(|(p, accounts)| {
                accounts.iter().map(move |(a, s)| BookEntry {
                    partition: *p,
                    account: *a,
                    state: *s,
                })
            })
            .collect()
    }

    /// The entries changed since the last call (what one batch's save writes).
    pub fn take_changed(&mut self) -> Vec<BookEntry> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .filter_map(|(p, a)| {
                let state = *self.partitions.get(&p)?.get(&a)?;
                Some(BookEntry {
                    partition: p,
                    account: a,
                    state,
                })
            })
            .collect()
    }

    /// Applies a transaction read from `partition`, with no duplicate check and no notion of
    /// offsets: whatever it is handed, it adds. False (and nothing changes) on overflow.
    pub fn apply(&mut self, partition: i32, tx: &Transaction) -> bool {
        let accounts = self.partitions.entry(partition).or_default();
        let mut state = accounts.get(&tx.account).copied().unwrap_or_default();
        let Some(net) = state.balance.checked_add(tx.delta()) else {
            return false;
        };
        state.balance = net;
        state.count += 1;
        accounts.insert(tx.account, state);
        self.changed.insert((partition, tx.account));
        true
    }

    pub fn partition(&self, partition: i32) -> Option<&BTreeMap<AccountId, AccountState>> {
        self.partitions.get(&partition)
    }

    /// One account's balance across partitions.
    pub fn balance(&self, account: AccountId, opening: Money) -> Money {
        self.partitions
            .values()
            .filter_map(|a| a.get(&account))
            .fold(opening, |b, s| b.checked_add(s.balance).unwrap_or(b))
    }

    /// How many account entries it holds (to decide when to rewrite the saved file).
    pub fn len(&self) -> usize {
        self.partitions.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which offsets the naive calculator has read, per partition, across its crashes: the records
/// it skipped and those it read again. The lesson keeps it from the offsets Kafka hands the
/// consumer (outside the "process" that crashes), so it is exact at any rate, while balances
/// can only be compared when both calculators stand at the same offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    next: BTreeMap<i32, i64>,
    pub lost: u64,
    pub doubled: u64,
}

impl Coverage {
    /// Starting where the seed's offsets are.
    pub fn seeded(offsets: &BTreeMap<i32, i64>) -> Coverage {
        Coverage {
            next: offsets.clone(),
            ..Coverage::default()
        }
    }

    /// The consumer (re)starts reading `partition` at `offset`, its committed offset: beyond
    /// what it read before, the records in between are lost (below, they will be read again).
    pub fn starts_at(&mut self, partition: i32, offset: i64) {
        let next = self.next.entry(partition).or_insert(offset);
        if offset > *next {
            self.lost += (offset - *next) as u64;
            *next = offset;
        }
    }

    /// A record was read.
    pub fn read(&mut self, partition: i32, offset: i64) {
        let next = self.next.entry(partition).or_insert(offset);
        if offset < *next {
            self.doubled += 1;
        } else {
            self.lost += (offset - *next) as u64;
            *next = offset + 1;
        }
    }
}

/// How the naive calculator's state of one partition differs from the exact one's, both having
/// read the partition to the same offset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDiff {
    /// Naive count minus exact count: below 0 records were lost, above 0 counted twice.
    pub records: i64,
    /// Naive net minus exact net, in minor units.
    pub net_minor: i64,
    /// Accounts whose balance or count differ.
    pub accounts: Vec<AccountId>,
}

/// Compares the naive state of a partition with the exact one's, or `None` when they have not
/// read it to the same offset (`naive_next` is the naive consumer's position).
pub fn compare(
    naive: Option<&BTreeMap<AccountId, AccountState>>,
    naive_next: i64,
    exact: &PartitionLedger,
) -> Option<PartitionDiff> {
    if naive_next != exact.next_offset() {
        return None;
    }
    let empty = BTreeMap::new();
    let (a, b) = (naive.unwrap_or(&empty), exact.accounts());
    let mut diff = PartitionDiff::default();
    for k in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        let (n, e) = (
            a.get(k).copied().unwrap_or_default(),
            b.get(k).copied().unwrap_or_default(),
        );
        if n != e {
            diff.records += n.count as i64 - e.count as i64;
            diff.net_minor = diff
                .net_minor
                .saturating_add(n.balance.minor().saturating_sub(e.balance.minor()));
            diff.accounts.push(*k);
        }
    }
    Some(diff)
}
