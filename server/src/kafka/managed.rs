//! The managed local broker: with no `--brokers`, cashflow runs Apache Kafka 4 itself, in KRaft
//! mode (broker and controller in one JVM), as a child process it starts, supervises and
//! stops last.
//!
//! - **Where it comes from.** `java` (≥ 17) and the broker's jars, which `scripts/setup.sh`
//!   resolves with `mvn` and lists in a classpath file; nothing is downloaded at run time. When
//!   either is missing, [`ManagedError`] names the command that installs it and `--brokers`.
//! - **One node or three.** One JVM is broker and controller; `--local-brokers 3` runs three
//!   such nodes as a cluster (the replication lesson), each with its own supervisor thread, and
//!   [`ManagedBroker::stop_node`] stops one of them on the presenter's click, refusing a second
//!   (two of three controllers must run).
//! - **Its data** lives in `<data dir>/kafka` (formatted once, the cluster id kept; a cluster's
//!   in `kafka/cluster-3/node-N`), or in a temporary folder removed at exit (`--ephemeral`).
//!   One cashflow per data dir: a lock file.
//! - **No orphan JVM.** `java` is exec'd directly (no shell) in its own process group (a
//!   terminal's Ctrl-C reaches cashflow alone, which stops the broker last) with
//!   `PR_SET_PDEATHSIG`, which fires when the *thread* that spawned it exits: so every spawn
//!   of a node happens on its supervisor thread, which lives until the node is stopped for
//!   good, and a cashflow killed with SIGKILL takes its brokers with it.
//! - **Supervised.** A broker that dies unasked is started again (with a back-off when it
//!   keeps dying); the clients see an outage, exactly as in the outage lesson, which stops it
//!   on purpose through [`ManagedBroker::pause`].

use std::fs::File;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cashflow_shared::outage::{LocalNode, MAX_LOCAL_NODES, may_start_node, may_stop_node};
use tokio::sync::oneshot;
use tracing::{info, warn};

mod errors;
mod node;
mod prepare;
mod supervisor;

pub use errors::{BrokerSetup, ManagedError, NodeError};
use supervisor::{NodeHandle, STOP_WITHIN, Status, stop_child, supervise};

use node::Node;
use prepare::{check_java, cluster_id_in, lock_dir, pick_addrs, read_classpath};

/// The running broker (one node, or a cluster of three): the supervisor threads that own the
/// processes, one per node.
pub struct ManagedBroker {
    /// Where its data and logs are.
    pub dir: PathBuf,
    nodes: Vec<NodeHandle>,
    /// Taken while a node is being stopped or started on purpose, so that the quorum rule
    /// ([`may_stop_node`]) is checked and acted on as one step.
    presenter: tokio::sync::Mutex<()>,
}

