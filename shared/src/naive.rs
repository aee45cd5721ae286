//! The delivery-semantics lesson: a deliberately naive balance calculator beside the exact one.
//!
//! Like many real consumers it keeps its balances in a store of its own (a file, written after
//! each batch) and commits its offsets to Kafka *separately*: at-most-once commits before it
//! processes a batch, at-least-once after. A crash between the two steps loses the batch
//! (at-most-once) or counts it twice (at-least-once). The exact calculator avoids both because
//! its state and its offsets are one cut (the changelog snapshot names the offsets it covers).
//!
//! The naive book keeps per partition what it applied, so it can be compared with the exact
//! ledger partition by partition whenever both have read a partition to the same offset: the
//! difference in transaction counts is then exactly the records lost or doubled.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::transaction::AccountId;

mod book;

pub use book::{BookEntry, Coverage, NaiveBook, PartitionDiff, compare};

/// When the naive calculator commits its offsets, relative to saving its balances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Commit after processing and saving: a crash between the two re-reads the batch.
    #[default]
    AtLeastOnce,
    /// Commit before processing: a crash between the two skips the batch.
    AtMostOnce,
}

impl Delivery {
    /// The two steps in the order this mode runs them.
    pub fn steps(self) -> [&'static str; 2] {
        match self {
            Delivery::AtLeastOnce => ["save balances", "commit offsets"],
            Delivery::AtMostOnce => ["commit offsets", "save balances"],
        }
    }

    /// What a crash between the two steps does, in one sentence.
    pub fn consequence(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => {
                "it saved the batch's balances but never committed its offsets, so after the restart it reads the batch again and counts it twice"
            }
            Delivery::AtMostOnce => {
                "it committed the batch's offsets but never saved its balances, so after the restart it starts after the batch and the batch is lost"
            }
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NaiveState {
    #[default]
    Off,
    /// Joining its group (after a crash: waiting for the dead member's session to expire).
    Starting,
    Running,
    /// Crashed between its two steps; restarting.
    Crashed,
    Failed,
}

/// The last crash: which two steps it fell between, and how many records the batch held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crash {
    pub delivery: Delivery,
    pub batch: u64,
    pub at_ms: i64,
}

/// One account where the naive calculator disagrees with the exact one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDiff {
    pub account: AccountId,
    pub exact: Money,
    pub naive: Money,
}

/// Most accounts listed in [`NaiveStatus::accounts`].
pub const MAX_LISTED: usize = 10;

