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

/// How long a start may take before cashflow gives up (a first start formats and creates the
/// internal topics; a warm one takes a few seconds).
const READY_WITHIN: Duration = Duration::from_secs(120);
/// How long a stopping broker gets after SIGTERM before SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// How often the supervisor looks at its child.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// The lines of the broker's log shown when it does not start.
const LOG_TAIL_LINES: usize = 30;

/// The log lines that mean the broker serves clients (Kafka 4's KRaft server).
const READY_LINES: [&str; 2] = [
    "Kafka Server started",
    "Transition from STARTING to STARTED",
];

/// Only warnings and the start/stop lines: the log stays small on a long-running demo.
const LOG4J2: &str = "\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = info
";

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

/// One broker node: everything needed to start its JVM again.
#[derive(Clone)]
struct Node {
    java: PathBuf,
    classpath: String,
    dir: PathBuf,
    addr: SocketAddr,
    controller: SocketAddr,
    heap_mb: u32,
}

impl Node {
    fn props(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The broker's configuration, written at every start (the ports may differ).
    fn write_config(&self) -> anyhow::Result<()> {
        let (addr, ctl, data) = (self.addr, self.controller, self.dir.join("data"));
        let props = format!(
            "\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{ctl}
listeners=PLAINTEXT://{addr},CONTROLLER://{ctl}
advertised.listeners=PLAINTEXT://{addr}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=false
# One node: the internal topics have one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
# Both rebalance protocols: the classic one, and KIP-848's consumer protocol for its lesson.
group.coordinator.rebalance.protocols=classic,consumer
# A class sees a new member's partitions at once, not after 3 s.
group.initial.rebalance.delay.ms=0
# Retention and compaction act within a minute (disk stays bounded; segments are small
# enough for retention by size to delete some).
log.segment.bytes=16777216
log.retention.check.interval.ms=30000
log.cleaner.backoff.ms=5000
# Idle cost (BENCHMARKS.md, \"The managed broker at idle\"): every request thread and network
# thread wakes ~3 times a second with nothing to do, and KRaft writes a no-op metadata record
# every 500 ms by default. A demo's load needs few threads.
num.network.threads=1
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
metadata.max.idle.interval.ms=5000
",
            data = data.display()
        );
        std::fs::write(self.props(), props)
            .with_context(|| format!("cannot write {}", self.props().display()))?;
        std::fs::write(self.dir.join("log4j2.properties"), LOG4J2)?;
        Ok(())
    }

    /// A `java` command with the JVM's settings: a small heap, the serial collector and the
    /// quick C1 JIT, which keep an idle demo's broker cheap (BENCHMARKS.md, "Idle cost").
    fn java(&self, main: &str) -> Command {
        let mut c = Command::new(&self.java);
        c.arg(format!("-Xmx{}m", self.heap_mb))
            .arg(format!("-Xms{}m", self.heap_mb.min(128)))
            .args([
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-XX:-UsePerfData",
                "-Djava.awt.headless=true",
            ])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(&self.classpath)
            .arg(main)
            .stdin(Stdio::null());
        c
    }

    /// Formats the storage the first time (with a cluster id kept beside it).
    fn format_once(&self) -> anyhow::Result<()> {
        if self.dir.join("data/meta.properties").exists() {
            return Ok(());
        }
        let id_file = self.dir.join("cluster.id");
        let id = match std::fs::read_to_string(&id_file) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => {
                // As Kafka's Uuid.randomUuid: never one starting with "-", which its tools'
                // argument parser would read as an option.
                let id = loop {
                    let id = cluster_id(rand::random());
                    if !id.starts_with('-') {
                        break id;
                    }
                };
                std::fs::write(&id_file, &id)?;
                id
            }
        };
        info!(dir = %self.dir.display(), "formatting the local Apache Kafka broker's storage");
        let out = self
            .java("kafka.tools.StorageTool")
            .arg("format")
            .arg(format!("--cluster-id={id}"))
            .arg("-c")
            .arg(self.props())
            .output()
            .map_err(|e| {
                ManagedError::Java(format!("`{}` cannot run: {e}", self.java.display()))
            })?;
        if !out.status.success() {
            return Err(ManagedError::NotStarted {
                reason: format!("formatting its storage failed ({})", out.status),
                tail: last_lines(&String::from_utf8_lossy(&[out.stdout, out.stderr].concat())),
            }
            .into());
        }
        Ok(())
    }