impl ManagedBroker {
    /// Checks Java and the jars, prepares the data folder (formatting each node's storage the
    /// first time), starts every node and waits until each serves clients.
    pub async fn start(setup: BrokerSetup) -> anyhow::Result<ManagedBroker> {
        anyhow::ensure!(
            setup.nodes == 1 || setup.nodes == MAX_LOCAL_NODES,
            "cashflow runs 1 or {MAX_LOCAL_NODES} local brokers, not {}",
            setup.nodes
        );
        let classpath = read_classpath(&setup.classpath_file)?;
        let java = setup.java.clone();
        tokio::task::spawn_blocking(move || check_java(&java)).await??;
        let (dir, temp) = match &setup.dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("cashflow-kafka-")
                    .tempdir()?;
                (t.path().to_owned(), Some(t))
            }
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let lock = lock_dir(&dir)?;
        // One node keeps its files in the folder itself (as it always has); a cluster's are
        // apart, so that switching between the two keeps each one's data.
        let home = match setup.nodes {
            1 => dir.clone(),
            n => dir.join(format!("cluster-{n}")),
        };
        let ip = setup.listen.ip();
        // Port 0 asks for free ports, for every node (not 1 and 2 above it).
        let port = |i: u16| match setup.listen.port() {
            0 => 0,
            p => p.saturating_add(i),
        };
        let mut wanted: Vec<SocketAddr> = (0..u16::from(setup.nodes))
            .map(|i| SocketAddr::new(ip, port(i)))
            .collect();
        wanted.extend((0..setup.nodes).map(|_| SocketAddr::new(ip, 0)));
        let ports = pick_addrs(&wanted)?;
        let (clients, controllers) = ports.split_at(setup.nodes.into());
        let voters = controllers
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}@{c}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        std::fs::create_dir_all(&home)?;
        let cluster = cluster_id_in(&home)?;
        let mut nodes = Vec::new();
        for (i, (addr, controller)) in clients.iter().zip(controllers).enumerate() {
            let id = i as u8 + 1;
            let node = Node {
                java: setup.java.clone(),
                classpath: classpath.clone(),
                dir: match setup.nodes {
                    1 => home.clone(),
                    _ => home.join(format!("node-{id}")),
                },
                id,
                of: setup.nodes,
                addr: *addr,
                controller: *controller,
                voters: voters.clone(),
                cluster: cluster.clone(),
                heap_mb: setup.heap_mb,
            };
            std::fs::create_dir_all(&node.dir)?;
            node.write_config()?;
            let n = node.clone();
            tokio::task::spawn_blocking(move || n.format_once()).await??;
            nodes.push(node);
        }

        // The lock and the temporary folder outlive every node's process: each supervisor
        // holds them, and the last to return lets them go.
        let held = Arc::new((lock, temp));
        let mut handles = Vec::new();
        let mut started = Vec::new();
        for node in nodes {
            let (commands, rx) = mpsc::channel();
            let (started_tx, started_rx) = oneshot::channel();
            let status = Arc::new(Mutex::new(Status {
                node: LocalNode {
                    id: node.id,
                    addr: node.addr.to_string(),
                    ..LocalNode::default()
                },
                pid: None,
            }));
            let (st, h, addr) = (status.clone(), held.clone(), node.addr);
            // The thread this node's JVMs are spawned from: PR_SET_PDEATHSIG is tied to it.
            // It lives until the node is stopped for good. The nodes of a cluster start
            // together: none serves clients before two controllers of three run.
            let thread = std::thread::Builder::new()
                .name(format!("kafka-node-{}", node.id))
                .spawn(move || {
                    let _held = h;
                    supervise(node, rx, started_tx, st);
                })?;
            handles.push(NodeHandle {
                addr,
                commands,
                thread: Some(thread),
                status,
            });
            started.push(started_rx);
        }
        drop(held);
        let broker = ManagedBroker {
            dir,
            nodes: handles,
            presenter: tokio::sync::Mutex::new(()),
        };
        for rx in started {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    broker.stop().await;
                    return Err(e.into());
                }
                Err(_) => {
                    broker.stop().await;
                    anyhow::bail!("the local Apache Kafka broker's supervisor died");
                }
            }
        }
        info!(
            brokers = %broker.bootstrap(),
            dir = %broker.dir.display(),
            "Apache Kafka running (managed by cashflow)"
        );
        Ok(broker)
    }

    /// The bootstrap servers: every node's client address.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The first node's client address.
    pub fn addr(&self) -> SocketAddr {
        self.nodes[0].addr
    }

    /// Every node as it is now.
    pub fn nodes(&self) -> Vec<LocalNode> {
        self.nodes.iter().map(|n| n.status().node).collect()
    }

    /// Times a node was started again after it died unasked, over all nodes.
    pub fn restarts(&self) -> u64 {
        self.nodes.iter().map(|n| n.status().node.restarts).sum()
    }

    /// The first node's JVM process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.nodes[0].status().pid
    }

    /// Node `id`'s JVM process id, while it runs.
    pub fn node_pid(&self, id: u8) -> Option<u32> {
        self.node(id).and_then(|n| n.status().pid)
    }

    fn node(&self, id: u8) -> Option<&NodeHandle> {
        self.nodes.get(usize::from(id).checked_sub(1)?)
    }

    /// Stops every node (SIGTERM, then SIGKILL after a bound) and keeps them stopped until
    /// [`resume`](Self::resume): an outage. False if none was running.
    pub async fn pause(&self) -> bool {
        let mut any = false;
        for was in futures_util::future::join_all(self.nodes.iter().map(NodeHandle::pause)).await {
            any |= was;
        }
        any
    }

    /// Starts every node again on the same addresses from the same data, once each serves
    /// clients (a cluster's nodes start together: each waits for the controllers' quorum).
    pub async fn resume(&self) -> Result<(), NodeError> {
        for r in futures_util::future::join_all(self.nodes.iter().map(NodeHandle::resume)).await {
            r?;
        }
        Ok(())
    }

    /// Stops node `id` of a cluster and keeps it stopped until [`start_node`](Self::start_node);
    /// refused where [`may_stop_node`] says so.
    pub async fn stop_node(&self, id: u8) -> Result<(), NodeError> {
        let _one = self.presenter.lock().await;
        may_stop_node(&self.nodes(), id)?;
        let node = self.node(id).ok_or(NodeError::NoSuchNode(id))?;
        node.pause().await;
        Ok(())
    }

    /// Starts node `id` again once it was stopped on purpose, when it serves clients.
    pub async fn start_node(&self, id: u8) -> Result<(), NodeError> {
        let _one = self.presenter.lock().await;
        may_start_node(&self.nodes(), id)?;
        let node = self.node(id).ok_or(NodeError::NoSuchNode(id))?;
        node.resume().await
    }

    /// Stops every node for good and waits until each JVM has exited.
    pub async fn stop(mut self) {
        let threads: Vec<_> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.thread.take())
            .collect();
        drop(self); // closes the channels: the supervisors stop their JVMs and return
        for t in threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}
