//! Keys and ordering, the first lesson: how the producer keys its records, and the balance
//! calculator's count of records applied out of order.
//!
//! Kafka keeps order only within a partition, and a key always goes to the same partition. Keyed
//! by account (the default), each account's transactions stay in one partition, so they are
//! applied in the order they were made, however many consumers share the work. With one constant
//! key (what the original did) every record goes to one partition: still in order, but nothing
//! runs in parallel. With a random key or none, one account's transactions spread over the
//! partitions and consumers apply them in whatever order their partitions come: every generated
//! transaction carries the account's `sequence` number, so the calculator can count each one
//! applied after a later one of the same account.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::partitioner::{explain, partition_for};
use crate::transaction::{AccountId, ORIGINAL_KEY};

/// How the producer keys its records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStrategy {
    /// The account number: each account on one partition, in order.
    #[default]
    ByAccount,
    /// `"transaction"` on every record, as the original: one partition takes everything.
    Constant,
    /// A new random key per record: an account's records spread over the partitions.
    Random,
    /// No key: the partitioner picks a partition per record.
    None,
}

impl KeyStrategy {
    pub const ALL: [KeyStrategy; 4] = [
        KeyStrategy::ByAccount,
        KeyStrategy::Constant,
        KeyStrategy::Random,
        KeyStrategy::None,
    ];

    /// Its name on the wire (`"by_account"`, …).
    pub fn name(self) -> &'static str {
        match self {
            KeyStrategy::ByAccount => "by_account",
            KeyStrategy::Constant => "constant",
            KeyStrategy::Random => "random",
            KeyStrategy::None => "none",
        }
    }

    pub fn from_name(name: &str) -> Option<KeyStrategy> {
        KeyStrategy::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The key of a record of `account`.
    pub fn key<R: Rng + ?Sized>(self, account: AccountId, rng: &mut R) -> Option<String> {
        match self {
            KeyStrategy::ByAccount => Some(account.to_string()),
            KeyStrategy::Constant => Some(ORIGINAL_KEY.to_owned()),
            KeyStrategy::Random => Some(format!("{:08x}", rng.random::<u32>())),
            KeyStrategy::None => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KeyStrategy::ByAccount => "by account",
            KeyStrategy::Constant => "one constant key",
            KeyStrategy::Random => "random keys",
            KeyStrategy::None => "no key",
        }
    }

    /// Whether one account's records stay in one partition (and so in order).
    pub fn keeps_order(self) -> bool {
        matches!(self, KeyStrategy::ByAccount | KeyStrategy::Constant)
    }

    /// The partition all of `account`'s records go to, when the key decides one.
    pub fn partition_of(self, account: AccountId, partitions: u32) -> Option<i32> {
        match self {
            KeyStrategy::ByAccount => partition_for(account.to_string().as_bytes(), partitions),
            KeyStrategy::Constant => partition_for(ORIGINAL_KEY.as_bytes(), partitions),
            KeyStrategy::Random | KeyStrategy::None => None,
        }
    }

    /// The key's way to a partition, for the page: `key "17" → murmur2("17") mod 6 = 3`.
    pub fn key_path(self, account: AccountId, partitions: u32) -> Option<String> {
        let keyed = |key: &str| Some(format!("key \"{key}\" → {}", explain(key, partitions)?));
        match self {
            KeyStrategy::ByAccount => keyed(&account.to_string()),
            KeyStrategy::Constant => keyed(ORIGINAL_KEY),
            KeyStrategy::Random => Some("a new random key on every record → any partition".into()),
            KeyStrategy::None => {
                Some("no key → the producer spreads the records over the partitions".into())
            }
        }
    }

    /// What it does, in one sentence for the class.
    pub fn explain(self) -> &'static str {
        match self {
            KeyStrategy::ByAccount => {
                "Keyed by account: the same key always goes to the same partition, and Kafka keeps order within a partition, so each account's transactions are applied in order however many consumers share the work."
            }
            KeyStrategy::Constant => {
                "One key for every record: all of them land in one partition, so order holds, but one consumer does all the work while the other partitions stay empty."
            }
            KeyStrategy::Random => {
                "A random key sends one account's transactions to different partitions, and Kafka orders only within a partition: consumers apply them in whatever order their partitions come."
            }
            KeyStrategy::None => {
                "Without a key the producer spreads records over the partitions, so one account's transactions are read from several partitions, in no guaranteed order."
            }
        }
    }
}

/// Records applied out of order, as the page and `/api/topic` show them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderingStats {
    /// Records applied after a later record of the same account (by its `sequence`).
    pub violations: u64,
    /// Accounts with at least one.
    pub accounts: u64,
    /// The account with the most, and how many.
    pub worst: Option<(AccountId, u64)>,
    /// Records with a sequence number seen (the producer's; other producers write none).
    pub checked: u64,
    /// Records keyed by their account applied after a later record of the same account that
    /// was keyed by its account too. Whatever other keys did before, this stays 0 while Kafka
    /// keeps each partition in order: the ordering lesson's control case counts these.
    #[serde(default)]
    pub keyed_violations: u64,
}

