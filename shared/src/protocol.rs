//! The WebSocket protocol between the server (`/ws`) and the page.
//!
//! Every frame is one JSON object tagged by `type`. The server opens with [`ServerMsg::Hello`]
//! and a [`ServerMsg::Snapshot`], then sends at most ~20 [`ServerMsg::Delta`]s a second. The
//! page sends [`crate::command::ClientMsg`]s (commands, each with an optional `id` echoed in the reply); every
//! command gets an [`ServerMsg::Ack`] with the resulting generator settings or an
//! [`ServerMsg::Error`], and the socket stays open either way.

use serde::{Deserialize, Serialize};

use crate::api::{AccountBalance, AccountTotals, LogLine, TopicView};
use crate::generator::GeneratorSettings;
use crate::group::GroupStatus;
use crate::ledger::LedgerStats;
use crate::money::Money;
use crate::transaction::{AccountId, Transaction};

/// Bumped on any incompatible change; a page with another version is told to reload.
pub const PROTOCOL_VERSION: u32 = 3;
/// Most accounts whose history is charted (and sent in snapshots).
pub const MAX_CHARTED_ACCOUNTS: usize = 100;
/// Most accounts a page is sent (the generator's first, then the most active): a topic may
/// hold a million, and every frame stays bounded.
pub const MAX_SHOWN_ACCOUNTS: usize = 100;
/// History kept and sent: one sample a second for 10 minutes.
pub const HISTORY_SAMPLES: usize = 600;
/// Log lines in a snapshot, and at most per delta.
pub const SNAPSHOT_LOG_LINES: usize = 50;
pub const DELTA_LOG_LINES: usize = 20;

/// What the producer is doing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratorStatus {
    pub running: bool,
    /// Transactions per second; `None` is "as fast as possible".
    pub rate: Option<f64>,
    pub settings: GeneratorSettings,
    /// How records are keyed.
    #[serde(default)]
    pub keys: crate::ordering::KeyStrategy,
    /// Back-pressure: the producer waits while the calculator is this far behind (`None`: off),
    /// and whether it waits now.
    #[serde(default)]
    pub max_lag: Option<u64>,
    #[serde(default)]
    pub held_by_lag: bool,
    /// The producer's batching.
    #[serde(default)]
    pub linger_ms: u32,
    #[serde(default)]
    pub batch_size: u32,
}

/// Counters shown on the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub ledger: LedgerStats,
    pub malformed: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Transactions applied per second, over the last second.
    pub applied_per_second: f64,
    /// All accounts, shown or not.
    #[serde(default)]
    pub totals: AccountTotals,
    /// Produce → applied over the last 10 s.
    #[serde(default)]
    pub latency: crate::latency::LatencySummary,
    /// This run's producer's acknowledged nets against the calculator's applied ones.
    #[serde(default)]
    pub invariant: crate::invariant::InvariantStatus,
    /// Records applied after a later one of their account.
    #[serde(default)]
    pub ordering: crate::ordering::OrderingStats,
}

/// One point of the charts' history: every charted account's balance at `t_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_ms: i64,
    /// Balances of accounts `1..=balances.len()` in minor units (compact on the wire).
    pub balances: Vec<i64>,
    pub applied_per_second: f64,
}

/// Partitions shown on the page at most (the first ones; a topic may have up to 1 000).
pub const MAX_SHOWN_PARTITIONS: usize = 100;

/// One partition of the topic, as this server's balance calculator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionView {
    pub partition: i32,
    /// Records handled on it so far (applied or dead-lettered): its next offset.
    pub records: i64,
    /// This server's balance calculator owns it now (else another member of the group does,
    /// or nobody yet).
    pub owned: bool,
    /// Which of this server's calculator members owns it (numbered from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<u32>,
}

