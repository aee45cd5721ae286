//! Compact forms on the wire: an account's figures as a row, and the charts' history as
//! changes of the point before (most of a busy frame, and of a snapshot, are these).

use serde::{Deserialize, Serialize};

use super::MAX_CHARTED_ACCOUNTS;
use crate::api::AccountBalance;
use crate::money::Money;
use crate::transaction::AccountId;

/// One point of the charts' history: every charted account's balance at `t_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_ms: i64,
    /// Balances of accounts `1..=balances.len()` in minor units (compact on the wire).
    pub balances: Vec<i64>,
    pub applied_per_second: f64,
}

/// A shown account's figures in a delta, as a JSON array (`[17, 220.59, 5, 3]`): a hundred
/// of them several times a second is most of a busy frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountRow(
    pub AccountId,
    pub Money,
    /// Transactions applied.
    pub u64,
    /// The partition its records were last read from.
    #[serde(default)]
    pub Option<i32>,
);

impl From<&AccountBalance> for AccountRow {
    fn from(a: &AccountBalance) -> Self {
        AccountRow(a.account, a.balance, a.count, a.partition)
    }
}

impl From<AccountRow> for AccountBalance {
    fn from(AccountRow(account, balance, count, partition): AccountRow) -> Self {
        AccountBalance {
            account,
            balance,
            count,
            partition,
        }
    }
}

/// A point of the charts' history as a change of the one before it: only the balances that
/// moved (at 2 tx/s, one or two of a hundred).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleChange {
    pub t_ms: i64,
    pub applied_per_second: f64,
    /// Accounts charted (`1..=len`).
    pub len: u32,
    /// (index into the balances, balance in minor units), for those that differ from the
    /// previous point's (or from 0 past its end); every one when `full`.
    pub changed: Vec<(u32, i64)>,
    /// The point stands alone (the server's history was empty before it): no previous one
    /// is taken from.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
}

impl SampleChange {
    /// `next` as a change of `prev`.
    pub fn between(prev: Option<&Sample>, next: &Sample) -> SampleChange {
        let before = |i: usize| prev.and_then(|p| p.balances.get(i)).copied();
        SampleChange {
            t_ms: next.t_ms,
            applied_per_second: next.applied_per_second,
            len: next.balances.len() as u32,
            changed: next
                .balances
                .iter()
                .enumerate()
                .filter(|(i, b)| before(*i).unwrap_or(0) != **b || prev.is_none())
                .map(|(i, b)| (i as u32, *b))
                .collect(),
            full: prev.is_none(),
        }
    }

    /// The point this makes of `prev`; indexes past `len` (a bad frame) are ignored.
    pub fn apply(&self, prev: Option<&Sample>) -> Sample {
        let len = (self.len as usize).min(MAX_CHARTED_ACCOUNTS);
        let mut balances: Vec<i64> = prev
            .filter(|_| !self.full)
            .map(|p| p.balances.clone())
            .unwrap_or_default();
        balances.resize(len, 0);
        for &(i, b) in &self.changed {
            if let Some(slot) = balances.get_mut(i as usize) {
                *slot = b;
            }
        }
        Sample {
            t_ms: self.t_ms,
            balances,
            applied_per_second: self.applied_per_second,
        }
    }
}

/// A snapshot's history on the wire: each point as a [`SampleChange`] of the one before. Ten
/// minutes of a hundred balances were ~0.4 MB in every snapshot, mostly repeats; a student
/// joining on a slow link could fall behind the frames while it arrived and be sent another.
pub mod history_as_changes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Sample, SampleChange};

    pub fn serialize<S: Serializer>(history: &[Sample], s: S) -> Result<S::Ok, S::Error> {
        let mut prev = None;
        let changes: Vec<SampleChange> = history
            .iter()
            .map(|x| {
                let c = SampleChange::between(prev, x);
                prev = Some(x);
                c
            })
            .collect();
        changes.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Sample>, D::Error> {
        let mut history: Vec<Sample> = Vec::new();
        for c in Vec::<SampleChange>::deserialize(d)? {
            let s = c.apply(history.last());
            history.push(s);
        }
        Ok(history)
    }
}
