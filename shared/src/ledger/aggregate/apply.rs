//! What changes the ledger: records applied (alone or in runs), dead letters, partitions
//! installed from a snapshot or skipped ahead, and each account's total recomputed.

use super::Ledger;
use crate::ledger::{AccountState, BalanceCheck, Outcome, PartitionLedger, Position};
use crate::money::Money;
use crate::transaction::{AccountId, RecordKey, Transaction, TxFields};

impl Ledger {
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
