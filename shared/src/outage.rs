//! The outage lesson: the Apache Kafka broker cashflow runs is stopped (SIGTERM) for a few
//! seconds. Generation is held while it is away (what was in flight waits in the producer), and once it is back every
//! transaction is delivered exactly once: the idempotent producer's retries are not written
//! twice, and the invariant (each acknowledged transaction applied once) holds again. The page
//! shows the outage as it happens and how long recovery took.

use serde::{Deserialize, Serialize};

/// Shortest and longest outage the presenter can ask for.
pub const MIN_OUTAGE_SECONDS: u32 = 1;
pub const MAX_OUTAGE_SECONDS: u32 = 120;

/// The most nodes cashflow runs itself (`--local-brokers`): one, or three for replication.
pub const MAX_LOCAL_NODES: u8 = 3;

/// Where one node of the Apache Kafka cashflow runs is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Its JVM is starting (or starting again) and does not serve clients yet.
    #[default]
    Starting,
    Running,
    /// Stopped on purpose (the presenter, or the outage): it stays stopped until asked.
    Stopped,
    /// It died unasked; cashflow starts it again.
    Restarting,
}

impl NodeState {
    /// The word the page and the refusals use.
    pub fn label(self) -> &'static str {
        match self {
            NodeState::Starting => "starting",
            NodeState::Running => "running",
            NodeState::Stopped => "stopped",
            NodeState::Restarting => "restarting",
        }
    }
}

/// One node (broker and controller in one JVM) of the Apache Kafka cashflow runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalNode {
    /// Its `node.id`, 1 to 3.
    pub id: u8,
    /// Its client address.
    pub addr: String,
    pub state: NodeState,
    /// How long its JVM took to serve clients the last time it started (ms; 0 before).
    pub start_ms: u64,
    /// Times it was started again after it died unasked.
    pub restarts: u64,
}

/// Which Kafka the page is connected to, for its status badge: the one cashflow runs (its
/// address, or its nodes) or one given with `--brokers`.
pub fn describe_kafka(managed: bool, nodes: &[LocalNode]) -> String {
    match (managed, nodes) {
        (false, _) => "Kafka given with --brokers".into(),
        (true, []) => "Apache Kafka run by cashflow".into(),
        (true, [one]) => format!("Apache Kafka run by cashflow · {}", one.addr),
        (true, all) => format!(
            "Apache Kafka run by cashflow · {} of {} nodes running",
            all.iter().filter(|n| n.state == NodeState::Running).count(),
            all.len()
        ),
    }
}

/// Why a node may not be stopped or started on purpose.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeRefusal {
    #[error(
        "there is no node {id}: cashflow runs {nodes} node(s) (start it with --local-brokers 3 for the cluster)"
    )]
    NoSuchNode { id: u8, nodes: usize },
    #[error(
        "one node only: stop it with \"Stop the broker\" (an outage), or start cashflow with --local-brokers 3 to stop one of three"
    )]
    OneNodeOnly,
    #[error("node {id} is not running ({state})")]
    NotRunning { id: u8, state: &'static str },
    #[error(
        "node {0} is down already: with two of three nodes down the KRaft controllers lose their quorum (two of three must run) and the whole cluster stops; start node {0} first"
    )]
    QuorumAtRisk(u8),
    #[error("node {id} is not stopped ({state})")]
    NotStopped { id: u8, state: &'static str },
}

/// Whether node `id` may be stopped on purpose: it exists and runs, and, on a cluster, every
/// other node runs, because a KRaft quorum of three controllers needs two of them (a second
/// node down would stop the whole cluster, not teach replication). One node alone is stopped
/// by the outage instead ([`crate::command::Command::StopBroker`]).
pub fn may_stop_node(nodes: &[LocalNode], id: u8) -> Result<(), NodeRefusal> {
    let Some(node) = nodes.iter().find(|n| n.id == id) else {
        return Err(NodeRefusal::NoSuchNode {
            id,
            nodes: nodes.len(),
        });
    };
    if nodes.len() < 3 {
        return Err(NodeRefusal::OneNodeOnly);
    }
    if node.state != NodeState::Running {
        return Err(NodeRefusal::NotRunning {
            id,
            state: node.state.label(),
        });
    }
    if let Some(other) = nodes
        .iter()
        .find(|n| n.id != id && n.state != NodeState::Running)
    {
        return Err(NodeRefusal::QuorumAtRisk(other.id));
    }
    Ok(())
}

