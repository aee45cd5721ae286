//! The balance calculator's ledger as the rest of the server reaches it, the way mini-redis's
//! `Db` is reached: domain verbs, and never a lock guard handed out. The balance calculator
//! (and its restore) write; the hub, HTTP and the snapshot writer read. Each verb takes the
//! lock for itself and returns owned data, so no caller can hold it across an `.await`, take
//! another lock under it, or keep the calculator waiting longer than one verb.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use cashflow_shared::api::{AccountBalance, AccountTotals, Balances};
use cashflow_shared::invariant::Applied;
use cashflow_shared::ledger::{AccountState, LedgerStats, PartitionLedger, Position};
use cashflow_shared::naive::{NaiveBook, PartitionDiff, compare};
use cashflow_shared::{AccountId, Ledger, Money, Outcome, RecordKey, Transaction, TxFields};

pub struct LedgerStore {
    ledger: RwLock<Ledger>,
}

/// One account as the API and the page show it.
fn account_balance(l: &Ledger, account: AccountId, s: &AccountState) -> AccountBalance {
    AccountBalance {
        account,
        balance: s.balance,
        count: s.count,
        partition: l.partition_of(account),
    }
}

impl LedgerStore {
    pub fn new(ledger: Ledger) -> Self {
        LedgerStore {
            ledger: RwLock::new(ledger),
        }
    }

    // A panic while the lock was held leaves the ledger as the last verb left it (each verb is
    // one ledger call): keep serving it rather than poisoning every later request.
    fn read(&self) -> RwLockReadGuard<'_, Ledger> {
        self.ledger.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Ledger> {
        self.ledger.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn opening_balance(&self) -> Money {
        self.read().opening_balance()
    }

    pub fn window_width(&self) -> i64 {
        self.read().window_width()
    }

    pub fn stats(&self) -> LedgerStats {
        self.read().stats()
    }

    pub fn totals(&self) -> AccountTotals {
        self.read().totals()
    }

    pub fn account(&self, account: AccountId) -> AccountState {
        self.read().account(account)
    }

    pub fn next_offsets(&self) -> BTreeMap<i32, i64> {
        self.read().next_offsets()
    }

    pub fn next_offset(&self, partition: i32) -> i64 {
        self.read().next_offset(partition)
    }

    pub fn has_seen(&self, pos: Position) -> bool {
        self.read().has_seen(pos)
    }

    /// The partitions held.
    pub fn partition_ids(&self) -> Vec<i32> {
        self.read().partitions().keys().copied().collect()
    }

    /// A copy of one partition's state (for a snapshot or a restore to start from).
    pub fn partition(&self, partition: i32) -> Option<PartitionLedger> {
        self.read().partition(partition).cloned()
    }

    /// A copy of the balances for the naive calculator to start from, and the offsets they
    /// cover (one consistent cut).
    pub fn seed_naive(&self) -> (NaiveBook, BTreeMap<i32, i64>) {
        NaiveBook::seeded_from(&self.read())
    }

    /// The naive calculator's state of `partition` against this one's, if both have read it to
    /// `naive_next` (compared under the lock, without copying the partition).
    pub fn compare_naive(
        &self,
        partition: i32,
        naive: Option<&BTreeMap<AccountId, AccountState>>,
        naive_next: i64,
    ) -> Option<PartitionDiff> {
        compare(naive, naive_next, self.read().partition(partition)?)
    }

    /// See [`Ledger::shown_accounts`].
    pub fn shown_accounts(&self, pinned: AccountId, k: usize) -> Vec<AccountId> {
        self.read().shown_accounts(pinned, k)
    }

    /// How many accounts the ledger holds.
    pub fn account_count(&self) -> usize {
        self.read().accounts().len()
    }

    /// These accounts (those that exist).
    pub fn accounts_of(&self, accounts: &[AccountId]) -> Vec<AccountBalance> {
        let l = self.read();
        accounts
            .iter()
            .filter_map(|a| Some(account_balance(&l, *a, l.accounts().get(a)?)))
            .collect()
    }

    /// Those of `accounts` whose figures differ from `sent`'s.
    pub fn changed(
        &self,
        accounts: &[AccountId],
        sent: &BTreeMap<AccountId, AccountBalance>,
    ) -> Vec<AccountBalance> {
        let l = self.read();
        accounts
            .iter()
            .filter_map(|a| l.accounts().get(a).map(|s| account_balance(&l, *a, s)))
            .filter(|b| sent.get(&b.account) != Some(b))
            .collect()
    }

    /// Up to `limit` accounts with ids above `after` with the counters, totals and offsets
    /// they reflect, all read at one moment (so `stats.applied` is exactly what the accounts
    /// show); the topic is left for the caller.
    pub fn balances(&self, after: AccountId, limit: usize) -> Balances {
        let l = self.read();
        let (accounts, next_after) = page(&l, after, limit);
        let stats = l.stats();
        Balances {
            topic: String::new(),
            opening_balance: l.opening_balance(),
            accounts,
            totals: l.totals(),
            next_after,
            next_offsets: l.next_offsets(),
            stats,
            malformed: stats.dead_lettered,
        }
    }
}

/// Up to `limit` accounts with ids above `after`, and the id to continue after if there are
/// more.
fn page(l: &Ledger, after: AccountId, limit: usize) -> (Vec<AccountBalance>, Option<AccountId>) {
    let mut page = l
        .accounts()
        .range((Bound::Excluded(after), Bound::Unbounded));
    let accounts: Vec<AccountBalance> = page
        .by_ref()
        .take(limit)
        .map(|(a, s)| account_balance(l, *a, s))
        .collect();
    let next = page
        .next()
        .is_some()
        .then(|| accounts.last().map(|a| a.account))
        .flatten();
    (accounts, next)
}

impl LedgerStore {
    /// Balances in minor units of accounts `1..=n`, where n is the highest id held, at most
    /// `max` (the charts' history).
    pub fn first_balances(&self, max: u32) -> Vec<i64> {
        let l = self.read();
        let n = l
            .accounts()
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .min(max);
        (1..=n).map(|a| l.account(a).balance.minor()).collect()
    }

