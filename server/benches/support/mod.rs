//! What the benches share beyond the tests' `common`: settings from the environment, the broker
//! a bench runs against (`BENCH_BROKERS`), and cleaning up its topics.

#![allow(dead_code)]

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;

use super::common;

/// `name` from the environment, or `default` if unset or unreadable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Wall-clock milliseconds since the epoch (records' and frames' timestamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A comma-separated list from the environment (`name`), or `default`'s.
pub fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// A release binary running its managed broker (paused, its own topic idle), stopped when the
/// bench ends; the clients under test reach it over TCP like any other broker.
pub struct Host(common::Binary);

impl Drop for Host {
    fn drop(&mut self) {
        self.0.sigterm();
        let _ = self.0.child.wait();
    }
}

/// The broker a bench runs against: `BENCH_BROKERS=managed` (a [`Host`]), another address, or
/// the test broker. (bootstrap servers, label, the host to keep alive).
pub fn broker() -> (String, String, Option<Host>) {
    let wanted = std::env::var("BENCH_BROKERS").unwrap_or_else(|_| common::apache_kafka());
    if wanted != "managed" {
        return (wanted, "Apache Kafka".to_string(), None);
    }
    let host = common::Binary::start(&[
        "--ephemeral".into(),
        "--paused".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--kafka-listen".into(),
        "127.0.0.1:0".into(),
    ]);
    (
        host.kafka.clone(),
        "managed Apache Kafka".to_string(),
        Some(Host(host)),
    )
}

/// Deletes every topic whose name starts with `prefix` (a bench's topics, and the server's
/// named after them: changelog, dead letters), so the disk stays bounded.
pub async fn delete_topics(brokers: &str, prefix: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let names: Vec<String> = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .map(|md| {
            md.topics()
                .iter()
                .map(|t| t.name().to_owned())
                .filter(|t| t.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Err(e) = admin.delete_topics(&names, &AdminOptions::new()).await {
        eprintln!("could not delete {names:?}: {e}");
    }
}

/// Runs a Python peer (`scripts/bench/NAME` with `args`) and reads the one JSON line it prints;
/// `None` (with its last error line printed) if it failed.
pub fn python_peer(script: &std::path::Path, args: &[String]) -> Option<serde_json::Value> {
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// CPU time the whole machine has spent busy so far (every core; user, system, interrupts),
/// in seconds: what a peer and cashflow leave of the cores shows whether more threads could
/// help.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: f64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .enumerate()
        // user nice system idle iowait irq softirq steal: all but idle and iowait.
        .filter(|(i, _)| *i < 8 && *i != 3 && *i != 4)
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}
