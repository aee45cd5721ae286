//! The partitions a process holds, and every account's total across them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use super::{
    AccountState, AccountTotals, BalanceCheck, DEFAULT_ID_WINDOW, LedgerStats, Outcome,
    PartitionLedger, Position,
};
use crate::invariant::Applied;
use crate::money::Money;
use crate::ordering::{OrderWatch, OrderingStats};
use crate::transaction::{AccountId, RecordKey, Transaction, TxFields};

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

    /// Whether the transaction `id` at `pos` would be refused as a duplicate.
    pub fn is_duplicate(&mut self, pos: Position, id: &str) -> bool {
        self.part_mut(pos.partition).is_duplicate(pos.offset, id)
    }

    /// Applies one (already validated) transaction read at `pos`.
    pub fn apply(&mut self, tx: &impl TxFields, pos: Position) -> Outcome {
        self.apply_keyed(tx, pos, RecordKey::Other)
    }

    /// [`apply`](Self::apply), knowing what the record's Kafka key was: it decides how the
    /// producer's balance is checked (`check_for`) and the ordering lesson's
    /// control ([`crate::ordering::OrderingStats::keyed_violations`]).
    pub fn apply_keyed(&mut self, tx: &impl TxFields, pos: Position, key: RecordKey) -> Outcome {
        let opening = self.opening;
        let check = self.check_for(tx.account(), pos.partition, key.keeps_order());
        let out = self
            .part_mut(pos.partition)
            .apply_checked(tx, pos.offset, opening, check);
        if matches!(out, Outcome::Applied { .. }) {
            let t = self.totals.entry(tx.account()).or_insert(AccountState {
                balance: opening,
                count: 0,
            });
            // Partials each fit (checked above); only a foreign producer spreading one account
            // over partitions could push their sum past i64, which saturates.
            let before = t.balance.minor();
            t.balance = Money::from_minor(before.saturating_add(tx.delta().minor()));
            t.count += 1;
            self.balance_sum += i128::from(t.balance.minor()) - i128::from(before);
            if t.count == 1 {
                self.balance_sum += i128::from(before);
            }
            if self
                .home
                .insert(tx.account(), pos.partition)
                .is_some_and(|h| h != pos.partition)
            {
                self.spread.insert(tx.account());
            }
            if let Some(sequence) = tx.sequence() {
                self.order.applied(
                    tx.producer(),
                    tx.account(),
                    sequence,
                    key == RecordKey::Account,
                );
            }
            if tx.producer().is_some() && tx.producer() == self.producer.as_deref() {
                let e = self.own_totals.entry(tx.account()).or_default();
                e.0 = e.0.saturating_add(tx.delta().minor());
                e.1 += 1;
            }
        }
        out
    }

    /// How the `new_balance` of `account`'s record in `partition` is checked: a record whose
    /// key does not keep its account in one partition (`keyed`: by account or the original's
    /// one key), not at all (but on a topic of one partition, where it is in order);
    /// against the partition's view where the account lives in one partition; against the
    /// sum over partitions where its records were spread, if every partition is held here;
    /// otherwise not at all.
    fn check_for(&self, account: AccountId, partition: i32, keyed: bool) -> BalanceCheck {
        // Keyed at random or not at all, on a topic of several partitions: its account's other records
        // may sit in partitions not applied this far yet, before it is even known as spread.
        let held = self.parts.len() + usize::from(!self.parts.contains_key(&partition));
        if !keyed && held > 1 {
            return BalanceCheck::Unchecked;
        }
        let spread = self.spread.contains(&account)
            || self.home.get(&account).is_some_and(|h| *h != partition);
        if !spread {
            return BalanceCheck::Against(self.opening);
        }
        if !keyed || !self.whole_topic {
            return BalanceCheck::Unchecked;
        }
        let mut base = self.opening;
        for (p, part) in &self.parts {
            if *p == partition {
                continue;
            }
            if let Some(s) = part.accounts.get(&account) {
                match base.checked_add(s.balance) {
                    Some(b) => base = b,
                    None => return BalanceCheck::Unchecked,
                }
            }
        }
        BalanceCheck::Against(base)
    }

    /// Another server holds some of the topic's partitions: accounts spread over partitions
    /// are no longer checked (their totals are not known here).
    pub fn topic_shared_with_another_server(&mut self) {
        self.whole_topic = false;
    }

    /// Handles records in consumption order the way the balance calculator decides them one
    /// by one, as far as each is plainly handled: a record below its partition's next offset
    /// was handled already (a re-delivery: [`Outcome::Replayed`], nothing counted); a valid one
    /// at its partition's next offset is [applied](Self::apply_keyed). Stops, leaving the
    /// ledger as it was, at the first record that needs more: an invalid one (`None`), one
    /// beyond its partition's next offset (a catch-up is due), or one the ledger refuses (a
    /// duplicate id, an overflow; both are dead letters). `out` gets the outcome of each record
    /// handled, in order. One call for a whole batch: a caller behind a lock takes it once.
    pub fn apply_run<'t, T: TxFields + 't>(
        &mut self,
        records: impl IntoIterator<Item = (Position, Option<&'t T>, RecordKey)>,
        out: &mut Vec<Outcome>,
    ) {
        for (pos, tx, key) in records {
            let next = self.next_offset(pos.partition);
            if pos.offset < next {
                out.push(Outcome::Replayed);
                continue;
            }
            let Some(tx) = tx.filter(|_| pos.offset == next) else {
                return;
            };
            match self.apply_keyed(tx, pos, key) {
                o @ Outcome::Applied { .. } => out.push(o),
                // Refused without a trace (see `PartitionLedger::apply`): the caller decides it.
                _ => return,
            }
        }
    }

    /// See [`PartitionLedger::dead_letter`].
    pub fn dead_letter(&mut self, pos: Position, refused: Option<&Transaction>) -> bool {
        self.part_mut(pos.partition)
            .dead_letter(pos.offset, refused)
    }

    /// Like [`dead_letter`](Self::dead_letter), for a dead letter that is on its way: the
    /// partition is not snapshotted until [`confirm_dead_letter`](Self::confirm_dead_letter).
    /// Deciding at once lets the records after it be handled while the dead letter travels.
    pub fn dead_letter_pending(&mut self, pos: Position, refused: Option<&Transaction>) -> bool {
        let p = self.part_mut(pos.partition);
        let new = p.dead_letter(pos.offset, refused);
        if new {
            p.unconfirmed += 1;
        }
        new
    }

    /// The dead-letter topic acknowledged a pending dead letter, or (`failed`) could not take
    /// it, which is counted.
    pub fn confirm_dead_letter(&mut self, partition: i32, failed: bool) {
        let p = self.part_mut(partition);
        p.unconfirmed = p.unconfirmed.saturating_sub(1);
        if failed {
            p.stats.dead_letter_failed += 1;
        }
    }

    /// See [`PartitionLedger::skip_to`].
    pub fn skip_to(&mut self, partition: i32, offset: i64) -> bool {
        self.part_mut(partition).skip_to(offset)
    }

    /// Replaces the state of `partition` (restored from a snapshot and the topic, or caught up
    /// after a rebalance), keeping every account's total exact.
    pub fn install(&mut self, partition: i32, mut state: PartitionLedger) {
        if let Some(producer) = &self.producer {
            state.count_as_own(producer);
        }
        let old = self.parts.insert(partition, state);
        let mut touched: Vec<AccountId> = self.parts[&partition].accounts.keys().copied().collect();
        if let Some(old) = &old {
            touched.extend(old.accounts.keys().copied());
        }
        touched.sort_unstable();
        touched.dedup();
        for a in touched {
            self.recompute(a);
            if self.parts[&partition].accounts.contains_key(&a) {
                self.home.entry(a).or_insert(partition);
            }
            let held_in = self
                .parts
                .values()
                .filter(|p| p.accounts.contains_key(&a))
                .count();
            if held_in > 1 {
                self.spread.insert(a);
            } else {
                self.spread.remove(&a);
            }
        }
    }

    /// Forgets every partition: the topic was re-created.
    pub fn clear(&mut self) {
        self.parts.clear();
        self.totals.clear();
        self.home.clear();
        self.spread.clear();
        self.balance_sum = 0;
        self.own_totals.clear();
        self.order.clear();
    }

    fn recompute(&mut self, account: AccountId) {
        let mut total = AccountState {
            balance: self.opening,
            count: 0,
        };
        let mut found = false;
        let mut own = (0i64, 0u64);
        for p in self.parts.values() {
            if let Some(s) = p.accounts.get(&account) {
                found = true;
                total.balance =
                    Money::from_minor(total.balance.minor().saturating_add(s.balance.minor()));
                total.count += s.count;
            }
            if let Some((net, n)) = p.own.applied.get(&account) {
                own = (own.0.saturating_add(*net), own.1 + n);
            }
        }
        if own.1 > 0 {
            self.own_totals.insert(account, own);
        } else {
            self.own_totals.remove(&account);
        }
        let old = if found {
            self.totals.insert(account, total)
        } else {
            self.home.remove(&account);
            self.totals.remove(&account)
        };
        self.balance_sum -= old.map_or(0, |o| i128::from(o.balance.minor()));
        if found {
            self.balance_sum += i128::from(total.balance.minor());
        }
    }
}
