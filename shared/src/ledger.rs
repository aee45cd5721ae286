//! The balance calculator's pure core.
//!
//! A [`Ledger`] applies transactions per account and is the authority for balances: it
//! computes them itself and only *checks* the producer's `new_balance`. It is idempotent in
//! two ways, so at-least-once delivery never applies anything twice:
//! - by position: a record at or below the last applied offset of its partition is a replay
//!   (what a consumer sees after restarting from a commit that lagged behind);
//! - by id: a `transaction_id` seen among the last `id_window` applied ones is a duplicate
//!   (what a producer that re-sends a message creates). The window bounds memory.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::transaction::{AccountId, Transaction};

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
    /// Its `transaction_id` was already applied: skipped.
    DuplicateId,
    /// Applying it would overflow the balance: skipped.
    Overflow,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerStats {
    pub applied: u64,
    pub replayed: u64,
    pub duplicate_ids: u64,
    pub mismatches: u64,
    pub overflows: u64,
}

#[derive(Clone, Debug)]
pub struct Ledger {
    opening: Money,
    accounts: BTreeMap<AccountId, AccountState>,
    /// Next offset to apply, per partition.
    next_offsets: BTreeMap<i32, i64>,
    /// The partition each account's transactions were last applied from.
    partitions: BTreeMap<AccountId, i32>,
    recent_ids: HashSet<String>,
    id_order: VecDeque<String>,
    id_window: usize,
    stats: LedgerStats,
}

/// Default number of recent transaction ids remembered for duplicate detection.
pub const DEFAULT_ID_WINDOW: usize = 100_000;

impl Ledger {
    /// A ledger whose accounts open with `opening` (the original uses 100).
    pub fn new(opening: Money) -> Self {
        Self::with_id_window(opening, DEFAULT_ID_WINDOW)
    }

    pub fn with_id_window(opening: Money, id_window: usize) -> Self {
        Ledger {
            opening,
            accounts: BTreeMap::new(),
            next_offsets: BTreeMap::new(),
            partitions: BTreeMap::new(),
            recent_ids: HashSet::new(),
            id_order: VecDeque::new(),
            id_window: id_window.max(1),
            stats: LedgerStats::default(),
        }
    }

    pub fn opening_balance(&self) -> Money {
        self.opening
    }

    pub fn account(&self, account: AccountId) -> AccountState {
        self.accounts
            .get(&account)
            .copied()
            .unwrap_or(AccountState {
                balance: self.opening,
                count: 0,
            })
    }

    pub fn accounts(&self) -> &BTreeMap<AccountId, AccountState> {
        &self.accounts
    }

    /// The partition `account`'s transactions were last applied from, if any came from one.
    pub fn partition_of(&self, account: AccountId) -> Option<i32> {
        self.partitions.get(&account).copied()
    }

    /// Next offset to apply for each partition seen so far.
    pub fn next_offsets(&self) -> &BTreeMap<i32, i64> {
        &self.next_offsets
    }

    pub fn stats(&self) -> LedgerStats {
        self.stats
    }

    /// Whether the record at `pos` has been applied (or skipped) already.
    pub fn has_seen(&self, pos: Position) -> bool {
        self.next_offsets
            .get(&pos.partition)
            .is_some_and(|next| pos.offset < *next)
    }

    /// The first offset of `partition` not yet handled (0 for a partition never seen). A record
    /// arriving above it means the ones in between were handled elsewhere (another instance of
    /// the group had the partition) and must be caught up before it is applied.
    pub fn next_offset(&self, partition: i32) -> i64 {
        self.next_offsets.get(&partition).copied().unwrap_or(0)
    }

    /// Marks every offset of `partition` below `offset` as handled: records that no longer
    /// exist (deleted by the topic's retention). False if they were all handled already.
    pub fn skip_to(&mut self, partition: i32, offset: i64) -> bool {
        if self.next_offset(partition) >= offset {
            return false;
        }
        self.next_offsets.insert(partition, offset);
        true
    }

    /// Whether `id` is among the recently applied transaction ids.
    pub fn knows_id(&self, id: &str) -> bool {
        self.recent_ids.contains(id)
    }

    /// Marks the record at `pos` as handled without applying anything (a malformed record).
    /// False if it had been handled already.
    pub fn skip(&mut self, pos: Position) -> bool {
        if self.has_seen(pos) {
            return false;
        }
        self.next_offsets.insert(pos.partition, pos.offset + 1);
        true
    }

