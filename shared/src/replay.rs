//! The replay lesson: a fresh calculator, in a consumer group of its own, rebuilds the balances
//! from the topic's log start, and the page watches it converge to the live ones. Converging is
//! checked partition by partition, whenever the replay and the live calculator have handled a
//! partition up to the same offset: its accounts must then be equal, exactly. Where retention
//! already removed a partition's first records the replay cannot see them, and says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ledger::PartitionLedger;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    #[default]
    Idle,
    /// Reading.
    Running,
    /// Every partition matched the live calculator's at the same offset.
    Converged,
    /// Retention removed records the live balances include: the difference is shown instead.
    Partial,
    /// Stopped by the presenter (or the server) first.
    Stopped,
    Failed,
}

/// One replay as the page and `/api/topic` show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayStatus {
    pub state: ReplayState,
    /// Its consumer group (deleted once the replay is over).
    pub group: String,
    pub started_ms: i64,
    /// How long it has run (or ran).
    pub ms: u64,
    /// Records read, and how many there were from log start to end when it started.
    pub read: u64,
    pub total: u64,
    /// Where each partition's replay began: its log start (above 0: retention removed records).
    #[serde(deserialize_with = "crate::api::partition_map")]
    pub from: BTreeMap<i32, i64>,
    /// Partitions found equal to the live calculator's at the same offset, of all.
    pub matched: u32,
    pub partitions: u32,
    /// At the last comparison: accounts whose balance or count differ.
    pub differing_accounts: u64,
    /// What to say, e.g. why it could not converge.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl ReplayStatus {
    /// Whether it is over (converged, partial, stopped or failed).
    pub fn finished(&self) -> bool {
        !matches!(self.state, ReplayState::Idle | ReplayState::Running)
    }

    /// The sentence the page shows.
    pub fn describe(&self) -> String {
        let pct = if self.total == 0 {
            100.0
        } else {
            (self.read as f64 * 100.0 / self.total as f64).min(100.0)
        };
        let secs = self.ms as f64 / 1000.0;
        match self.state {
            ReplayState::Idle => "not run yet".into(),
            ReplayState::Running => format!(
                "rebuilding: {} of {} records ({pct:.0} %), {} of {} partitions match the live balances",
                self.read, self.total, self.matched, self.partitions
            ),
            ReplayState::Converged => format!(
                "✓ converged: {} records replayed from the log start in {secs:.1} s, every partition equal to the live balances",
                self.read
            ),
            ReplayState::Partial => format!(
                "replayed {} records in {secs:.1} s, but from offsets {} (retention removed the records before): {} accounts differ from the live balances",
                self.read,
                self.from
                    .iter()
                    .map(|(p, o)| format!("p{p}@{o}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.differing_accounts
            ),
            ReplayState::Stopped => format!("stopped after {} records", self.read),
            ReplayState::Failed => format!("failed: {}", self.note),
        }
    }
}

/// Accounts whose net or count differ between two states of one partition, or `None` when they
/// do not reflect the same offset (not comparable yet).
pub fn differing(replay: &PartitionLedger, live: &PartitionLedger) -> Option<u64> {
    if replay.next_offset() != live.next_offset() {
        return None;
    }
    let (a, b) = (replay.accounts(), live.accounts());
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    Some(keys.into_iter().filter(|k| a.get(k) != b.get(k)).count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;
    use crate::transaction::{Transaction, TxType, test_tx};

    fn tx(account: u32, id: &str, amount: i64) -> Transaction {
        test_tx(account, id, TxType::Credit, amount)
    }

    #[test]
    fn partitions_compare_only_at_the_same_offset() {
        let (mut live, mut replay) = (PartitionLedger::new(10), PartitionLedger::new(10));
        live.apply(&tx(1, "a", 5), 0, Money::ZERO);
        live.apply(&tx(2, "b", 7), 1, Money::ZERO);
        replay.apply(&tx(1, "a", 5), 0, Money::ZERO);
        assert_eq!(
            differing(&replay, &live),
            None,
            "not at the same offset yet"
        );
        replay.apply(&tx(2, "b", 7), 1, Money::ZERO);
        assert_eq!(differing(&replay, &live), Some(0));
        // A replay that started after retention removed offset 0.
        let mut partial = PartitionLedger::new(10);
        partial.skip_to(1);
        partial.apply(&tx(2, "b", 7), 1, Money::ZERO);
        assert_eq!(differing(&partial, &live), Some(1));
    }

    #[test]
    fn the_page_is_told_where_it_stands() {
        let mut s = ReplayStatus {
            state: ReplayState::Running,
            read: 50,
            total: 200,
            matched: 2,
            partitions: 6,
            ..ReplayStatus::default()
        };
        assert!(s.describe().contains("50 of 200 records (25 %)"));
        assert!(!s.finished());
        s.state = ReplayState::Partial;
        s.from = [(0, 0), (1, 40)].into();
        s.differing_accounts = 3;
        assert!(s.describe().contains("p0@0, p1@40"));
        assert!(s.describe().contains("3 accounts differ"));
        assert!(s.finished());
        // Inside the page's tagged messages too (partition keys arrive as strings).
        let m = crate::protocol::ServerMsg::Replay {
            id: None,
            replay: s,
        };
        let back: crate::protocol::ServerMsg = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }
}
