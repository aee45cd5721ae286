//! JSON bodies of the server's HTTP API, shared so clients (tests, the page) read them typed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::ledger::AccountTotals;
use crate::ledger::LedgerStats;
use crate::money::Money;
use crate::transaction::AccountId;

/// Accounts per page of `GET /api/balances` unless `limit` says otherwise, and the most.
pub const BALANCES_PAGE: usize = 1_000;
pub const MAX_BALANCES_PAGE: usize = 10_000;

/// `GET /api/balances?after=&limit=`: the balance calculator's state, with one page of
/// accounts (ids above `after`, in id order, at most `limit`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    pub topic: String,
    pub opening_balance: Money,
    pub accounts: Vec<AccountBalance>,
    /// Every account, not only this page's.
    #[serde(default)]
    pub totals: AccountTotals,
    /// Pass as `after` for the next page; `None` on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<AccountId>,
    /// Next offset to apply, per partition: everything below is reflected in the balances.
    pub next_offsets: BTreeMap<i32, i64>,
    pub stats: LedgerStats,
    /// Records on the topic that went to the dead-letter topic (not transactions, duplicates,
    /// overflows): never applied.
    pub malformed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBalance {
    pub account: AccountId,
    pub balance: Money,
    pub count: u64,
    /// The partition its transactions were last read from (they are keyed by account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
}

/// `GET /api/producer`: what the producer sent and what Kafka acknowledged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProducerStats {
    pub running: bool,
    /// Target rate in transactions per second; `None` is "as fast as possible".
    pub rate: Option<f64>,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub last_error: Option<String>,
    /// Generation is held because the broker is unreachable.
    #[serde(default)]
    pub held: bool,
    /// Times a fatal error made the producer unusable and a new one took over.
    #[serde(default)]
    pub replaced: u64,
    /// Times the producer was created again with new batching (the batching lesson).
    #[serde(default)]
    pub reconfigured: u64,
    /// Per account: net amount (credits − debits) and count of *delivered* transactions.
    pub delivered_by_account: BTreeMap<AccountId, DeliveredTotals>,
}

/// Net amount and count of the transactions Kafka acknowledged for an account.
pub use crate::invariant::Acked as DeliveredTotals;

/// `GET /health`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// "ok"; "restoring" while the balance calculator rebuilds its state (balances are not
    /// current yet); "degraded" while the broker is unreachable, the topic is not ready, or a
    /// task is down (`tasks_down`).
    pub status: String,
    pub broker: BrokerHealth,
    #[serde(default)]
    pub store: StoreHealth,
    /// Tasks that stopped and are about to be started again, with the reason ("degraded").
    #[serde(default)]
    pub tasks_down: BTreeMap<String, String>,
}

/// The balance calculator's state store: its restore and its snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreHealth {
    /// True from start until the state is restored (balances are served only then).
    pub restoring: bool,
    /// The latest restore (at start, or of partitions that came from another member).
    pub restore: Option<RestoreProgress>,
    /// Snapshots written to the changelog topic since start, and failed attempts.
    pub snapshots_written: u64,
    pub snapshot_failures: u64,
    pub last_error: Option<String>,
    /// Times the topic was found deleted and created again (its offsets started over): the
    /// balances then started afresh.
    #[serde(default)]
    pub recreated: u32,
    /// Of those, the presenter's own resets of the demo (the page warns only of the others).
    #[serde(default)]
    pub reset_by_presenter: u32,
    /// The presenter's reset of the demo is under way: a re-created topic noticed now is its.
    #[serde(default)]
    pub resetting: bool,
}

/// How far a restore is: what it read from the changelog and from the topic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreProgress {
    pub done: bool,
    pub partitions: u32,
    /// Partitions whose state came from a snapshot (the others were replayed from the topic).
    pub from_snapshot: u32,
    /// Changelog records read to find and load the snapshots.
    pub changelog_records: u64,
    /// Records read from the topic (the id window before each snapshot, and the tail after).
    pub source_records: u64,
    /// The same, per partition.
    #[serde(default)]
    pub source_records_by_partition: BTreeMap<i32, u64>,
    /// Records of the topic the restore has to read (from its watermarks at the start).
    pub source_total: u64,
    /// `source_records` of `source_total`, 0 to 100.
    pub percent: f64,
    pub ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHealth {
    pub bootstrap_servers: String,
    /// cashflow runs this broker itself (no `--brokers`): the outage lesson can stop it.
    pub managed: bool,
    pub reachable: bool,
    pub topic_ready: bool,
    pub last_error: Option<String>,
    /// Partitions of the topic, once it is ready.
    #[serde(default)]
    pub partitions: u32,
}

/// One line of the logging consumer's feed (`GET /api/recent`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogLine {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub text: String,
}

