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
//! Balances are computed here; the producer's `new_balance` is only *checked*, against the
//! partition's own view of the account (opening + the partition's net), so the check too is a
//! function of the partition's records alone.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::api::AccountTotals;
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
        self.overflows += o.overflows;
        self.dead_lettered += o.dead_lettered;
        self.dead_letter_failed += o.dead_letter_failed;
    }
}

/// Default width, in offsets of one partition, of the duplicate-id window.
pub const DEFAULT_ID_WINDOW: i64 = 10_000;

/// A stable 64-bit digest of a transaction id: the window keeps 8 bytes per id, whatever the
/// id's length, and the digest never changes between builds (unlike std's hasher).
pub fn id_digest(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// Digests of the transaction ids at the last `width` offsets of a partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct IdWindow {
    entries: VecDeque<(i64, u64)>,
    counts: HashMap<u64, u32>,
}

impl IdWindow {
    /// Forgets ids at offsets below `from`.
    fn evict_below(&mut self, from: i64) {
        while let Some(&(o, d)) = self.entries.front() {
            if o >= from {
                break;
            }
            self.entries.pop_front();
            if let Some(c) = self.counts.get_mut(&d) {
                *c -= 1;
                if *c == 0 {
                    self.counts.remove(&d);
                }
            }
        }
    }

    fn contains(&self, digest: u64) -> bool {
        self.counts.contains_key(&digest)
    }

    fn push(&mut self, offset: i64, digest: u64) {
        self.entries.push_back((offset, digest));
        *self.counts.entry(digest).or_default() += 1;
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.counts.clear();
    }
}

/// The state of one partition: everything its records below `next_offset` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLedger {
    next_offset: i64,
    /// Per account: net amount (credits − debits, opening excluded) and count.
    accounts: BTreeMap<AccountId, AccountState>,
    stats: LedgerStats,
    window_width: i64,
    window: IdWindow,
    /// Dead letters decided but not yet acknowledged by the dead-letter topic: while any is
    /// outstanding the state is not a cut to snapshot (a crash would lose the dead letter).
    unconfirmed: u32,
}

impl PartitionLedger {
    pub fn new(window_width: i64) -> Self {
        Self::restored(0, BTreeMap::new(), LedgerStats::default(), window_width)
    }

    /// A partition's state as a snapshot recorded it; its id window is empty until the records
    /// before `next_offset` are [observed](Self::observe) again.
    pub fn restored(
        next_offset: i64,
        accounts: BTreeMap<AccountId, AccountState>,
        stats: LedgerStats,
        window_width: i64,
    ) -> Self {
        PartitionLedger {
            next_offset,
            accounts,
            stats,
            window_width: window_width.max(1),
            window: IdWindow::default(),
            unconfirmed: 0,
        }
    }

    /// A copy keeping only the accounts `keep` accepts (the producer's view needs only the
    /// generator's accounts, not the million a foreign producer may have sent).
    pub fn copy_with_accounts(&self, keep: impl Fn(AccountId) -> bool) -> PartitionLedger {
        PartitionLedger {
            accounts: self
                .accounts
                .iter()
                .filter(|(a, _)| keep(**a))
                .map(|(a, s)| (*a, *s))
                .collect(),
            window: self.window.clone(),
            ..*self
        }
    }

