//! What the managed broker needs to start, and why it (or one of its nodes) did not.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a node of the cluster cashflow runs was not stopped or started.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The quorum rule (or the node's state) says no, and why.
    #[error(transparent)]
    Refused(#[from] cashflow_shared::outage::NodeRefusal),
    #[error("there is no node {0}")]
    NoSuchNode(u8),
    #[error(transparent)]
    NotStarted(#[from] ManagedError),
    #[error("the broker's supervisor has stopped")]
    SupervisorGone,
}

/// What the managed broker needs (see `--java`, `--kafka-classpath`, `--kafka-listen`,
/// `--local-brokers`).
#[derive(Clone, Debug)]
pub struct BrokerSetup {
    /// The `java` to run (a name looked up on PATH, or a path).
    pub java: PathBuf,
    /// A file holding the broker's classpath (jars joined by `:`), written by setup.
    pub classpath_file: PathBuf,
    /// The first node's client port wanted (the next free one when taken; node N wants the
    /// port N − 1 above it); always a loopback address.
    pub listen: SocketAddr,
    /// Its folder (`<data dir>/kafka`); `None`: a temporary one, removed at exit.
    pub dir: Option<PathBuf>,
    /// Each JVM's heap, in MiB.
    pub heap_mb: u32,
    /// 1, or 3 (a cluster: each node broker and controller, replication factor 3).
    pub nodes: u8,
}

/// Why the managed broker cannot run; each names what to do.
#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    #[error(
        "the local Apache Kafka broker needs Java 17 or newer, and {0}. Install it with \
         `scripts/setup.sh demo` (or the system's openjdk-17-jre-headless), give --java PATH, or \
         use a running Kafka with --brokers HOST:PORT"
    )]
    Java(String),
    #[error(
        "the local Apache Kafka broker's jars are not installed: {0}. Install them with \
         `scripts/setup.sh demo` (it resolves them with mvn), give --kafka-classpath FILE, or use \
         a running Kafka with --brokers HOST:PORT"
    )]
    Jars(String),
    #[error(
        "another cashflow is running with the data folder {0} (its Apache Kafka broker keeps its \
         log there); stop it, or start this one with another --data-dir, --ephemeral, or \
         --brokers pointing at its broker"
    )]
    DataDirInUse(PathBuf),
    #[error("the local Apache Kafka broker did not start: {reason}; the end of its log:\n{tail}")]
    NotStarted { reason: String, tail: String },
}
