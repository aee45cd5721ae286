//! JSON bodies of the server's HTTP API, shared so clients (tests, the page) read them typed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ledger::LedgerStats;
use crate::money::Money;
use crate::transaction::AccountId;

/// `GET /api/balances`: the balance calculator's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    pub topic: String,
    pub opening_balance: Money,
    pub accounts: Vec<AccountBalance>,
    /// Next offset to apply, per partition: everything below is reflected in the balances.
    pub next_offsets: BTreeMap<i32, i64>,
    pub stats: LedgerStats,
    /// Records on the topic that were not transactions (skipped, never applied).
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
    /// Per account: net amount (credits − debits) and count of *delivered* transactions.
    pub delivered_by_account: BTreeMap<AccountId, DeliveredTotals>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredTotals {
    pub net: Money,
    pub count: u64,
}

/// `GET /health`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// "ok" or "degraded".
    pub status: String,
    pub broker: BrokerHealth,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHealth {
    pub bootstrap_servers: String,
    pub embedded: bool,
    pub reachable: bool,
    pub topic_ready: bool,
    pub last_error: Option<String>,
    /// Partitions of the topic, once it is ready.
    #[serde(default)]
    pub partitions: u32,
}

/// One line of the logging consumer's feed (`GET /api/recent`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub text: String,
}
