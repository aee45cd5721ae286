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

mod compact;
mod read;

pub use compact::{AccountRow, Sample, SampleChange, history_as_changes};

/// Bumped on any incompatible change; a page with another version is told to reload.
pub const PROTOCOL_VERSION: u32 = 4;
/// Most accounts whose history is charted (and sent in snapshots).
pub const MAX_CHARTED_ACCOUNTS: usize = 100;
/// Most accounts a page is sent (the generator's first, then the most active): a topic may
/// hold a million, and every frame stays bounded.
pub const MAX_SHOWN_ACCOUNTS: usize = 100;
/// History kept and sent: one sample a second for 10 minutes.
pub const HISTORY_SAMPLES: usize = 600;
/// Log lines in a snapshot.
pub const SNAPSHOT_LOG_LINES: usize = 50;

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
    pub broker_managed: bool,
    /// Newest first.
    pub log: Vec<LogLine>,
    /// Oldest first; on the wire each point as a change of the one before (see
    /// [`history_as_changes`]).
    #[serde(with = "history_as_changes")]
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

/// What changed since the frame before, for every viewer (the hub's one base: a viewer joins
/// with a snapshot of exactly what the earlier deltas added up to, see `server/src/hub.rs`).
/// Busy parts come at a rate the eye can use (see the hub's constants); values are exact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Shown accounts whose figures changed since they were last sent (at most
    /// [`MAX_SHOWN_ACCOUNTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountRow>,
    /// Accounts no longer shown (others became more active).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<AccountId>,
    /// The counters' changed fields: a [merge patch](crate::patch) of [`Counters`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<serde_json::Value>,
    /// New log lines, newest first (a sample of them above a few a second).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<LogLine>,
    /// A new point of the charts' history (once a second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_reachable: Option<bool>,
    /// All shown partitions, when which are shown changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<PartitionView>>,
    /// Shown partitions whose figures changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions_changed: Vec<PartitionView>,
    /// When it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreStatus>,
    /// The broker's view's changed fields, about once a second: a [merge
    /// patch](crate::patch::diff_of) of [`TopicView`] without the groups' `lag_history`
    /// (each new `taken_ms` adds every group's `total_lag` to it, on the page as on the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_view: Option<serde_json::Value>,
    /// The group's changed fields: a [merge patch](crate::patch::diff_of) of [`GroupStatus`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<serde_json::Value>,
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

impl Delta {
    /// Whether it carries nothing (no frame is sent).
    pub fn is_empty(&self) -> bool {
        *self == Delta::default()
    }
}

/// A frame from the server. Written with its `type` first (serde's internally tagged form); read
/// by `read`'s `Deserialize`, which needs it first.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
        let patch = crate::patch::diff_of(&None, &Some(view.clone()));
        let m = ServerMsg::Delta(Box::new(Delta {
            topic_view: patch,
            ..Delta::default()
        }));
        let back = serde_json::from_str::<ServerMsg>(&m.to_json()).unwrap();
        assert_eq!(back, m);
        let ServerMsg::Delta(d) = back else {
            unreachable!()
        };
        let mut got: Option<TopicView> = None;
        crate::patch::apply(&mut got, d.topic_view.as_ref().unwrap()).unwrap();
        assert_eq!(got, Some(view));
        let bad = m.to_json().replace(r#""3":7"#, r#""x":7"#);
        let ServerMsg::Delta(d) = serde_json::from_str::<ServerMsg>(&bad).unwrap() else {
            unreachable!()
        };
        assert!(crate::patch::apply(&mut got, d.topic_view.as_ref().unwrap()).is_err());
    }

    /// Ten minutes of a hundred balances at 2 tx/s: the snapshot's history round-trips, in a
    /// seventh of the bytes of every balance at every point (56 kB, not 394 kB).
    #[test]
    fn a_snapshots_history_travels_as_changes() {
        #[derive(Serialize, Deserialize)]
        struct H {
            #[serde(with = "history_as_changes")]
            history: Vec<Sample>,
        }
        let mut balances = vec![10_000i64; MAX_CHARTED_ACCOUNTS];
        let history: Vec<Sample> = (0..HISTORY_SAMPLES as i64)
            .map(|t| {
                for k in 0..2 {
                    let a = ((t * 7 + k * 31) % 100) as usize;
                    balances[a] += if k == 0 { 250 } else { -125 };
                }
                Sample {
                    t_ms: 1_765_000_000_000 + t * 1000,
                    balances: balances.clone(),
                    applied_per_second: 2.0,
                }
            })
            .collect();
        let text = serde_json::to_string(&H {
            history: history.clone(),
        })
        .unwrap();
        let whole = serde_json::to_string(&history).unwrap();
        assert!(
            text.len() * 5 < whole.len(),
            "{} vs {}",
            text.len(),
            whole.len()
        );
        let back: H = serde_json::from_str(&text).unwrap();
        assert_eq!(back.history, history);
    }

    #[test]
    fn a_sample_travels_as_its_changes() {
        let a = Sample {
            t_ms: 1,
            balances: vec![100, 200, 300],
            applied_per_second: 2.0,
        };
        let b = Sample {
            t_ms: 2,
            balances: vec![100, 250, 300, 40],
            applied_per_second: 3.0,
        };
        let c = SampleChange::between(Some(&a), &b);
        assert_eq!(c.changed, vec![(1, 250), (3, 40)]);
        assert_eq!(c.apply(Some(&a)), b);
        let first = SampleChange::between(None, &a);
        assert_eq!(first.apply(None), a);
        // A point that stands alone (the server's history started over) ignores the page's.
        let zero = Sample {
            balances: vec![0, 0, 7],
            ..a.clone()
        };
        assert_eq!(SampleChange::between(None, &zero).apply(Some(&b)), zero);
        // Fewer accounts charted: the point is cut to its length.
        let short = Sample {
            t_ms: 3,
            balances: vec![100],
            applied_per_second: 0.0,
        };
        assert_eq!(
            SampleChange::between(Some(&b), &short).apply(Some(&b)),
            short
        );
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