    /// Dead letters decided and not yet acknowledged (see [`Ledger::dead_letter_pending`]).
    pub fn unconfirmed(&self) -> u32 {
        self.unconfirmed
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Net amount (opening excluded) and count per account, from this partition's records.
    pub fn accounts(&self) -> &BTreeMap<AccountId, AccountState> {
        &self.accounts
    }

    pub fn stats(&self) -> LedgerStats {
        self.stats
    }

    pub fn window_width(&self) -> i64 {
        self.window_width
    }

    /// First offset whose transaction id the window must know before `next_offset` is applied.
    pub fn window_start(&self) -> i64 {
        self.next_offset.saturating_sub(self.window_width).max(0)
    }

    /// Records the id of the transaction at `offset` (below `next_offset`) in the window
    /// without applying it: rebuilding the window after a restore from a snapshot.
    pub fn observe(&mut self, offset: i64, id: &str) {
        if offset >= self.next_offset || offset < self.window_start() {
            return;
        }
        if self
            .window
            .entries
            .back()
            .is_some_and(|(o, _)| *o >= offset)
        {
            return; // observed already (the window only grows at its end)
        }
        self.window.push(offset, id_digest(id));
    }

    /// Forgets the id window (the records it came from are being re-read).
    pub fn clear_window(&mut self) {
        self.window.clear();
    }

    /// Whether the transaction `id` at `offset` would be refused as a duplicate.
    pub fn is_duplicate(&mut self, offset: i64, id: &str) -> bool {
        self.window
            .evict_below(offset.saturating_sub(self.window_width));
        self.window.contains(id_digest(id))
    }

    /// Applies one (already validated) transaction read at `offset`. The partition's view of
    /// the account (`opening` + its net here) is what the producer's `new_balance` is checked
    /// against. A duplicate or an overflow changes nothing: the caller dead-letters the record
    /// and then records that with [`dead_letter`](Self::dead_letter).
    pub fn apply(&mut self, tx: &Transaction, offset: i64, opening: Money) -> Outcome {
        if offset < self.next_offset {
            self.stats.replayed += 1;
            return Outcome::Replayed;
        }
        if self.is_duplicate(offset, &tx.transaction_id) {
            return Outcome::DuplicateId;
        }
        let mut state = self.accounts.get(&tx.account).copied().unwrap_or_default();
        let Some((net, balance)) = state
            .balance
            .checked_add(tx.delta())
            .and_then(|net| Some((net, net.checked_add(opening)?)))
        else {
            return Outcome::Overflow;
        };
        self.next_offset = offset + 1;
        self.window.push(offset, id_digest(&tx.transaction_id));
        state.balance = net;
        state.count += 1;
        self.accounts.insert(tx.account, state);
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

    /// Marks the record at `offset` handled without applying it, once it is in the dead-letter
    /// topic: not a transaction (`refused` is `None`), or a transaction [`apply`](Self::apply)
    /// refused (a duplicate or an overflow; its id joins the window). False if it had been
    /// handled already.
    pub fn dead_letter(&mut self, offset: i64, refused: Option<&Transaction>) -> bool {
        if offset < self.next_offset {
            return false;
        }
        if let Some(tx) = refused {
            if self.is_duplicate(offset, &tx.transaction_id) {
                self.stats.duplicate_ids += 1;
            } else {
                self.stats.overflows += 1;
            }
            self.window.push(offset, id_digest(&tx.transaction_id));
        }
        self.next_offset = offset + 1;
        self.stats.dead_lettered += 1;
        true
    }

    /// Marks every offset below `offset` handled: records that no longer exist (deleted by the
    /// topic's retention) or that are not records (transaction markers). False if they were.
    pub fn skip_to(&mut self, offset: i64) -> bool {
        if self.next_offset >= offset {
            return false;
        }
        self.next_offset = offset;
        true
    }
}

/// The partitions this process holds, and the accounts' totals across them.
#[derive(Clone, Debug)]
pub struct Ledger {
    opening: Money,
    window_width: i64,
    parts: BTreeMap<i32, PartitionLedger>,
    /// Per account: opening + the sum of its partials, and the total count.
    totals: BTreeMap<AccountId, AccountState>,
    /// The partition each account's transactions were last applied from.
    home: BTreeMap<AccountId, i32>,
    /// Sum of `totals`' balances, kept as they change so the page's totals cost nothing.
    balance_sum: i128,
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
            home: BTreeMap::new(),
            balance_sum: 0,
        }
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
        self.parts
            .entry(partition)
            .or_insert_with(|| PartitionLedger::new(w))
    }

    /// Whether the transaction `id` at `pos` would be refused as a duplicate.
    pub fn is_duplicate(&mut self, pos: Position, id: &str) -> bool {
        self.part_mut(pos.partition).is_duplicate(pos.offset, id)
    }

    /// Applies one (already validated) transaction read at `pos`.
    pub fn apply(&mut self, tx: &Transaction, pos: Position) -> Outcome {
        let opening = self.opening;
        let out = self.part_mut(pos.partition).apply(tx, pos.offset, opening);
        if matches!(out, Outcome::Applied { .. }) {
            let t = self.totals.entry(tx.account).or_insert(AccountState {
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
            self.home.insert(tx.account, pos.partition);
        }
        out
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
    pub fn install(&mut self, partition: i32, state: PartitionLedger) {
        let old = self.parts.insert(partition, state);
        let mut touched: Vec<AccountId> = self.parts[&partition].accounts.keys().copied().collect();
        if let Some(old) = &old {
            touched.extend(old.accounts.keys().copied());
        }
        for a in touched {
            self.recompute(a);
            if self.parts[&partition].accounts.contains_key(&a) {
                self.home.entry(a).or_insert(partition);
            }
        }
    }

    /// A copy of `partition`'s state to restore onto (a fresh one if it is not held).
    pub fn copy_partition(&self, partition: i32) -> PartitionLedger {
        self.parts
            .get(&partition)
            .cloned()
            .unwrap_or_else(|| PartitionLedger::new(self.window_width))
    }

    /// Forgets every partition: the topic was re-created.
    pub fn clear(&mut self) {
        self.parts.clear();
        self.totals.clear();
        self.home.clear();
        self.balance_sum = 0;
    }

    fn recompute(&mut self, account: AccountId) {
        let mut total = AccountState {
            balance: self.opening,
            count: 0,
        };
        let mut found = false;
        for p in self.parts.values() {
            if let Some(s) = p.accounts.get(&account) {
                found = true;
                total.balance =
                    Money::from_minor(total.balance.minor().saturating_add(s.balance.minor()));
                total.count += s.count;
            }
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

#[cfg(test)]
mod tests;