/// `GET /api/topic`: the topic as the broker sees it, refreshed about once a second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicView {
    pub topic: String,
    /// When the broker was asked (ms since the epoch); 0 before the first answer.
    pub taken_ms: i64,
    pub partitions: Vec<PartitionOffsets>,
    /// The cluster's brokers by id (one on the managed broker).
    #[serde(default)]
    pub brokers: Vec<i32>,
    /// Every consumer group with a member assigned to the topic or an offset committed on it,
    /// cashflow's own and foreign ones (at most [`MAX_GROUPS_SHOWN`]).
    pub groups: Vec<GroupView>,
    /// Why the last refresh failed, if it did (the view is then the one before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// This server's balance calculator: its members, their partitions, the rebalances.
    #[serde(default)]
    pub calculator: crate::group::GroupStatus,
    /// Produce → applied over the last 10 s (record CreateTime to the calculator's apply).
    #[serde(default)]
    pub latency: crate::latency::LatencySummary,
    /// This run's producer's acknowledged nets against the calculator's applied ones.
    #[serde(default)]
    pub invariant: crate::invariant::InvariantStatus,
    /// Records applied after a later one of their account, and how records are keyed now.
    #[serde(default)]
    pub ordering: crate::ordering::OrderingStats,
    #[serde(default)]
    pub keys: crate::ordering::KeyStrategy,
    /// The replay lesson's latest run.
    #[serde(default)]
    pub replay: crate::replay::ReplayStatus,
    /// The delivery-semantics lesson's naive calculator.
    #[serde(default)]
    pub naive: crate::naive::NaiveStatus,
}

/// Groups a page is sent at most (cashflow's own first).
pub const MAX_GROUPS_ON_PAGE: usize = 8;

impl TopicView {
    /// What a page is sent: at most `max_partitions` partitions and [`MAX_GROUPS_ON_PAGE`]
    /// groups (`prefix`'s first), so a frame stays small whatever the topic and the broker
    /// hold. The calculator's group travels on its own.
    pub fn for_page(&self, prefix: &str, max_partitions: usize) -> TopicView {
        let keep = max_partitions as i32;
        let mut groups: Vec<GroupView> = self.groups.clone();
        groups.sort_by_key(|g| (!g.group.starts_with(prefix), g.group.clone()));
        groups.truncate(MAX_GROUPS_ON_PAGE);
        for g in &mut groups {
            g.committed.retain(|p, _| *p < keep);
            g.lag.retain(|p, _| *p < keep);
            for m in &mut g.members {
                m.partitions.retain(|p| *p < keep);
            }
        }
        TopicView {
            topic: self.topic.clone(),
            taken_ms: self.taken_ms,
            brokers: self.brokers.clone(),
            partitions: self
                .partitions
                .iter()
                .filter(|p| p.partition < keep)
                .cloned()
                .collect(),
            groups,
            error: self.error.clone(),
            calculator: Default::default(),
            latency: self.latency,
            invariant: self.invariant,
            ordering: self.ordering,
            keys: self.keys,
            replay: self.replay.clone(),
            naive: self.naive.clone(),
        }
    }
}

/// Lag totals kept per group for the sparkline (one per refresh: about a minute).
pub const LAG_HISTORY: usize = 60;

/// A map keyed by partition, read from JSON's string keys. serde_json reads `"3"` as an i32
/// key on its own, but not inside an internally tagged enum (the WebSocket's frames), where
/// serde buffers the content first.
pub fn partition_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<i32, i64>, D::Error> {
    let raw = BTreeMap::<String, i64>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            k.parse::<i32>()
                .map(|p| (p, v))
                .map_err(|_| serde::de::Error::custom(format!("not a partition: {k:?}")))
        })
        .collect()
}

/// Groups described at most.
pub const MAX_GROUPS_SHOWN: usize = 32;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionOffsets {
    pub partition: i32,
    /// First offset still in the log (retention moves it).
    pub log_start: i64,
    /// The next offset to be written (the high watermark).
    pub end: i64,
    /// Records written per second, over the last refresh.
    pub records_per_second: f64,
    /// The broker leading it (-1: none, an election under way), the brokers holding a replica,
    /// and those in sync with the leader.
    #[serde(default)]
    pub leader: i32,
    #[serde(default)]
    pub replicas: Vec<i32>,
    #[serde(default)]
    pub isr: Vec<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    pub group: String,
    /// As the broker says: Stable, PreparingRebalance, CompletingRebalance, Empty, Dead.
    pub state: String,
    pub members: Vec<MemberView>,
    /// Committed offset per partition (partitions without one are left out).
    #[serde(deserialize_with = "partition_map")]
    pub committed: BTreeMap<i32, i64>,
    /// end − committed per partition (end − log start where nothing is committed).
    #[serde(deserialize_with = "partition_map")]
    pub lag: BTreeMap<i32, i64>,
    pub total_lag: i64,
    /// `total_lag` at the last refreshes, oldest first (at most [`LAG_HISTORY`]).
    #[serde(default)]
    pub lag_history: Vec<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    /// Partitions of the topic assigned to it.
    pub partitions: Vec<i32>,
}
