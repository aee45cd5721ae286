//! One node of the managed broker: its configuration, its storage formatted once, its JVM
//! spawned (from the supervisor thread) and awaited until it serves clients.

use super::*;

mod config;

/// How long a start may take before cashflow gives up (a first start formats and creates the
/// internal topics; a warm one takes a few seconds).
pub(super) const READY_WITHIN: Duration = Duration::from_secs(120);

/// The lines of the broker's log shown when it does not start.
pub(super) const LOG_TAIL_LINES: usize = 30;

/// The log lines that mean the broker serves clients (Kafka 4's KRaft server).
pub(super) const READY_LINES: [&str; 2] = [
    "Kafka Server started",
    "Transition from STARTING to STARTED",
];

/// One broker node: everything needed to start its JVM again.
#[derive(Clone)]
pub(super) struct Node {
    pub(super) java: PathBuf,
    pub(super) classpath: String,
    pub(super) dir: PathBuf,
    /// Its `node.id` (1 to `of`), and how many nodes the cluster has.
    pub(super) id: u8,
    pub(super) of: u8,
    pub(super) addr: SocketAddr,
    pub(super) controller: SocketAddr,
    /// `controller.quorum.voters`: every node's controller, `1@host:port,…`.
    pub(super) voters: String,
    /// The cluster id its storage is formatted with (the same on every node).
    pub(super) cluster: String,
    pub(super) heap_mb: u32,
}

impl Node {
    fn props(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
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
    pub(super) fn format_once(&self) -> anyhow::Result<()> {
        if self.dir.join("data/meta.properties").exists() {
            return Ok(());
        }
        let id = &self.cluster;
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
    pub(super) fn start(&self) -> Result<Child, ManagedError> {
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
