//! Idle cost: the default demo (2 tx/s, no viewer) left running, as a laptop in a classroom
//! runs it for an hour. The shipped release binary's CPU time (`/proc/PID/stat`, user + system)
//! over a window after it settled, as % of one core: on the embedded broker (the broker runs
//! inside the process, so its cost is counted), with generation paused there, and on Apache
//! Kafka (the server alone; the broker is another process).
//! Prints `ROW idle | …` lines for `scripts/bench.sh`.
//!
//!     cargo bench -p cashflow --bench idle            (60 s per setting)
//!     BENCH_IDLE_SECONDS=10 cargo bench -p cashflow --bench idle

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

fn measure(args: &[&str], seconds: u64) -> f64 {
    let mut all: Vec<String> = ["--listen", "127.0.0.1:0"].map(String::from).to_vec();
    all.extend(args.iter().map(|a| a.to_string()));
    let mut server = common::Binary::start(&all);
    let pid = server.child.id();
    // Started, restored, the first rebalance done.
    std::thread::sleep(Duration::from_secs(8));
    let (c0, t0) = (common::cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu = (common::cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    server.sigterm();
    let _ = server.child.wait();
    cpu
}

fn main() {
    let seconds: u64 = support::env_or("BENCH_IDLE_SECONDS", 60);
    let apache = common::apache_kafka();
    let topic = common::unique("bench-idle");
    let embedded = ["--ephemeral", "--embedded-listen", "127.0.0.1:0"];
    let runs: [(&str, Vec<&str>); 3] = [
        (
            "embedded broker, 2 tx/s (the default demo)",
            [&embedded[..], &["--rate", "2"]].concat(),
        ),
        (
            "embedded broker, generation paused",
            [&embedded[..], &["--paused"]].concat(),
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
        let cpu = measure(&args, seconds);
        println!("{label}: {cpu:.1} % of a core over {seconds} s");
        println!("ROW idle | {label} | {seconds} | {cpu:.1} % |");
    }
}