    /// Applies one (already validated) transaction read from `pos` (or from nowhere in
    /// particular, for `None`).
    pub fn apply(&mut self, tx: &Transaction, pos: Option<Position>) -> Outcome {
        if let Some(pos) = pos {
            if self.has_seen(pos) {
                self.stats.replayed += 1;
                return Outcome::Replayed;
            }
            self.next_offsets.insert(pos.partition, pos.offset + 1);
        }
        if self.recent_ids.contains(&tx.transaction_id) {
            self.stats.duplicate_ids += 1;
            return Outcome::DuplicateId;
        }
        let mut state = self.account(tx.account);
        let Some(balance) = state.balance.checked_add(tx.delta()) else {
            self.stats.overflows += 1;
            return Outcome::Overflow;
        };
        state.balance = balance;
        state.count += 1;
        self.accounts.insert(tx.account, state);
        if let Some(pos) = pos {
            self.partitions.insert(tx.account, pos.partition);
        }
        self.remember(&tx.transaction_id);
        self.stats.applied += 1;
        let producer_agrees = tx.new_balance.map(|nb| nb == balance);
        if producer_agrees == Some(false) {
            self.stats.mismatches += 1;
        }
        Outcome::Applied {
            balance,
            count: state.count,
            producer_agrees,
        }
    }