/// Whether the balance calculator is still restoring its state (balances are not current yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub restoring: bool,
    /// Of the records the restore has to read, 0 to 100.
    pub percent: u8,
    /// Times the topic was found deleted and created again by someone else than the
    /// presenter's *Reset the demo*, so balances started afresh.
    #[serde(default)]
    pub recreated: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub topic: String,
    pub opening_balance: Money,
    pub accounts: Vec<AccountBalance>,
    pub counters: Counters,
    pub generator: GeneratorStatus,
    pub broker_reachable: bool,
    /// The broker is the one cashflow runs itself (the outage lesson can stop it).
    #[serde(default)]
    pub broker_embedded: bool,
    /// Newest first.
    pub log: Vec<LogLine>,
    /// Oldest first.
    pub history: Vec<Sample>,
    /// At most [`MAX_SHOWN_PARTITIONS`], in partition order.
    #[serde(default)]
    pub partitions: Vec<PartitionView>,
    #[serde(default)]
    pub store: StoreStatus,
    /// The topic as the broker sees it (`GET /api/topic`, trimmed for the page).
    #[serde(default)]
    pub topic_view: Option<TopicView>,
    /// The balance calculator's members and rebalances.
    #[serde(default)]
    pub group: GroupStatus,
    /// Real records followed now (at most [`MAX_DOTS`](crate::flow::MAX_DOTS)).
    #[serde(default)]
    pub flow: Vec<crate::flow::FlowDot>,
    /// The newest dead letters, read back from the dead-letter topic, newest first.
    #[serde(default)]
    pub dead_letters: Vec<crate::poison::DeadLetterView>,
    /// The replay lesson's latest run.
    #[serde(default)]
    pub replay: crate::replay::ReplayStatus,
    /// The delivery-semantics lesson's naive calculator.
    #[serde(default)]
    pub naive: crate::naive::NaiveStatus,
    /// The outage lesson's latest outage.
    #[serde(default)]
    pub outage: crate::outage::OutageStatus,
    /// The guided lessons' checks.
    #[serde(default)]
    pub lessons: crate::lessons::LessonsStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Shown accounts whose balance or count changed since the previous frame (at most
    /// [`MAX_SHOWN_ACCOUNTS`]).
    pub accounts: Vec<AccountBalance>,
    /// Accounts no longer shown (others became more active).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<AccountId>,
    pub counters: Counters,
    /// New log lines, newest first (at most [`DELTA_LOG_LINES`]; older ones were skipped).
    pub log: Vec<LogLine>,
    pub sample: Option<Sample>,
    pub generator: Option<GeneratorStatus>,
    pub broker_reachable: Option<bool>,
    /// All shown partitions, when any changed.
    #[serde(default)]
    pub partitions: Option<Vec<PartitionView>>,
    /// When it changed.
    #[serde(default)]
    pub store: Option<StoreStatus>,
    /// When the broker was asked again (about once a second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_view: Option<TopicView>,
    /// When it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupStatus>,
    /// Followed records that are new or were applied since the last frame.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flow: Vec<crate::flow::FlowDot>,
    /// All the newest dead letters, when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<Vec<crate::poison::DeadLetterView>>,
    /// When it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<crate::replay::ReplayStatus>,
    /// When it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naive: Option<crate::naive::NaiveStatus>,
    /// When it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage: Option<crate::outage::OutageStatus>,
    /// When a check changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lessons: Option<crate::lessons::LessonsStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Hello {
        protocol: u32,
        server: String,
        /// Commands need a presenter login (`Command::Login`); until then the page is read-only.
        #[serde(default)]
        presenter_required: bool,
    },
    /// Answer to a successful `Command::Login`.
    Presenter {
        id: Option<u64>,
    },
    Snapshot(Box<Snapshot>),
    Delta(Box<Delta>),
    Ack {
        id: Option<u64>,
        generator: GeneratorStatus,
        transaction: Option<Transaction>,
    },
    Error {
        id: Option<u64>,
        message: String,
    },
    /// Answer to a calculator command: the group as it is now (rebalances follow in deltas).
    Calculator {
        id: Option<u64>,
        group: GroupStatus,
    },
    /// Answer to a replay command: the replay as it is now (its progress follows in deltas).
    Replay {
        id: Option<u64>,
        replay: crate::replay::ReplayStatus,
    },
    /// Answer to a naive-calculator command: its status now (changes follow in deltas).
    Naive {
        id: Option<u64>,
        naive: crate::naive::NaiveStatus,
    },
    /// Answer to an outage command: the outage as it is now (its steps follow in deltas).
    Outage {
        id: Option<u64>,
        outage: crate::outage::OutageStatus,
    },
    /// Answer to `Command::ResetDemo`: the reset has begun (the re-created topic follows).
    Reset {
        id: Option<u64>,
    },
    /// The page speaks another protocol version: it must reload.
    Reload {
        reason: String,
    },
}

impl ServerMsg {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_round_trip() {
        let m = ServerMsg::Error {
            id: Some(1),
            message: "no".into(),
        };
        let text = m.to_json();
        assert!(text.contains(r#""type":"error""#));
        assert_eq!(serde_json::from_str::<ServerMsg>(&text).unwrap(), m);
    }

    /// Maps keyed by partition survive the tagged enum (serde buffers its content, and then
    /// no longer reads `"3"` as an integer key by itself).
    #[test]
    fn a_delta_with_the_topic_view_round_trips() {
        use crate::api::GroupView;
        let view = TopicView {
            topic: "t".into(),
            taken_ms: 1,
            groups: vec![GroupView {
                group: "g".into(),
                committed: [(0, 5), (3, 7)].into(),
                lag: [(0, 1), (3, 0)].into(),
                total_lag: 1,
                lag_history: vec![3, 1],
                ..GroupView::default()
            }],
            ..TopicView::default()
        };
        let m = ServerMsg::Delta(Box::new(Delta {
            topic_view: Some(view),
            ..Delta::default()
        }));
        assert_eq!(serde_json::from_str::<ServerMsg>(&m.to_json()).unwrap(), m);
        let bad = m.to_json().replace(r#""3":7"#, r#""x":7"#);
        assert!(serde_json::from_str::<ServerMsg>(&bad).is_err());
    }
}

/// The fragment of a presenter link before the token: `http://host:port/#presenter=TOKEN`.
pub const PRESENTER_FRAGMENT: &str = "#presenter=";

/// The token of a presenter link's fragment (`location.hash`), if it is one.
pub fn presenter_token_in_fragment(hash: &str) -> Option<String> {
    let token = hash.strip_prefix(PRESENTER_FRAGMENT)?;
    (!token.is_empty() && token.len() <= 512 && token.chars().all(|c| c.is_ascii_graphic()))
        .then(|| token.to_owned())
}

#[cfg(test)]
mod presenter_link_tests {
    use super::*;

    #[test]
    fn the_token_of_a_presenter_link() {
        assert_eq!(
            presenter_token_in_fragment("#presenter=ab12"),
            Some("ab12".into())
        );
        for other in [
            "",
            "#",
            "#presenter=",
            "#other=ab",
            "presenter=ab",
            "#presenter=a b",
        ] {
            assert_eq!(presenter_token_in_fragment(other), None, "{other:?}");
        }
    }
}