    pub fn apply(&self, tx: &Transaction, pos: Position) -> Outcome {
        self.write().apply(tx, pos)
    }

    /// See [`Ledger::topic_shared_with_another_server`].
    pub fn topic_shared_with_another_server(&self) {
        self.write().topic_shared_with_another_server();
    }

    /// See [`Ledger::apply_keyed`].
    pub fn apply_keyed(&self, tx: &impl TxFields, pos: Position, key: RecordKey) -> Outcome {
        self.write().apply_keyed(tx, pos, key)
    }

    /// See [`Ledger::apply_run`]: a run of a batch under one lock, not one a record.
    pub fn apply_run<'t, T: TxFields + 't>(
        &self,
        records: impl IntoIterator<Item = (Position, Option<&'t T>, RecordKey)>,
        out: &mut Vec<Outcome>,
    ) {
        self.write().apply_run(records, out)
    }

    /// See [`Ledger::dead_letter_pending`].
    pub fn dead_letter_pending(&self, pos: Position, refused: Option<&Transaction>) -> bool {
        self.write().dead_letter_pending(pos, refused)
    }

    /// See [`Ledger::confirm_dead_letter`].
    pub fn confirm_dead_letter(&self, partition: i32, failed: bool) {
        self.write().confirm_dead_letter(partition, failed)
    }

    /// Installs restored partitions, all under one lock (readers see all or none of them).
    pub fn install(&self, parts: impl IntoIterator<Item = (i32, PartitionLedger)>) {
        let mut l = self.write();
        for (p, state) in parts {
            l.install(p, state);
        }
    }

    /// Records applied out of order (see [`cashflow_shared::ordering`]).
    pub fn ordering(&self) -> cashflow_shared::ordering::OrderingStats {
        self.read().ordering()
    }

    /// Counts `producer`'s records as this server's (the invariant's applied side).
    pub fn count_as_own(&self, producer: &str) {
        self.write().count_as_own(producer)
    }

    /// The invariant's applied side: this server's producer's nets per account, and the number
    /// of records other producers wrote.
    pub fn own_applied(&self) -> (Applied, u64) {
        let l = self.read();
        let (applied, foreign) = l.own_applied();
        (applied.clone(), foreign)
    }

    /// How many of this server's producer's records were applied (summed under the lock, not
    /// copied: back-pressure asks every 10 ms).
    pub fn own_applied_count(&self) -> u64 {
        self.read().own_applied().0.values().map(|(_, n)| n).sum()
    }

    /// Forgets every partition: the topic was re-created.
    pub fn clear(&self) {
        self.write().clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashflow_shared::TxType;

    /// What `/api/balances` shows is one moment of the ledger: the accounts' counts add up to
    /// `stats.applied` however fast the calculator applies meanwhile (tests and clients compare
    /// balances once `applied` reaches a number).
    #[test]
    fn balances_are_read_at_one_moment() {
        let store = std::sync::Arc::new(LedgerStore::new(Ledger::new(Money::from_major(100))));
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let tx = Transaction {
                        account: 1 + i % 50,
                        transaction_id: format!("t{i}"),
                        transaction_type: TxType::Credit,
                        amount: Money::from_minor(1),
                        new_balance: None,
                        transaction_summary: Default::default(),
                        timestamp_ms: None,
                        producer_id: None,
                        sequence: None,
                    };
                    let offset = i64::from(i / 6);
                    store.apply(
                        &tx,
                        Position {
                            partition: (i % 6) as i32,
                            offset,
                        },
                    );
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() || reads == 0 {
            let b = store.balances(0, 1_000);
            let counted: u64 = b.accounts.iter().map(|a| a.count).sum();
            assert_eq!(counted, b.stats.applied, "read {reads}");
            reads += 1;
        }
        writer.join().expect("writer");
    }
}
