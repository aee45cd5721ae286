//! The invariant the page shows live: per account, the net this server's producer had
//! acknowledged by Kafka (its delivery reports) equals the net the balance calculator applied
//! from records carrying that producer's id. While records are on their way the two differ by
//! what is in flight ("catching up"); once both sides have seen the same records they must be
//! equal, account by account, or something lost or doubled a transaction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::transaction::AccountId;

/// What Kafka acknowledged to the producer for one account: net amount and count (the
/// producer's `delivered_by_account` entries are of this type).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {
    pub net: Money,
    pub count: u64,
}

/// Most accounts named in a broken invariant.
pub const NAMED_ACCOUNTS: usize = 5;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvariantState {
    /// Nothing produced yet.
    #[default]
    Idle,
    /// Every acknowledged record applied, and the nets agree account by account.
    Holds,
    /// Records acknowledged but not applied yet (or applied before their delivery report).
    CatchingUp,
    /// The same number of records on both sides, yet some account's nets differ.
    Broken,
    /// Some of the topic's partitions are (or were) with another cashflow server: the records
    /// it applied are not here to compare.
    NotChecked,
}

/// The comparison, as the page and `/api/topic` show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvariantStatus {
    pub state: InvariantState,
    /// Records of this server's producer acknowledged by Kafka, and applied by the calculator.
    pub acked: u64,
    pub applied: u64,
    /// Acked − applied (negative while a delivery report is later than the record's apply).
    pub lag: i64,
    /// Accounts whose nets differ, and the sum of the differences (minor units).
    pub differing_accounts: u64,
    pub difference: i64,
    /// The first differing account, to name it.
    pub first_differing: Option<AccountId>,
    /// Records applied that other producers wrote (the original's scripts, earlier runs, …).
    pub foreign_records: u64,
}

/// What the calculator applied from this server's producer, per account (net, count).
pub type Applied = BTreeMap<AccountId, (i64, u64)>;

/// Compares the producer's acknowledged nets with the calculator's applied ones.
/// `whole_topic`: this server's calculator owned every partition throughout. `stuck`: the
/// calculator has read every partition to its end for a while, yet the counts still differ, so
/// waiting will not close the gap (a record acknowledged but never applied, or applied though
/// its delivery was reported failed).
pub fn check(
    acked: &BTreeMap<AccountId, Acked>,
    applied: &Applied,
    foreign_records: u64,
    whole_topic: bool,
    stuck: bool,
) -> InvariantStatus {
    let acked_n: u64 = acked.values().map(|t| t.count).sum();
    let applied_n: u64 = applied.values().map(|a| a.1).sum();
    let mut s = InvariantStatus {
        acked: acked_n,
        applied: applied_n,
        lag: acked_n as i64 - applied_n as i64,
        foreign_records,
        ..InvariantStatus::default()
    };
    let accounts = acked.keys().chain(applied.keys());
    let mut seen = std::collections::BTreeSet::new();
    for a in accounts {
        if !seen.insert(*a) {
            continue;
        }
        let want = acked.get(a).map_or(0, |t| t.net.minor());
        let got = applied.get(a).map_or(0, |x| x.0);
        if want != got {
            s.differing_accounts += 1;
            s.difference = s.difference.saturating_add(want - got);
            s.first_differing.get_or_insert(*a);
        }
    }
    s.state = if !whole_topic {
        InvariantState::NotChecked
    } else if acked_n == 0 && applied_n == 0 {
        InvariantState::Idle
    } else if s.lag != 0 && !stuck {
        InvariantState::CatchingUp
    } else if s.differing_accounts > 0 {
        InvariantState::Broken
    } else {
        InvariantState::Holds
    };
    s
}

impl InvariantStatus {
    /// The sentence the page shows.
    pub fn describe(&self) -> String {
        match self.state {
            InvariantState::Idle => "nothing produced yet".into(),
            InvariantState::Holds => format!(
                "✓ holds: the {} records Kafka acknowledged are exactly what the calculator applied, account by account",
                self.acked
            ),
            InvariantState::CatchingUp if self.lag >= 0 => {
                format!("catching up (lag {})", self.lag)
            }
            InvariantState::CatchingUp => format!(
                "catching up ({} applied before their delivery report)",
                -self.lag
            ),
            InvariantState::Broken if self.lag != 0 => format!(
                "✗ broken: {} records acknowledged by Kafka, {} applied, and the calculator has read the whole topic",
                self.acked, self.applied
            ),
            InvariantState::Broken => format!(
                "✗ broken: {} account(s) differ by {} (minor units) in all, e.g. account {}",
                self.differing_accounts,
                self.difference,
                self.first_differing.unwrap_or_default()
            ),
            InvariantState::NotChecked => {
                "not checked: another cashflow server had some of the partitions".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(list: &[(AccountId, i64, u64)]) -> BTreeMap<AccountId, Acked> {
        list.iter()
            .map(|&(a, net, count)| {
                (
                    a,
                    Acked {
                        net: Money::from_minor(net),
                        count,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn holds_catches_up_or_breaks() {
        let a = acked(&[(1, 500, 2), (2, -100, 1)]);
        let mut applied: Applied = [(1, (500, 2)), (2, (-100, 1))].into();
        let s = check(&a, &applied, 3, true, false);
        assert_eq!(s.state, InvariantState::Holds);
        assert_eq!((s.acked, s.applied, s.lag, s.foreign_records), (3, 3, 0, 3));
        assert!(s.describe().starts_with('✓'));

        applied.insert(2, (0, 0));
        let s = check(&a, &applied, 0, true, false);
        assert_eq!(s.state, InvariantState::CatchingUp);
        assert_eq!(s.lag, 1);
        assert_eq!(s.describe(), "catching up (lag 1)");
        // The whole topic read, and still one short: lost, not late.
        let s = check(&a, &applied, 0, true, true);
        assert_eq!(s.state, InvariantState::Broken);
        assert!(
            s.describe()
                .contains("3 records acknowledged by Kafka, 2 applied")
        );

        // Same count, different amounts: a transaction was changed or swapped.
        applied.insert(2, (-90, 1));
        let s = check(&a, &applied, 0, true, false);
        assert_eq!(s.state, InvariantState::Broken);
        assert_eq!((s.differing_accounts, s.difference), (1, -10));
        assert_eq!(s.first_differing, Some(2));

        assert_eq!(
            check(&a, &applied, 0, false, false).state,
            InvariantState::NotChecked
        );
        assert_eq!(
            check(&BTreeMap::new(), &Applied::new(), 7, true, false).state,
            InvariantState::Idle
        );
    }
}