    /// Starts the JVM (on the calling thread, which must be the supervisor's).
    fn spawn(&self) -> std::io::Result<Child> {
        let log = File::create(self.log())?;
        let mut cmd = self.java("kafka.Kafka");
        cmd.arg(self.props())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the signal was armed.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("cashflow exited"));
                }
                Ok(())
            });
        }
        cmd.spawn()
    }

    /// Waits until the broker serves clients, or it exits, or [`READY_WITHIN`] passes.
    fn wait_ready(&self, child: &mut Child) -> Result<(), ManagedError> {
        let start = Instant::now();
        let mut said = Instant::now();
        loop {
            let fail = |reason: String| ManagedError::NotStarted {
                reason,
                tail: last_lines(&read_log(&self.log())),
            };
            if let Ok(Some(status)) = child.try_wait() {
                return Err(fail(format!("it exited ({status})")));
            }
            let log = read_log(&self.log());
            if READY_LINES.iter().any(|l| log.contains(l))
                && TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).is_ok()
            {
                return Ok(());
            }
            if start.elapsed() > READY_WITHIN {
                let _ = stop_child(child);
                return Err(fail(format!(
                    "not ready after {} s",
                    READY_WITHIN.as_secs()
                )));
            }
            if said.elapsed() >= Duration::from_secs(5) {
                said = Instant::now();
                info!(
                    seconds = start.elapsed().as_secs(),
                    "waiting for the local Apache Kafka broker to start"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Spawns the JVM and waits until it serves clients.
    fn start(&self) -> Result<Child, ManagedError> {
        self.outlive_previous();
        let mut child = self.spawn().map_err(|e| {
            ManagedError::Java(format!("`{}` cannot run: {e}", self.java.display()))
        })?;
        let _ = std::fs::write(self.dir.join("broker.pid"), child.id().to_string());
        self.wait_ready(&mut child)?;
        Ok(child)
    }

    /// A cashflow killed with SIGKILL leaves its JVM shutting down (PR_SET_PDEATHSIG sent it
    /// SIGTERM), holding the log folder's lock for a few seconds: a relaunch waits for it
    /// (and, past [`STOP_WITHIN`], kills it). Only a process running this folder's broker.
    fn outlive_previous(&self) {
        let Some(pid) = std::fs::read_to_string(self.dir.join("broker.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|p| *p > 1)
        else {
            return;
        };
        let ours = || {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let props = self.props();
                let want = props.as_os_str().as_encoded_bytes();
                c.split(|b| *b == 0).any(|arg| arg == want)
            })
        };
        if !ours() {
            return;
        }
        info!(
            pid,
            "the previous run's Apache Kafka broker is still stopping; waiting for it"
        );
        let until = Instant::now() + STOP_WITHIN;
        while ours() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
        if ours() {
            warn!(
                pid,
                "the previous run's Apache Kafka broker did not stop: killed"
            );
            // SAFETY: a plain kill(2) of a process checked above to be this folder's broker.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            while ours() {
                std::thread::sleep(Duration::from_millis(50));
            }
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

/// The classpath setup wrote, each jar checked.
fn read_classpath(file: &Path) -> Result<String, ManagedError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ManagedError::Jars(format!("{}: {e}", file.display())))?;
    let cp = text.trim().to_owned();
    if cp.is_empty() {
        return Err(ManagedError::Jars(format!("{} is empty", file.display())));
    }
    if let Some(missing) = cp.split(':').find(|j| !Path::new(j).is_file()) {
        return Err(ManagedError::Jars(format!(
            "{missing} (listed in {}) is missing",
            file.display()
        )));
    }
    Ok(cp)
}

/// `java -version`, major ≥ 17.
fn check_java(java: &Path) -> Result<(), ManagedError> {
    let out = Command::new(java)
        .arg("-version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ManagedError::Java(format!("`{}` cannot run: {e}", java.display())))?;
    let text = String::from_utf8_lossy(&out.stderr);
    match java_major(&text) {
        Some(m) if m >= 17 => Ok(()),
        Some(m) => Err(ManagedError::Java(format!(
            "`{}` is Java {m}",
            java.display()
        ))),
        None => Err(ManagedError::Java(format!(
            "`{} -version` said {:?}",
            java.display(),
            text.lines().next().unwrap_or("")
        ))),
    }
}

/// The major version in `java -version`'s first line (`openjdk version "17.0.9" …`; `"1.8.0_…"`
/// is 8).
fn java_major(text: &str) -> Option<u32> {
    let v = text.split('"').nth(1)?;
    let mut parts = v.split(['.', '-', '+', '_']);
    match parts.next()?.parse().ok()? {
        1 => parts.next()?.parse().ok(),
        m => Some(m),
    }
}

/// A Kafka cluster id: 16 random bytes in unpadded URL-safe base64, as `StorageTool
/// random-uuid` prints (22 characters).
fn cluster_id(bytes: [u8; 16]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        n += 8;
        while n >= 6 {
            n -= 6;
            out.push(ABC[((bits >> n) & 63) as usize] as char);
        }
    }
    if n > 0 {
        out.push(ABC[((bits << (6 - n)) & 63) as usize] as char);
    }
    out
}

fn read_log(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Locks `dir` for this process (released when the file is closed, also by a crash).
fn lock_dir(dir: &Path) -> anyhow::Result<File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .with_context(|| format!("cannot open {}", dir.join("LOCK").display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(ManagedError::DataDirInUse(dir.to_owned()).into())
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", dir.display()))
        }
    }
}

/// `wanted`, or a free port on the same address when it is taken.
fn pick_addr(wanted: SocketAddr) -> anyhow::Result<SocketAddr> {
    match TcpListener::bind(wanted) {
        Ok(l) => Ok(l.local_addr()?),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let l = TcpListener::bind(SocketAddr::new(wanted.ip(), 0))?;
            let addr = l.local_addr()?;
            info!(wanted = %wanted, using = %addr, "port taken; the broker uses a free one");
            Ok(addr)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {wanted}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions_are_read_from_the_first_line() {
        assert_eq!(
            java_major("openjdk version \"17.0.13\" 2024-10-15\nOpenJDK Runtime"),
            Some(17)
        );
        assert_eq!(java_major("java version \"1.8.0_392\""), Some(8));
        assert_eq!(java_major("openjdk version \"21\" 2023-09-19"), Some(21));
        assert_eq!(java_major("openjdk version \"25-ea\""), Some(25));
        assert_eq!(java_major("bash: java: command not found"), None);
    }

    #[test]
    fn cluster_ids_look_like_kafkas() {
        // Kafka's Uuid.toString of these bytes (base64url, no padding).
        assert_eq!(cluster_id([0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(cluster_id([255; 16]), "_____________________w");
        // 0xF8 starts with six 1 bits minus one: "-" (62) first, which Kafka never makes.
        assert!(cluster_id([0xF8; 16]).starts_with('-'));
        let id = cluster_id(rand::random());
        assert_eq!(id.len(), 22);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn a_missing_jar_is_named() {
        let d = tempfile::tempdir().expect("temp dir");
        let f = d.path().join("cp.txt");
        std::fs::write(&f, "/nonexistent/kafka_2.13-4.1.0.jar\n").expect("write");
        let e = read_classpath(&f).expect_err("a missing jar");
        assert!(
            e.to_string().contains("/nonexistent/kafka_2.13-4.1.0.jar"),
            "{e}"
        );
        assert!(e.to_string().contains("scripts/setup.sh demo"), "{e}");
        let e = read_classpath(&d.path().join("none.txt")).expect_err("no file");
        assert!(e.to_string().contains("--brokers"), "{e}");
    }
}
