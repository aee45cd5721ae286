//! The managed local broker: with no `--brokers`, cashflow runs Apache Kafka 4 itself, in KRaft
//! mode (broker and controller in one JVM), as a child process it starts, supervises and
//! stops last.
//!
//! - **Where it comes from.** `java` (≥ 17) and the broker's jars, which `scripts/setup.sh`
//!   resolves with `mvn` and lists in a classpath file; nothing is downloaded at run time. When
//!   either is missing, [`ManagedError`] names the command that installs it and `--brokers`.
//! - **Its data** lives in `<data dir>/kafka` (formatted once, the cluster id kept), or in a
//!   temporary folder removed at exit (`--ephemeral`). One cashflow per data dir: a lock file.
//! - **No orphan JVM.** `java` is exec'd directly (no shell) in its own process group (a
//!   terminal's Ctrl-C reaches cashflow alone, which stops the broker last) with
//!   `PR_SET_PDEATHSIG`, which fires when the *thread* that spawned it exits: so every spawn
//!   happens on one supervisor thread that lives until the broker is stopped, and a cashflow
//!   killed with SIGKILL takes its broker with it.
//! - **Supervised.** A broker that dies unasked is started again (with a back-off when it
//!   keeps dying); the clients see an outage, exactly as in the outage lesson, which stops it
//!   on purpose through [`ManagedBroker::pause`].

use std::fs::File;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::oneshot;
use tracing::{info, warn};

mod node;
mod prepare;

use node::Node;
use prepare::{check_java, lock_dir, pick_addr, read_classpath};

/// How long a stopping broker gets after SIGTERM before SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// How often the supervisor looks at its child.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// What the managed broker needs (see `--java`, `--kafka-classpath`, `--kafka-listen`).
#[derive(Clone, Debug)]
pub struct BrokerSetup {
    /// The `java` to run (a name looked up on PATH, or a path).
    pub java: PathBuf,
    /// A file holding the broker's classpath (jars joined by `:`), written by setup.
    pub classpath_file: PathBuf,
    /// The client port wanted (the next free one when taken); always a loopback address.
    pub listen: SocketAddr,
    /// Its data folder (`<data dir>/kafka`); `None`: a temporary one, removed at exit.
    pub dir: Option<PathBuf>,
    /// The JVM's heap, in MiB.
    pub heap_mb: u32,
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

/// The running broker: its address, and the supervisor thread that owns the process.
pub struct ManagedBroker {
    pub addr: SocketAddr,
    /// Where its data and log are.
    pub dir: PathBuf,
    commands: mpsc::Sender<Command_>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Times the supervisor started it again after it died unasked.
    restarts: Arc<AtomicU64>,
    /// The running JVM's process id (0 while it is stopped).
    pid: Arc<AtomicU64>,
}

enum Command_ {
    /// Stop it and keep it stopped (the outage lesson); answers whether it was running.
    Pause(oneshot::Sender<bool>),
    /// Start it again after a pause, answering once it serves clients.
    Resume(oneshot::Sender<Result<(), String>>),
}

impl ManagedBroker {
    /// Checks Java and the jars, prepares the data folder (formatting it the first time),
    /// starts the broker and waits until it serves clients.
    pub async fn start(setup: BrokerSetup) -> anyhow::Result<ManagedBroker> {
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
        let addr = pick_addr(setup.listen)?;
        let controller = pick_addr(SocketAddr::new(setup.listen.ip(), 0))?;
        let node = Node {
            java: setup.java,
            classpath,
            dir: dir.clone(),
            addr,
            controller,
            heap_mb: setup.heap_mb,
        };
        node.write_config()?;
        let n = node.clone();
        tokio::task::spawn_blocking(move || n.format_once()).await??;

        let restarts = Arc::new(AtomicU64::new(0));
        let pid = Arc::new(AtomicU64::new(0));
        let (commands, rx) = mpsc::channel();
        let (started_tx, started_rx) = oneshot::channel();
        let (r, p) = (restarts.clone(), pid.clone());
        // The thread every JVM is spawned from: PR_SET_PDEATHSIG is tied to it. It lives until
        // the broker is stopped for good, and owns the lock and the temporary folder, so both
        // outlive the process that uses them.
        let thread = std::thread::Builder::new()
            .name("kafka-supervisor".into())
            .spawn(move || {
                let _held = (lock, temp);
                supervise(node, rx, started_tx, r, p);
            })?;
        match started_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                return Err(e.into());
            }
            Err(_) => anyhow::bail!("the local Apache Kafka broker's supervisor died"),
        }
        info!(%addr, dir = %dir.display(), "Apache Kafka broker running (managed by cashflow)");
        Ok(ManagedBroker {
            addr,
            dir,
            commands,
            thread: Some(thread),
            restarts,
            pid,
        })
    }

    /// Times it was started again after it died unasked.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The JVM's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        match self.pid.load(Ordering::Relaxed) {
            0 => None,
            p => u32::try_from(p).ok(),
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after a bound) and keeps it stopped until
    /// [`resume`](Self::resume): an outage. False if it was stopped already.
    pub async fn pause(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command_::Pause(tx)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Starts it again on the same address from the same data, once it serves clients.
    pub async fn resume(&self) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command_::Resume(tx))
            .map_err(|_| anyhow::anyhow!("the broker's supervisor has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the broker's supervisor has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }

    /// Stops it for good and waits until the JVM has exited.
    pub async fn stop(mut self) {
        let thread = self.thread.take();
        drop(self); // closes the channel: the supervisor stops the JVM and returns
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// The supervisor thread: starts the broker, answers pause/resume, starts it again when it
/// dies unasked, and stops it when the [`ManagedBroker`] is dropped or stopped.
fn supervise(
    node: Node,
    commands: mpsc::Receiver<Command_>,
    started: oneshot::Sender<Result<(), ManagedError>>,
    restarts: Arc<AtomicU64>,
    pid: Arc<AtomicU64>,
) {
    let mut child = match node.start() {
        Ok(c) => {
            pid.store(c.id().into(), Ordering::Relaxed);
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
                pid.store(0, Ordering::Relaxed);
                let _ = reply.send(was);
            }
            Ok(Command_::Resume(reply)) => {
                paused = false;
                let r = match child {
                    Some(_) => Ok(()),
                    None => node.start().map(|c| {
                        pid.store(c.id().into(), Ordering::Relaxed);
                        child = Some(c);
                    }),
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
                pid.store(0, Ordering::Relaxed);
                info!("Apache Kafka broker stopped");
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
            warn!(%status, "the Apache Kafka broker exited unasked; starting it again");
            child = None;
            pid.store(0, Ordering::Relaxed);
            retry_at = Some(Instant::now() + backoff);
        }
        if child.is_none() && retry_at.is_some_and(|t| Instant::now() >= t) {
            match node.start() {
                Ok(c) => {
                    restarts.fetch_add(1, Ordering::Relaxed);
                    pid.store(c.id().into(), Ordering::Relaxed);
                    info!("Apache Kafka broker running again");
                    child = Some(c);
                    retry_at = None;
                    backoff = Duration::ZERO;
                }
                Err(e) => {
                    backoff = (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                    warn!(
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