    fn remember(&mut self, id: &str) {
        if self.id_order.len() >= self.id_window
            && let Some(old) = self.id_order.pop_front()
        {
            self.recent_ids.remove(&old);
        }
        self.recent_ids.insert(id.to_owned());
        self.id_order.push_back(id.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::TxType;
    use proptest::prelude::*;

    fn tx(
        account: AccountId,
        id: &str,
        ty: TxType,
        amount: i64,
        new_balance: Option<i64>,
    ) -> Transaction {
        Transaction {
            account,
            transaction_id: id.into(),
            transaction_type: ty,
            amount: Money::from_minor(amount),
            new_balance: new_balance.map(Money::from_minor),
            transaction_summary: Default::default(),
            timestamp_ms: None,
        }
    }

    #[test]
    fn applies_and_checks_the_producer() {
        let mut l = Ledger::new(Money::from_major(100));
        let out = l.apply(&tx(3, "a", TxType::Debit, 800, Some(9200)), None);
        assert_eq!(
            out,
            Outcome::Applied {
                balance: Money::from_minor(9200),
                count: 1,
                producer_agrees: Some(true)
            }
        );
        let out = l.apply(&tx(3, "b", TxType::Credit, 100, Some(1)), None);
        assert_eq!(
            out,
            Outcome::Applied {
                balance: Money::from_minor(9300),
                count: 2,
                producer_agrees: Some(false)
            }
        );
        assert_eq!(l.stats().mismatches, 1);
        assert_eq!(
            l.account(4),
            AccountState {
                balance: Money::from_major(100),
                count: 0
            }
        );
    }

    #[test]
    fn skips_replays_and_duplicate_ids() {
        let mut l = Ledger::new(Money::ZERO);
        let p = |o| {
            Some(Position {
                partition: 2,
                offset: o,
            })
        };
        assert!(matches!(
            l.apply(&tx(1, "a", TxType::Credit, 5, None), p(10)),
            Outcome::Applied { .. }
        ));
        assert_eq!(
            l.apply(&tx(1, "a", TxType::Credit, 5, None), p(10)),
            Outcome::Replayed
        );
        assert_eq!(
            l.apply(&tx(1, "z", TxType::Credit, 5, None), p(3)),
            Outcome::Replayed
        );
        assert_eq!(
            l.apply(&tx(1, "a", TxType::Credit, 5, None), p(11)),
            Outcome::DuplicateId
        );
        assert_eq!(
            l.apply(&tx(1, "a", TxType::Credit, 5, None), None),
            Outcome::DuplicateId
        );
        assert_eq!(l.account(1).balance, Money::from_minor(5));
        assert_eq!(l.next_offsets().get(&2), Some(&12));
    }

    #[test]
    fn next_offset_reveals_gaps_and_skip_to_closes_them() {
        let mut l = Ledger::new(Money::ZERO);
        assert_eq!(l.next_offset(4), 0);
        let at = |o| Position {
            partition: 4,
            offset: o,
        };
        l.apply(&tx(1, "a", TxType::Credit, 5, None), Some(at(0)));
        assert_eq!(l.next_offset(4), 1);
        assert!(l.skip_to(4, 7));
        assert!(!l.skip_to(4, 3), "never moves back");
        assert_eq!(l.next_offset(4), 7);
        assert!(l.has_seen(at(6)));
        assert!(!l.has_seen(at(7)));
        assert_eq!(l.next_offset(5), 0, "other partitions untouched");
        assert_eq!(l.partition_of(1), Some(4));
        assert_eq!(l.partition_of(2), None);
    }

    #[test]
    fn id_window_is_bounded() {
        let mut l = Ledger::with_id_window(Money::ZERO, 2);
        for id in ["a", "b", "c"] {
            l.apply(&tx(1, id, TxType::Credit, 1, None), None);
        }
        assert_eq!(l.id_order.len(), 2);
        assert_eq!(l.recent_ids.len(), 2);
        // "a" fell out of the window, so it is no longer recognised.
        assert!(matches!(
            l.apply(&tx(1, "a", TxType::Credit, 1, None), None),
            Outcome::Applied { .. }
        ));
        assert_eq!(
            l.apply(&tx(1, "c", TxType::Credit, 1, None), None),
            Outcome::DuplicateId
        );
    }

    #[test]
    fn refuses_overflow() {
        let mut l = Ledger::new(Money::from_minor(i64::MAX - 1));
        assert_eq!(
            l.apply(&tx(1, "a", TxType::Credit, 5, None), None),
            Outcome::Overflow
        );
        assert_eq!(l.account(1).count, 0);
    }

    /// Per-account streams, each ordered, spread over partitions like keyed Kafka records.
    fn streams() -> impl Strategy<Value = Vec<(AccountId, bool, i64)>> {
        prop::collection::vec((1u32..6, any::<bool>(), 1i64..100_000), 0..200)
    }

    proptest! {
        #[test]
        fn any_interleaving_gives_credits_minus_debits(
            txs in streams(),
            partitions in 1i32..7,
            seed in any::<u64>(),
        ) {
            // Split into per-partition logs (key → partition), then interleave them randomly
            // (order within a partition kept), as consumers of several partitions see them.
            let mut logs: Vec<Vec<Transaction>> = vec![Vec::new(); partitions as usize];
            let mut expected: BTreeMap<AccountId, (i64, u64)> = BTreeMap::new();
            for (i, (acct, credit, amt)) in txs.iter().enumerate() {
                let ty = if *credit { TxType::Credit } else { TxType::Debit };
                logs[(*acct as i32 % partitions) as usize].push(tx(*acct, &format!("t{i}"), ty, *amt, None));
                let e = expected.entry(*acct).or_insert((0, 0));
                e.0 += if *credit { *amt } else { -*amt };
                e.1 += 1;
            }
            let mut cursors = vec![0usize; logs.len()];
            let mut state = seed;
            let mut ledger = Ledger::new(Money::ZERO);
            loop {
                let live: Vec<usize> = (0..logs.len()).filter(|p| cursors[*p] < logs[*p].len()).collect();
                if live.is_empty() { break; }
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let p = live[(state >> 33) as usize % live.len()];
                let t = &logs[p][cursors[p]];
                let pos = Position { partition: p as i32, offset: cursors[p] as i64 };
                let applied = matches!(ledger.apply(t, Some(pos)), Outcome::Applied { .. });
                prop_assert!(applied, "a new record must apply");
                // Redelivery of anything up to here changes nothing.
                if state % 3 == 0 {
                    prop_assert_eq!(ledger.apply(t, Some(pos)), Outcome::Replayed);
                    prop_assert_eq!(ledger.apply(t, None), Outcome::DuplicateId);
                }
                cursors[p] += 1;
            }
            for (acct, (net, count)) in &expected {
                prop_assert_eq!(ledger.account(*acct), AccountState { balance: Money::from_minor(*net), count: *count });
            }
            prop_assert_eq!(ledger.accounts().len(), expected.len());
            prop_assert_eq!(ledger.stats().applied, txs.len() as u64);
        }

        #[test]
        fn applying_a_duplicate_changes_nothing(txs in streams(), dup in any::<prop::sample::Index>()) {
            let mut ledger = Ledger::new(Money::from_major(100));
            let all: Vec<Transaction> = txs.iter().enumerate().map(|(i, (a, c, amt))| {
                tx(*a, &format!("t{i}"), if *c { TxType::Credit } else { TxType::Debit }, *amt, None)
            }).collect();
            for t in &all { ledger.apply(t, None); }
            if all.is_empty() { return Ok(()); }
            let before = ledger.accounts().clone();
            let t = dup.get(&all);
            prop_assert_eq!(ledger.apply(t, None), Outcome::DuplicateId);
            prop_assert_eq!(ledger.accounts(), &before);
        }
    }
}