/// The naive calculator as the page and `/api/topic` show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NaiveStatus {
    pub state: NaiveState,
    pub delivery: Delivery,
    /// Its consumer group (kept across its crashes; deleted when the lesson stops).
    pub group: String,
    /// A crash is armed: it happens between the two steps of the next batch with records.
    pub crash_armed: bool,
    pub crashes: u32,
    pub last_crash: Option<Crash>,
    /// Batches and records it processed (a record read twice counts twice).
    pub batches: u64,
    pub applied: u64,
    /// Records it never read (skipped past by a commit) and records it read twice, from the
    /// offsets Kafka handed it ([`Coverage`]).
    pub lost: u64,
    pub doubled: u64,
    /// Partitions compared with the exact calculator at the same offset, of all.
    pub compared: u32,
    pub partitions: u32,
    /// From the latest comparison of each partition: transactions it counted minus the exact
    /// calculator's, and its total minus the exact total.
    pub count_difference: i64,
    pub net_difference: Money,
    pub differing_accounts: u64,
    /// The first few accounts that differ, with both balances.
    pub accounts: Vec<AccountDiff>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl NaiveStatus {
    /// Sums the latest comparison of each partition into the status.
    pub fn set_comparison(
        &mut self,
        diffs: &BTreeMap<i32, PartitionDiff>,
        balances: impl Fn(AccountId) -> (Money, Money),
    ) {
        self.compared = diffs.len() as u32;
        self.count_difference = diffs.values().map(|d| d.records).sum();
        self.net_difference = Money::from_minor(
            diffs
                .values()
                .fold(0i64, |s, d| s.saturating_add(d.net_minor)),
        );
        let differing: BTreeSet<AccountId> = diffs
            .values()
            .flat_map(|d| d.accounts.iter().copied())
            .collect();
        self.differing_accounts = differing.len() as u64;
        self.accounts = differing
            .into_iter()
            .take(MAX_LISTED)
            .map(|account| {
                let (exact, naive) = balances(account);
                AccountDiff {
                    account,
                    exact,
                    naive,
                }
            })
            .collect();
    }

    /// The sentence the page shows.
    pub fn describe(&self) -> String {
        self.lines().join("; ")
    }

    /// The same, one clause per line: what it does, what it read, how its balances compare,
    /// and its last crash.
    pub fn lines(&self) -> Vec<String> {
        let [first, second] = self.delivery.steps();
        let records = if self.lost == 0 && self.doubled == 0 {
            "no record lost or read twice".to_owned()
        } else {
            format!("{} records lost, {} read twice", self.lost, self.doubled)
        };
        let comparison = if self.compared == 0 {
            "balances not yet compared with the exact calculator (a partition is compared once both have read it to the same offset)".to_owned()
        } else if self.differing_accounts == 0 {
            format!(
                "balances equal to the exact calculator's in {} of {} partitions",
                self.compared, self.partitions
            )
        } else {
            format!(
                "✗ balances differ from the exact calculator's: {:+} transactions, total off by {} ({} accounts)",
                self.count_difference, self.net_difference, self.differing_accounts
            )
        };
        let state = match self.state {
            NaiveState::Off => return vec!["not running".into()],
            NaiveState::Starting if self.crashes > 0 => {
                "restarting after the crash (its group waits for the dead member's session to time out)".to_owned()
            }
            NaiveState::Starting => "starting".to_owned(),
            NaiveState::Running => format!("running: {first}, then {second}, per batch"),
            NaiveState::Crashed => "crashed".to_owned(),
            NaiveState::Failed => format!("failed: {}", self.note),
        };
        let mut lines = vec![state, records, comparison];
        if let Some(c) = self.last_crash {
            lines.push(format!(
                "crashed {} time(s), last between \"{}\" and \"{}\" with {} records in the batch: {}",
                self.crashes,
                c.delivery.steps()[0],
                c.delivery.steps()[1],
                c.batch,
                c.delivery.consequence()
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, PartitionLedger};
    use crate::transaction::Transaction;
    use crate::transaction::{TxType, test_tx};

    fn tx(account: u32, id: &str, amount: i64, ty: TxType) -> Transaction {
        test_tx(account, id, ty, amount)
    }

    #[test]
    fn the_book_adds_whatever_it_is_handed_and_saves_only_what_changed() {
        let mut book = NaiveBook::default();
        assert!(book.apply(0, &tx(1, "a", 500, TxType::Credit)));
        assert!(book.apply(0, &tx(1, "a", 500, TxType::Credit)), "no dedup");
        assert!(book.apply(1, &tx(2, "b", 200, TxType::Debit)));
        assert_eq!(
            book.balance(1, Money::from_minor(100)),
            Money::from_minor(1100)
        );
        assert_eq!(book.balance(2, Money::ZERO), Money::from_minor(-200));
        let changed = book.take_changed();
        assert_eq!(changed.len(), 2);
        assert!(book.take_changed().is_empty());
        book.apply(1, &tx(2, "c", 1, TxType::Credit));
        let later = book.take_changed();
        assert_eq!(later.len(), 1);
        // Loading the saved entries in order gives the same book (the later entry wins).
        let loaded = NaiveBook::from_entries(changed.into_iter().chain(later));
        assert_eq!(loaded.entries(), book.entries());
        // An overflow changes nothing.
        let mut big = tx(3, "d", i64::MAX, TxType::Credit);
        assert!(book.apply(0, &big));
        big.transaction_id = "e".into();
        assert!(!book.apply(0, &big));
        assert_eq!(book.partition(0).unwrap()[&3].count, 1);
    }

    #[test]
    fn lost_and_doubled_records_are_counted_at_the_same_offset_only() {
        let mut exact = PartitionLedger::new(100);
        let mut naive = NaiveBook::default();
        let txs: Vec<_> = (0..4)
            .map(|i| tx(i % 2 + 1, &format!("t{i}"), 100, TxType::Credit))
            .collect();
        for (o, t) in txs.iter().enumerate() {
            exact.apply(t, o as i64, Money::ZERO);
        }
        // At-most-once: the batch at offsets 2..4 was committed, never applied.
        for t in &txs[..2] {
            naive.apply(0, t);
        }
        assert_eq!(compare(naive.partition(0), 2, &exact), None);
        let d = compare(naive.partition(0), 4, &exact).unwrap();
        assert_eq!((d.records, d.net_minor, d.accounts.len()), (-2, -200, 2));
        // At-least-once: the same batch applied twice.
        for t in txs[2..].iter().chain(&txs[2..]).chain(&txs[2..]) {
            naive.apply(0, t);
        }
        let d = compare(naive.partition(0), 4, &exact).unwrap();
        assert_eq!((d.records, d.net_minor), (4, 400));
        // Equal states compare equal.
        let (seeded, offsets) = {
            let mut l = Ledger::new(Money::ZERO);
            l.install(0, exact.clone());
            NaiveBook::seeded_from(&l)
        };
        assert_eq!(offsets, [(0, 4)].into());
        assert_eq!(
            compare(seeded.partition(0), 4, &exact),
            Some(PartitionDiff::default())
        );
    }

    #[test]
    fn coverage_counts_skipped_and_reread_records() {
        let mut c = Coverage::seeded(&[(0, 10)].into());
        for o in 10..15 {
            c.read(0, o);
        }
        // At-most-once: committed 20 before processing 15..20, crashed, restarted at 20.
        c.starts_at(0, 20);
        assert_eq!((c.lost, c.doubled), (5, 0));
        c.read(0, 20);
        // At-least-once: restarted at 18 after reading up to 20.
        c.starts_at(0, 18);
        for o in 18..23 {
            c.read(0, o);
        }
        assert_eq!((c.lost, c.doubled), (5, 3));
        // A partition not seeded starts wherever it is first read.
        c.read(1, 7);
        c.read(1, 8);
        assert_eq!((c.lost, c.doubled), (5, 3));
    }

    #[test]
    fn the_status_sums_partitions_and_says_what_happened() {
        let mut s = NaiveStatus {
            state: NaiveState::Running,
            delivery: Delivery::AtMostOnce,
            partitions: 3,
            ..NaiveStatus::default()
        };
        assert!(s.describe().contains("not yet compared"));
        let diffs: BTreeMap<i32, PartitionDiff> = [
            (
                0,
                PartitionDiff {
                    records: -3,
                    net_minor: -700,
                    accounts: vec![4, 1],
                },
            ),
            (1, PartitionDiff::default()),
        ]
        .into();
        s.set_comparison(&diffs, |a| (Money::from_major(a as i64), Money::ZERO));
        assert_eq!((s.count_difference, s.compared), (-3, 2));
        s.lost = 3;
        assert_eq!(s.net_difference, Money::from_minor(-700));
        assert_eq!(s.accounts[0].account, 1, "listed by account");
        assert_eq!(s.accounts[1].exact, Money::from_major(4));
        s.crashes = 1;
        s.last_crash = Some(Crash {
            delivery: Delivery::AtMostOnce,
            batch: 3,
            at_ms: 0,
        });
        let text = s.describe();
        assert!(text.contains("3 records lost, 0 read twice"), "{text}");
        assert!(
            text.contains("-3 transactions, total off by -7.00"),
            "{text}"
        );
        assert!(text.contains("batch is lost"), "{text}");
        // Inside the page's tagged messages too.
        let m = crate::protocol::ServerMsg::Naive { id: None, naive: s };
        let back: crate::protocol::ServerMsg = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }
}
