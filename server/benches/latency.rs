//! Produce → browser latency: from a transaction's timestamp (set by the producer as it makes
//! it) until the WebSocket frame that carries it reaches a client, at 1, 10, 1 000 and
//! 10 000 tx/s, on the broker cashflow runs (managed) and on the shared Apache Kafka.
//!
//! The shipped release binary generates at the rate (20 accounts, so every account is shown);
//! one WebSocket client notes when each frame arrives. Afterwards the topic is read back:
//! - balance: a delta frame carries an account's new transaction count; every one of the
//!   account's records up to that count (its records in partition order, as they are keyed by
//!   account) that an earlier frame did not carry has its latency = frame arrival − timestamp;
//! - log line: each line in a frame names its record's timestamp.
//!
//! Prints `ROW latency | …` lines (p50 / p99 / max, ms) for `scripts/bench.sh`.
//!
//!     cargo bench -p cashflow --bench latency
//!     BENCH_LATENCY_SECONDS=5 BENCH_BROKERS=managed cargo bench -p cashflow --bench latency

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cashflow_shared::AccountId;
use cashflow_shared::protocol::{AccountRow, ServerMsg};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const ACCOUNTS: u32 = 20;

/// What the client saw: per account, (arrival, count) of each delta; log lines' latencies.
#[derive(Default)]
struct Seen {
    counts: BTreeMap<AccountId, Vec<(i64, u64)>>,
    log: Vec<i64>,
    frames: u64,
}

fn percentiles(mut v: Vec<i64>) -> String {
    if v.is_empty() {
        return "– | – | –".into();
    }
    v.sort_unstable();
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    format!("{} | {} | {}", at(0.5), at(0.99), v[v.len() - 1])
}

async fn watch(url: &str, seconds: u64) -> Seen {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/ws", url.replace("http://", "ws://")))
            .await
            .expect("ws");
    let mut seen = Seen::default();
    let until = Instant::now() + Duration::from_secs(seconds);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(until.into(), ws.next()).await {
        let Message::Text(text) = msg else { continue };
        let at = support::now_ms();
        let d = match serde_json::from_str::<ServerMsg>(&text) {
            Ok(ServerMsg::Delta(d)) => d,
            // Where each account stood when the client came (arrival 0: nothing to time).
            Ok(ServerMsg::Snapshot(s)) => {
                for a in &s.accounts {
                    seen.counts.entry(a.account).or_default().push((0, a.count));
                }
                continue;
            }
            _ => continue,
        };
        seen.frames += 1;
        for &AccountRow(account, _, count, _) in &d.accounts {
            seen.counts.entry(account).or_default().push((at, count));
        }
        seen.log
            .extend(d.log.iter().filter_map(|l| Some(at - l.timestamp_ms?)));
    }
    seen
}

/// One rate: (balance latencies, log-line latencies, records, frames).
async fn run(brokers: Option<&str>, rate: u32, seconds: u64) -> (Vec<i64>, Vec<i64>, usize, u64) {
    let topic = common::unique("bench-latency");
    let mut args: Vec<String> = match brokers {
        Some(b) => common::server_args(b, &topic, &[]),
        None => vec![
            "--ephemeral".into(),
            "--kafka-listen".into(),
            "127.0.0.1:0".into(),
        ],
    };
    args.extend(
        [
            "--listen",
            "127.0.0.1:0",
            "--accounts",
            &ACCOUNTS.to_string(),
            "--rate",
            &rate.to_string(),
        ]
        .map(String::from),
    );
    // BENCH_SERVER_ARGS: more flags for the server (e.g. "-X fetch.wait.max.ms=100").
    if let Ok(extra) = std::env::var("BENCH_SERVER_ARGS") {
        args.extend(extra.split_whitespace().map(String::from));
    }
    let mut server = common::Binary::start(&args);
    let (brokers, topic) = match brokers {
        Some(b) => (b.to_owned(), topic),
        None => (server.kafka.clone(), "transactions".to_owned()),
    };
    // Warming up is left out: until both consumer groups are stable with every partition
    // assigned (on a new broker a group's first join can take seconds, and the records of
    // those seconds reached the page late: 1.3–2.1 s, once in a few runs), then a second.
    let url = server.url.clone();
    common::wait_for(Duration::from_secs(60), "both groups assigned", || async {
        let v: cashflow_shared::api::TopicView = reqwest::get(format!("{url}/api/topic"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let ready = |suffix: &str| {
            v.groups.iter().any(|g| {
                g.group.ends_with(suffix)
                    && g.state == "Stable"
                    && g.members.iter().map(|m| m.partitions.len()).sum::<usize>()
                        == v.partitions.len()
            })
        };
        (!v.partitions.is_empty() && ready("-logger") && ready("-balance")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = watch(&server.url, seconds).await;
    let records = tokio::task::spawn_blocking(move || common::read_topic(&brokers, &topic))
        .await
        .expect("read back");
    server.sigterm();
    let _ = server.child.wait();
    // Each account's record timestamps, in partition order.
    let mut stamps: BTreeMap<AccountId, Vec<i64>> = BTreeMap::new();
    let mut records = records;
    records.sort_by_key(|r| (r.partition, r.offset));
    for r in &records {
        if let Ok(tx) = cashflow_shared::Transaction::parse(&r.payload) {
            stamps
                .entry(tx.account)
                .or_default()
                .push(tx.timestamp_ms.unwrap_or_default());
        }
    }
    let mut balance = Vec::new();
    for (account, deltas) in &seen.counts {
        let Some(ts) = stamps.get(account) else {
            continue;
        };
        // The records up to `carried` reached the client already (or before it came: the
        // snapshot's count; an account it did not name had none).
        let mut carried = 0u64;
        for (at, count) in deltas {
            if *at > 0 {
                for k in carried..(*count).min(ts.len() as u64) {
                    balance.push(at - ts[k as usize]);
                }
            }
            carried = carried.max(*count);
        }
    }
    (balance, seen.log, records.len(), seen.frames)
}

#[tokio::main]
async fn main() {
    let seconds: u64 = support::env_or("BENCH_LATENCY_SECONDS", 20);
    let rates: Vec<u32> = support::env_list("BENCH_LATENCY_RATES", "1,10,1000,10000");
    let wanted = std::env::var("BENCH_BROKERS").unwrap_or_else(|_| common::apache_kafka());
    let (brokers, label) = if wanted == "managed" {
        (None, "managed Apache Kafka")
    } else {
        (Some(wanted.as_str()), "Apache Kafka")
    };
    for rate in rates {
        // At 1 tx/s a short window holds too few records for a p99.
        let secs = if rate < 10 { seconds * 3 } else { seconds };
        let (balance, log, records, frames) = run(brokers, rate, secs).await;
        println!(
            "{label} at {rate} tx/s: {records} records, {frames} frames in {secs} s; balance {} samples, log {} samples",
            balance.len(),
            log.len()
        );
        println!(
            "ROW latency | {label} | {rate} | {} | {} | {:.1} |",
            percentiles(balance),
            percentiles(log),
            frames as f64 / secs as f64
        );
    }
}