/// Per producer and account, the highest sequence number applied; per account, the records
/// applied below it. (Each producer numbers its own records: two producers writing the same
/// account are not out of order with each other.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderWatch {
    /// Per producer and account: the highest sequence applied, and the highest of the records
    /// keyed by account (0: none yet; sequences start at 1).
    /// Looked up once a record: hashed, not ordered.
    highest: rustc_hash::FxHashMap<(u64, AccountId), (u64, u64)>,
    late: BTreeMap<AccountId, u64>,
    stats: OrderingStats,
}

impl OrderWatch {
    /// A record of `account` with `sequence`, written by `producer`, was applied; `keyed`: its
    /// Kafka key was the account's own.
    pub fn applied(
        &mut self,
        producer: Option<&str>,
        account: AccountId,
        sequence: u64,
        keyed: bool,
    ) {
        self.stats.checked += 1;
        let who = crate::ledger::id_digest(producer.unwrap_or_default());
        let (highest, highest_keyed) = self.highest.entry((who, account)).or_insert((sequence, 0));
        if keyed {
            if sequence < *highest_keyed {
                self.stats.keyed_violations += 1;
            } else {
                *highest_keyed = sequence;
            }
        }
        if sequence >= *highest {
            *highest = sequence;
            return;
        }
        let late = self.late.entry(account).or_default();
        *late += 1;
        if *late == 1 {
            self.stats.accounts += 1;
        }
        self.stats.violations += 1;
        if self.stats.worst.is_none_or(|(_, n)| *late > n) {
            self.stats.worst = Some((account, *late));
        }
    }

    pub fn stats(&self) -> OrderingStats {
        self.stats
    }

    /// Records of `account` applied out of order.
    pub fn violations_of(&self, account: AccountId) -> u64 {
        self.late.get(&account).copied().unwrap_or(0)
    }

    /// Starts counting again (a reset of the demo, a re-created topic).
    pub fn clear(&mut self) {
        *self = OrderWatch::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_by_strategy() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        assert_eq!(
            KeyStrategy::ByAccount.key(17, &mut rng).as_deref(),
            Some("17")
        );
        assert_eq!(
            KeyStrategy::Constant.key(17, &mut rng).as_deref(),
            Some("transaction")
        );
        assert_eq!(KeyStrategy::None.key(17, &mut rng), None);
        let keys: std::collections::BTreeSet<_> = (0..50)
            .map(|_| KeyStrategy::Random.key(17, &mut rng))
            .collect();
        assert!(keys.len() > 40, "random keys vary: {}", keys.len());
        assert_eq!(KeyStrategy::default(), KeyStrategy::ByAccount);
        for k in KeyStrategy::ALL {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.name())
            );
            assert_eq!(KeyStrategy::from_name(k.name()), Some(k));
        }
        assert_eq!(
            serde_json::to_string(&KeyStrategy::ByAccount).unwrap(),
            "\"by_account\""
        );
        assert!(KeyStrategy::ByAccount.keeps_order() && !KeyStrategy::Random.keeps_order());
        // Every account's records share the constant key's partition; by account they follow
        // the account's own key.
        let one = KeyStrategy::Constant.partition_of(1, 6);
        assert!((1..50).all(|a| KeyStrategy::Constant.partition_of(a, 6) == one));
        assert_eq!(
            KeyStrategy::ByAccount.partition_of(17, 6),
            partition_for(b"17", 6)
        );
        assert_eq!(KeyStrategy::Random.partition_of(17, 6), None);
        assert!(
            KeyStrategy::Constant
                .key_path(17, 6)
                .unwrap()
                .starts_with("key \"transaction\" → murmur2(\"transaction\") mod 6 = ")
        );
    }

    #[test]
    fn late_records_are_counted_per_account() {
        let mut w = OrderWatch::default();
        let a = Some("cashflow-a");
        for s in [1, 2, 3, 5] {
            w.applied(a, 1, s, true);
        }
        assert_eq!(w.stats().violations, 0);
        // 4 comes after 5: one violation; an equal number is not.
        w.applied(a, 1, 4, true);
        w.applied(a, 1, 5, true);
        // Account 2: 9 came with a random key; 1 and 2, keyed by account, are late but only
        // after a record that was not keyed by account (records of an earlier key strategy).
        w.applied(a, 2, 9, false);
        w.applied(a, 2, 1, true);
        w.applied(a, 2, 2, true);
        // Another producer numbers its own records of the same account: not out of order.
        w.applied(Some("cashflow-b"), 2, 1, true);
        w.applied(Some("cashflow-b"), 2, 2, true);
        let s = w.stats();
        assert_eq!((s.violations, s.accounts, s.checked), (3, 2, 11));
        assert_eq!(
            s.keyed_violations, 1,
            "only 4 after 5, both keyed by account"
        );
        assert_eq!(s.worst, Some((2, 2)));
        assert_eq!(w.violations_of(1), 1);
        w.clear();
        assert_eq!(w.stats(), OrderingStats::default());
    }
}
