//! Idle cost: the default demo (2 tx/s, no viewer) left running, as a laptop in a classroom
//! runs it for an hour. The shipped release binary's CPU time (`/proc/PID/stat`, user + system)
//! over a window after it settled, as % of one core: with the broker cashflow runs itself (the
//! default; its JVM, a child process, is counted beside it), with generation paused there, and
//! on the shared Apache Kafka (the server alone; the broker is someone else's).
//! Prints `ROW idle | …` lines for `scripts/bench.sh`.
//!
//!     cargo bench -p cashflow --bench idle            (120 s warm-up, then 60 s per setting)
//!     BENCH_IDLE_SECONDS=10 BENCH_IDLE_WARMUP=8 cargo bench -p cashflow --bench idle
//!
//! The warm-up is the "60 s measured after 2 minutes": before that the JVM's JIT is
//! still compiling the broker's hot paths, which doubles its share.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

/// The processes whose parent is `pid` (the managed broker's JVM).
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1))
                    == Some(pid.to_string().as_str())
            })
        })
        .collect()
}

/// % of one core: cashflow, and its children (the managed broker).
fn measure(args: &[&str], warmup: u64, seconds: u64) -> (f64, f64) {
    let mut all: Vec<String> = ["--listen", "127.0.0.1:0"].map(String::from).to_vec();
    all.extend(args.iter().map(|a| a.to_string()));
    let mut server = common::Binary::start(&all);
    let pid = server.child.id();
    // Started, restored, the first rebalance done; the broker's JIT settled.
    std::thread::sleep(Duration::from_secs(warmup));
    let kids = children(pid);
    let total = |ps: &[u32]| ps.iter().map(|p| common::cpu_seconds(*p)).sum::<f64>();
    let (c0, k0, t0) = (common::cpu_seconds(pid), total(&kids), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (common::cpu_seconds(pid) - c0) / secs * 100.0;
    let broker = (total(&kids) - k0) / secs * 100.0;
    server.sigterm();
    let _ = server.child.wait();
    (cpu, broker)
}

fn main() {
    let seconds: u64 = support::env_or("BENCH_IDLE_SECONDS", 60);
    let warmup: u64 = support::env_or("BENCH_IDLE_WARMUP", 120);
    let apache = common::apache_kafka();
    let topic = common::unique("bench-idle");
    let managed = ["--ephemeral", "--kafka-listen", "127.0.0.1:0"];
    let runs: [(&str, Vec<&str>); 3] = [
        (
            "managed broker, 2 tx/s (the default demo)",
            [&managed[..], &["--rate", "2"]].concat(),
        ),
        (
            "managed broker, generation paused",
            [&managed[..], &["--paused"]].concat(),
        ),
        (
            "Apache Kafka, 2 tx/s (the server alone)",
            vec![
                "--brokers",
                &apache,
                "--topic",
                &topic,
                "--group-prefix",
                &topic,
                "--rate",
                "2",
            ],
        ),
    ];
    for (label, args) in runs {
        let (cpu, broker) = measure(&args, warmup, seconds);
        let total = cpu + broker;
        println!(
            "{label}: cashflow {cpu:.1} % + its broker {broker:.1} % = {total:.1} % of a core over {seconds} s"
        );
        println!("ROW idle | {label} | {seconds} | {cpu:.1} % | {broker:.1} % | {total:.1} % |");
    }
}