/// Whether node `id` may be started: it exists and was stopped on purpose.
pub fn may_start_node(nodes: &[LocalNode], id: u8) -> Result<(), NodeRefusal> {
    match nodes.iter().find(|n| n.id == id) {
        None => Err(NodeRefusal::NoSuchNode {
            id,
            nodes: nodes.len(),
        }),
        Some(n) if n.state == NodeState::Stopped => Ok(()),
        Some(n) => Err(NodeRefusal::NotStopped {
            id,
            state: n.state.label(),
        }),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageState {
    #[default]
    Idle,
    /// The broker is stopped.
    Down,
    /// It is back; waiting for deliveries to resume and the invariant to hold.
    Recovering,
    /// Everything in flight was delivered, exactly once, and applied.
    Recovered,
    /// Not recovered in time, or the broker could not start again.
    Failed,
}

/// One outage as the page shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageStatus {
    pub state: OutageState,
    /// How long the broker stays (or stayed) away.
    pub seconds: u32,
    pub started_ms: i64,
    /// When it was back, and how long from then until recovered.
    pub back_ms: i64,
    pub recovery_ms: u64,
    /// Generation was held while the broker was away.
    pub held: bool,
    /// Transactions waiting in the producer when the broker came back (sent, not yet
    /// acknowledged), and how many were acknowledged since the outage began.
    pub in_flight_at_back: u64,
    pub delivered_since: u64,
    /// Deliveries that failed, and records the calculator refused as duplicates, since the
    /// outage began: both stay 0 when nothing is lost and nothing is written twice.
    pub failed: u64,
    pub duplicates: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// How long the broker's JVM took to serve clients again after the outage (ms).
    #[serde(default)]
    pub start_ms: u64,
    /// The nodes cashflow runs, as they are now (empty on a Kafka it does not run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<LocalNode>,
}

impl OutageStatus {
    /// The sentence the page shows.
    pub fn describe(&self) -> String {
        match self.state {
            OutageState::Idle => "no outage yet".into(),
            OutageState::Down => format!(
                "the broker is down for {} s{}",
                self.seconds,
                if self.held {
                    ": generation held, what was sent waits in the producer"
                } else {
                    ""
                }
            ),
            OutageState::Recovering => format!(
                "the broker is back (its JVM started in {:.1} s): {} transactions were waiting in the producer; delivering them and catching up",
                self.start_ms as f64 / 1000.0,
                self.in_flight_at_back
            ),
            OutageState::Recovered => format!(
                "✓ recovered {:.1} s after the broker came back (its JVM started in {:.1} s): {} delivered since the outage began, {} lost, {} written twice; every acknowledged transaction applied exactly once",
                self.recovery_ms as f64 / 1000.0,
                self.start_ms as f64 / 1000.0,
                self.delivered_since,
                self.failed,
                self.duplicates
            ),
            OutageState::Failed => format!("✗ {}", self.note),
        }
    }

    /// Whether it is over.
    pub fn finished(&self) -> bool {
        matches!(
            self.state,
            OutageState::Idle | OutageState::Recovered | OutageState::Failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_told_each_step() {
        let mut s = OutageStatus {
            state: OutageState::Down,
            seconds: 5,
            held: true,
            ..OutageStatus::default()
        };
        assert!(s.describe().contains("down for 5 s: generation held"));
        assert!(!s.finished());
        s.state = OutageState::Recovered;
        s.recovery_ms = 1_250;
        s.delivered_since = 40;
        let text = s.describe();
        assert!(text.contains("✓ recovered 1.2 s"), "{text}");
        assert!(text.contains("0 lost, 0 written twice"), "{text}");
        assert!(s.finished());
        let m = crate::protocol::ServerMsg::Outage {
            id: None,
            outage: s,
        };
        let back: crate::protocol::ServerMsg = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    fn cluster(states: [NodeState; 3]) -> Vec<LocalNode> {
        (1..=3)
            .zip(states)
            .map(|(id, state)| LocalNode {
                id,
                addr: format!("127.0.0.1:909{id}"),
                state,
                ..LocalNode::default()
            })
            .collect()
    }

    #[test]
    fn the_badge_names_the_kafka() {
        use NodeState::*;
        assert_eq!(describe_kafka(false, &[]), "Kafka given with --brokers");
        let all = cluster([Running, Stopped, Running]);
        assert_eq!(
            describe_kafka(true, &all[..1]),
            "Apache Kafka run by cashflow · 127.0.0.1:9091"
        );
        assert_eq!(
            describe_kafka(true, &all),
            "Apache Kafka run by cashflow · 2 of 3 nodes running"
        );
    }

    #[test]
    fn a_second_node_down_is_refused_with_the_reason() {
        use NodeState::*;
        let all = cluster([Running, Running, Running]);
        assert_eq!(may_stop_node(&all, 2), Ok(()));
        let one_down = cluster([Running, Stopped, Running]);
        let e = may_stop_node(&one_down, 3).expect_err("a second node");
        assert_eq!(e, NodeRefusal::QuorumAtRisk(2));
        let e = e.to_string();
        assert!(e.contains("node 2 is down") && e.contains("quorum"), "{e}");
        assert!(may_stop_node(&one_down, 2).is_err(), "stopped already");
        // A node that died and is starting again counts as down too.
        let restarting = cluster([Restarting, Running, Running]);
        assert!(may_stop_node(&restarting, 2).is_err());
        assert!(may_stop_node(&all, 4).is_err());
        // One node: the outage stops it, not a node button.
        assert!(may_stop_node(&all[..1], 1).is_err());
        assert_eq!(may_start_node(&one_down, 2), Ok(()));
        assert!(may_start_node(&one_down, 1).is_err(), "running");
        assert!(
            may_start_node(&restarting, 1).is_err(),
            "cashflow restarts it"
        );
    }
}
