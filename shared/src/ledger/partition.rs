//! One partition's state: each account's net and count from that partition's records, the next
//! offset, the counters and the duplicate-id window.

use std::collections::BTreeMap;

use super::{AccountState, LedgerStats, Outcome, id_digest};
use crate::invariant::Own;
use crate::money::Money;
use crate::transaction::{AccountId, Transaction, TxFields};

mod id_window;

use id_window::IdWindow;

/// How [`PartitionLedger::apply_checked`] checks a record's `new_balance`, which the producer
/// computes over the whole account, while a partition holds only its own records' part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BalanceCheck {
    /// Against `base` plus this partition's net for the account, where `base` is the opening
    /// balance plus the account's nets in every other partition (none where records are keyed
    /// by account, the usual case).
    Against(Money),
    /// Not checked, and counted in [`LedgerStats::unchecked`]: the account's records are
    /// spread over partitions in a way the calculator cannot add up in order (not keyed by
    /// account, or partitions held by another server).
    Unchecked,
    /// Not checked and not counted (see [`PartitionLedger::apply`]).
    Skip,
}

/// The state of one partition: everything its records below `next_offset` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLedger {
    pub(super) next_offset: i64,
    /// Per account: net amount (credits − debits, opening excluded) and count.
    pub(super) accounts: BTreeMap<AccountId, AccountState>,
    pub(super) stats: LedgerStats,
    window_width: i64,
    pub(super) window: IdWindow,
    /// Dead letters decided but not yet acknowledged by the dead-letter topic: while any is
    /// outstanding the state is not a cut to snapshot (a crash would lose the dead letter).
    pub(super) unconfirmed: u32,
    /// The invariant's applied side: what this server's producer's records did here.
    pub(super) own: Own,
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
            window: IdWindow::new(window_width.max(1)),
            unconfirmed: 0,
            own: Own::default(),
        }
    }

    /// The same state, with the invariant's counts a snapshot kept alongside it.
    pub fn with_own(self, own: Own) -> Self {
        PartitionLedger { own, ..self }
    }

    /// What this server's producer's records did in this partition (see [`Own`]).
    pub fn own(&self) -> &Own {
        &self.own
    }

    /// Counts `producer`'s records as this server's from now on (see [`Own::count_as_own`]).
    pub fn count_as_own(&mut self, producer: &std::sync::Arc<str>) {
        self.own.count_as_own(producer);
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
            own: Own::default(),
            ..*self
        }
    }

    /// Dead letters decided and not yet acknowledged (see [`crate::Ledger::dead_letter_pending`]).
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
        if self.window.newest.is_some_and(|o| o >= offset) {
            return; // observed already (the window only grows at its end)
        }
        let from = self.window_start();
        self.window.push(offset, id_digest(id), from);
    }

    /// Forgets the id window (the records it came from are being re-read).
    pub fn clear_window(&mut self) {
        self.window.clear();
    }

    /// Whether the transaction `id` at `offset` would be refused as a duplicate.
    pub fn is_duplicate(&self, offset: i64, id: &str) -> bool {
        self.window.contains_before(
            id_digest(id),
            offset.saturating_sub(self.window_width),
            offset,
        )
    }

    /// Adds the id at `offset` (the newest record) to the window.
    fn remember(&mut self, offset: i64, digest: u64) {
        let from = (offset + 1).saturating_sub(self.window_width);
        self.window.push(offset, digest, from);
    }

    /// Applies one (already validated) transaction read at `offset`, without checking the
    /// producer's `new_balance` (`producer_agrees` is `None`, nothing is counted): records
    /// read again after a restart or for a lesson, whose check ran (or could not run) live.
    /// `balance` is `opening` plus the partition's net for the account. A duplicate or an
    /// overflow changes nothing: the caller dead-letters the record and then records that
    /// with [`dead_letter`](Self::dead_letter).
    pub fn apply(&mut self, tx: &impl TxFields, offset: i64, opening: Money) -> Outcome {
        self.apply_checked(tx, offset, opening, BalanceCheck::Skip)
    }

    /// [`apply`](Self::apply), checking the producer's `new_balance` as `check` says and
    /// counting the result (a mismatch, or a record left unchecked).
    pub fn apply_checked(
        &mut self,
        tx: &impl TxFields,
        offset: i64,
        opening: Money,
        check: BalanceCheck,
    ) -> Outcome {
        if offset < self.next_offset {
            self.stats.replayed += 1;
            return Outcome::Replayed;
        }
        let digest = id_digest(tx.id());
        // One probe decides "duplicate" and records the id (taken back on an overflow).
        let from = offset.saturating_sub(self.window_width);
        let Some(undo) = self.window.insert_unless_within(digest, offset, from) else {
            return Outcome::DuplicateId;
        };
        let (state, inserted) = match self.accounts.entry(tx.account()) {
            std::collections::btree_map::Entry::Occupied(o) => (o.into_mut(), false),
            std::collections::btree_map::Entry::Vacant(v) => {
                (v.insert(AccountState::default()), true)
            }
        };
        let Some((net, balance)) = state
            .balance
            .checked_add(tx.delta())
            .and_then(|net| Some((net, net.checked_add(opening)?)))
        else {
            if inserted {
                self.accounts.remove(&tx.account());
            }
            self.window.undo(undo);
            return Outcome::Overflow;
        };
        state.balance = net;
        state.count += 1;
        let state = *state;
        self.next_offset = offset + 1;
        self.window.sweep(from);
        self.stats.applied += 1;
        self.own.count(tx.producer(), tx.account(), tx.delta());
        let (balance, producer_agrees) = match (check, tx.new_balance()) {
            (BalanceCheck::Against(base), Some(nb)) => {
                // `base` + this partial fits whenever the account's total does; one that
                // does not (hostile amounts spread over partitions) cannot agree.
                let whole = base.checked_add(net);
                (whole.unwrap_or(balance), Some(whole == Some(nb)))
            }
            (BalanceCheck::Unchecked, Some(_)) => {
                self.stats.unchecked += 1;
                (balance, None)
            }
            _ => (balance, None),
        };
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
            self.remember(offset, id_digest(&tx.transaction_id));
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
