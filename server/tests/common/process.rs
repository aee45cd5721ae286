//! The real `cashflow` binary as a process: started with arguments, its lines read, signalled,
//! and its CPU and memory read from `/proc`.

use std::time::Duration;

/// The real `cashflow` binary, started with `args` (`RUST_LOG=warn`, stderr discarded). Its
/// address and Kafka bootstrap servers come from its one stdout line, "cashflow is running at
/// http://… (Kafka: …)".
pub struct Binary {
    pub child: std::process::Child,
    pub url: String,
    pub kafka: String,
    /// The lines it printed after the first (read as they come, so it never writes to a
    /// closed pipe).
    pub more: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Binary {
    pub fn start(args: &[String]) -> Binary {
        use std::io::{BufRead, BufReader};
        // CASHFLOW_TEST_SERVER_LOG=FILE keeps the servers' logs (appended) for a failing test.
        let stderr = match std::env::var("CASHFLOW_TEST_SERVER_LOG") {
            Ok(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(std::process::Stdio::from)
                .unwrap_or_else(|_| std::process::Stdio::null()),
            Err(_) => std::process::Stdio::null(),
        };
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cashflow"));
        // CASHFLOW_TEST_SERVER_PRELOAD=LIB preloads LIB into the servers only, not into cargo or
        // the test: heaptrack's preload library, to profile the heap of the server a bench starts
        // (BENCHMARKS.md, "Memory per account, part 6").
        if let Ok(lib) = std::env::var("CASHFLOW_TEST_SERVER_PRELOAD") {
            command.env("LD_PRELOAD", lib);
        }
        let mut child = command
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("CASHFLOW_TEST_SERVER_RUST_LOG").unwrap_or("warn".into()),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn cashflow");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut line).expect("the running-at line");
        let more = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = more.clone();
        std::thread::spawn(move || {
            for l in out.lines() {
                let Ok(l) = l else { break };
                keep.lock().unwrap_or_else(|e| e.into_inner()).push(l);
            }
        });
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        let kafka = line
            .rsplit_once("(Kafka: ")
            .map(|(_, k)| k.trim().trim_end_matches(')').to_owned())
            .unwrap_or_else(|| panic!("no Kafka address in {line:?}"));
        Binary {
            child,
            url,
            kafka,
            more,
        }
    }

    /// The first line it printed after the running-at line that contains `what`, waiting up
    /// to 10 s for it.
    pub fn line_with(&self, what: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .more
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|l| l.contains(what))
            {
                return l.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no line with {what:?} in {:?}",
                self.more.lock().unwrap_or_else(|e| e.into_inner())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, as Ctrl-C or a service manager would stop it.
    pub fn sigterm(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }
}

/// Arguments for the real binary on `brokers` and `topic` (its own group prefix), then `extra`.
pub fn server_args(brokers: &str, topic: &str, extra: &[&str]) -> Vec<String> {
    [
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--group-prefix",
        topic,
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

/// A process's CPU time so far, in seconds (user + system).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let field = |i: usize| {
        after
            .split_whitespace()
            .nth(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let ticks = field(11) + field(12);
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Resident memory in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
