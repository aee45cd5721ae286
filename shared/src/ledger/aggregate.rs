//! The partitions a process holds, and every account's total across them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use super::{
    AccountState, AccountTotals, DEFAULT_ID_WINDOW, LedgerStats, PartitionLedger, Position,
};
use crate::invariant::Applied;
use crate::money::Money;
use crate::ordering::{OrderWatch, OrderingStats};
use crate::transaction::AccountId;

mod apply;

/// The partitions this process holds, and the accounts' totals across them.
#[derive(Clone, Debug)]
pub struct Ledger {
    opening: Money,
    window_width: i64,
    parts: BTreeMap<i32, PartitionLedger>,
    /// Per account: opening + the sum of its partials, and the total count.
    totals: BTreeMap<AccountId, AccountState>,
    /// The partition each account's transactions were last applied from.
    home: rustc_hash::FxHashMap<AccountId, i32>,
    /// Accounts with records in more than one partition held here: their `new_balance` is
    /// checked against the sum of their partials (see [`BalanceCheck`]).
    spread: rustc_hash::FxHashSet<AccountId>,
    /// False once another server holds some of the topic's partitions: a spread account's
    /// total is then not known here.
    whole_topic: bool,
    /// Sum of `totals`' balances, kept as they change so the page's totals cost nothing.
    balance_sum: i128,
    /// This server's producer (its records are the invariant's applied side), and their nets
    /// per account across partitions.
    producer: Option<Arc<str>>,
    own_totals: Applied,
    /// Records applied after a later one of their account (the keys-and-ordering lesson). Live
    /// only: it counts what this process applied, in the order it applied them.
    order: OrderWatch,
}

impl Ledger {
    /// A ledger whose accounts open with `opening` (the original uses 100).
    pub fn new(opening: Money) -> Self {
        Self::with_id_window(opening, DEFAULT_ID_WINDOW)
    }

    pub fn with_id_window(opening: Money, window_width: i64) -> Self {
        Ledger {
            opening,
            window_width: window_width.max(1),
            parts: BTreeMap::new(),
            totals: BTreeMap::new(),
            home: Default::default(),
            spread: Default::default(),
            whole_topic: true,
            balance_sum: 0,
            producer: None,
            own_totals: Applied::new(),
            order: OrderWatch::default(),
        }
    }

    /// Records applied out of order so far (see [`crate::ordering`]).
    pub fn ordering(&self) -> OrderingStats {
        self.order.stats()
    }

    /// Records of `account` applied out of order.
    pub fn ordering_of(&self, account: AccountId) -> u64 {
        self.order.violations_of(account)
    }

    /// Counts `producer`'s records as this server's (in every partition, held or to come).
    pub fn count_as_own(&mut self, producer: &str) {
        if self.producer.as_deref() == Some(producer) {
            return;
        }
        let producer: Arc<str> = producer.into();
        for p in self.parts.values_mut() {
            p.count_as_own(&producer);
        }
        self.producer = Some(producer);
        self.own_totals.clear();
    }

    /// The invariant's applied side: this server's producer's nets per account, and the number
    /// of records other producers wrote.
    pub fn own_applied(&self) -> (&Applied, u64) {
        (
            &self.own_totals,
            self.parts.values().map(|p| p.own.foreign).sum(),
        )
    }

    /// How many accounts there are and the sum of their balances.
    pub fn totals(&self) -> AccountTotals {
        AccountTotals {
            accounts: self.totals.len() as u64,
            balance: i64::try_from(self.balance_sum).ok().map(Money::from_minor),
        }
    }

    /// Up to `k` accounts to show: accounts `1..=pinned` first (the generator's, those that
    /// exist), then the most active others (most transactions, then lowest id). One pass over
    /// the accounts with a heap of `k`, so 1 M accounts cost milliseconds, not memory.
    pub fn shown_accounts(&self, pinned: AccountId, k: usize) -> Vec<AccountId> {
        let mut shown: Vec<AccountId> = self
            .totals
            .range(1..pinned.saturating_add(1)) // (`1..=0` would panic)
            .map(|(a, _)| *a)
            .take(k)
            .collect();
        let room = k - shown.len();
        if room == 0 {
            return shown;
        }
        // Min-heap on (count, Reverse(id)): its top is the least active of the best so far.
        let mut best: BinaryHeap<Reverse<(u64, Reverse<AccountId>)>> =
            BinaryHeap::with_capacity(room + 1);
        for (a, s) in &self.totals {
            if (1..=pinned).contains(a) {
                continue;
            }
            let key = (s.count, Reverse(*a));
            if best.len() < room {
                best.push(Reverse(key));
            } else if best.peek().is_some_and(|Reverse(low)| key > *low) {
                best.pop();
                best.push(Reverse(key));
            }
        }
        let mut rest: Vec<(u64, Reverse<AccountId>)> =
            best.into_iter().map(|Reverse(k)| k).collect();
        rest.sort_unstable_by(|a, b| b.cmp(a));
        shown.extend(rest.into_iter().map(|(_, Reverse(a))| a));
        shown
    }

    pub fn opening_balance(&self) -> Money {
        self.opening
    }

    pub fn window_width(&self) -> i64 {
        self.window_width
    }

    pub fn account(&self, account: AccountId) -> AccountState {
        self.totals.get(&account).copied().unwrap_or(AccountState {
            balance: self.opening,
            count: 0,
        })
    }

    /// Every account's balance and count, across partitions.
    pub fn accounts(&self) -> &BTreeMap<AccountId, AccountState> {
        &self.totals
    }

    /// The partition `account`'s transactions were last applied from, if any came from one.
    pub fn partition_of(&self, account: AccountId) -> Option<i32> {
        self.home.get(&account).copied()
    }

    pub fn partition(&self, partition: i32) -> Option<&PartitionLedger> {
        self.parts.get(&partition)
    }

    pub fn partitions(&self) -> &BTreeMap<i32, PartitionLedger> {
        &self.parts
    }

    /// Next offset to apply for each partition with records handled.
    pub fn next_offsets(&self) -> BTreeMap<i32, i64> {
        self.parts
            .iter()
            .filter(|(_, s)| s.next_offset > 0)
            .map(|(p, s)| (*p, s.next_offset))
            .collect()
    }

    /// The counters, summed over partitions.
    pub fn stats(&self) -> LedgerStats {
        let mut s = LedgerStats::default();
        for p in self.parts.values() {
            s.add(&p.stats);
        }
        s
    }

    /// Whether the record at `pos` has been handled already.
    pub fn has_seen(&self, pos: Position) -> bool {
        pos.offset < self.next_offset(pos.partition)
    }

    /// The first offset of `partition` not yet handled (0 for a partition never seen). A record
    /// arriving above it means the ones in between were handled elsewhere (another member of
    /// the group had the partition) and must be caught up before it is applied.
    pub fn next_offset(&self, partition: i32) -> i64 {
        self.parts.get(&partition).map_or(0, |p| p.next_offset)
    }

    fn part_mut(&mut self, partition: i32) -> &mut PartitionLedger {
        let w = self.window_width;
        let producer = &self.producer;
        self.parts.entry(partition).or_insert_with(|| {
            let mut p = PartitionLedger::new(w);
            if let Some(producer) = producer {
                p.count_as_own(producer);
            }
            p
        })
    }
}
