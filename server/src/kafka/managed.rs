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
use cashflow_shared::outage::{
    LocalNode, MAX_LOCAL_NODES, NodeState, may_start_node, may_stop_node,
};
use tokio::sync::oneshot;
use tracing::{info, warn};

mod node;
mod prepare;

use node::Node;
use prepare::{check_java, cluster_id_in, lock_dir, pick_addrs, read_classpath};

/// Why a node of the cluster cashflow runs was not stopped or started.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The quorum rule (or the node's state) says no, and why.
    #[error("{0}")]
    Refused(String),
    #[error("there is no node {0}")]
    NoSuchNode(u8),
    #[error("{0}")]
    NotStarted(String),
}

/// How long a stopping broker gets after SIGTERM before SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// How often the supervisor looks at its child.
const LOOK_EVERY: Duration = Duration::from_millis(250);
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

/// One node's supervisor, as the rest of cashflow sees it.
struct NodeHandle {
    addr: SocketAddr,
    commands: mpsc::Sender<Command_>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Written by the supervisor thread alone.
    status: Arc<Mutex<Status>>,
}

/// What a node's supervisor publishes.
#[derive(Clone, Default)]
struct Status {
    node: LocalNode,
    pid: Option<u32>,
}

enum Command_ {
    /// Stop it and keep it stopped; answers whether it was running.
    Pause(oneshot::Sender<bool>),
    /// Start it again after a pause, answering once it serves clients.
    Resume(oneshot::Sender<Result<(), String>>),
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
    pub async fn resume(&self) -> anyhow::Result<()> {
        for r in futures_util::future::join_all(self.nodes.iter().map(NodeHandle::resume)).await {
            r?;
        }
        Ok(())
    }

    /// Stops node `id` of a cluster and keeps it stopped until [`start_node`](Self::start_node);
    /// refused where [`may_stop_node`] says so.
    pub async fn stop_node(&self, id: u8) -> Result<(), NodeError> {
        let _one = self.presenter.lock().await;
        may_stop_node(&self.nodes(), id).map_err(NodeError::Refused)?;
        let node = self.node(id).ok_or(NodeError::NoSuchNode(id))?;
        node.pause().await;
        Ok(())
    }

    /// Starts node `id` again once it was stopped on purpose, when it serves clients.
    pub async fn start_node(&self, id: u8) -> Result<(), NodeError> {
        let _one = self.presenter.lock().await;
        may_start_node(&self.nodes(), id).map_err(NodeError::Refused)?;
        let node = self.node(id).ok_or(NodeError::NoSuchNode(id))?;
        node.resume()
            .await
            .map_err(|e| NodeError::NotStarted(format!("{e:#}")))
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

impl NodeHandle {
    fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn pause(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command_::Pause(tx)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    async fn resume(&self) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command_::Resume(tx))
            .map_err(|_| anyhow::anyhow!("the broker's supervisor has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the broker's supervisor has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }
}

/// A node's supervisor thread: starts its JVM, answers pause/resume, starts it again when it
/// dies unasked, and stops it when the [`ManagedBroker`] is dropped or stopped.
fn supervise(
    node: Node,
    commands: mpsc::Receiver<Command_>,
    started: oneshot::Sender<Result<(), ManagedError>>,
    status: Arc<Mutex<Status>>,
) {
    let publish =
        |f: &dyn Fn(&mut Status)| f(&mut status.lock().unwrap_or_else(|e| e.into_inner()));
    // Starts the JVM, publishing its state and how long it took.
    let launch = |restarting: bool| {
        publish(&|s| {
            s.node.state = if restarting {
                NodeState::Restarting
            } else {
                NodeState::Starting
            }
        });
        let t = Instant::now();
        let r = node.start();
        let ms = t.elapsed().as_millis() as u64;
        publish(&|s| match &r {
            Ok(c) => {
                s.pid = Some(c.id());
                s.node.state = NodeState::Running;
                s.node.start_ms = ms;
            }
            Err(_) => s.node.state = NodeState::Restarting,
        });
        r
    };
    let mut child = match launch(false) {
        Ok(c) => {
            let _ = started.send(Ok(()));
            Some(c)
        }
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let mut paused = false;
    // A broker that keeps dying is started again less and less often (up to every 30 s).
    let mut backoff = Duration::ZERO;
    let mut retry_at: Option<Instant> = None;
    loop {
        match commands.recv_timeout(LOOK_EVERY) {
            Ok(Command_::Pause(reply)) => {
                paused = true;
                retry_at = None;
                let was = child.take().map(|mut c| stop_child(&mut c)).is_some();
                publish(&|s| {
                    s.pid = None;
                    s.node.state = NodeState::Stopped;
                });
                let _ = reply.send(was);
            }
            Ok(Command_::Resume(reply)) => {
                paused = false;
                let r = match child {
                    Some(_) => Ok(()),
                    None => launch(false).map(|c| child = Some(c)),
                };
                if r.is_err() {
                    // Not paused any more: the supervisor keeps trying, as after a crash.
                    backoff = Duration::from_secs(1);
                    retry_at = Some(Instant::now() + backoff);
                }
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(mut c) = child.take() {
                    stop_child(&mut c);
                }
                publish(&|s| {
                    s.pid = None;
                    s.node.state = NodeState::Stopped;
                });
                info!(node = node.id, "Apache Kafka node stopped");
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if paused {
            continue;
        }
        if let Some(c) = child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            warn!(node = node.id, %status, "the Apache Kafka broker exited unasked; starting it again");
            child = None;
            publish(&|s| {
                s.pid = None;
                s.node.state = NodeState::Restarting;
            });
            retry_at = Some(Instant::now() + backoff);
        }
        if child.is_none() && retry_at.is_some_and(|t| Instant::now() >= t) {
            match launch(true) {
                Ok(c) => {
                    publish(&|s| s.node.restarts += 1);
                    info!(node = node.id, "Apache Kafka broker running again");
                    child = Some(c);
                    retry_at = None;
                    backoff = Duration::ZERO;
                }
                Err(e) => {
                    backoff = (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                    warn!(
                        node = node.id,
                        "the Apache Kafka broker did not start again (next try in {backoff:?}): {e}"
                    );
                    retry_at = Some(Instant::now() + backoff);
                }
            }
        }
    }
}

/// SIGTERM (Kafka's controlled shutdown), then SIGKILL after [`STOP_WITHIN`]; reaps the child.
fn stop_child(child: &mut Child) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signals our own child, which has not been reaped (try_wait said so).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let until = Instant::now() + STOP_WITHIN;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    warn!("the Apache Kafka broker did not stop within {STOP_WITHIN:?}: killed");
    let _ = child.kill();
    let _ = child.wait();
    true
}
