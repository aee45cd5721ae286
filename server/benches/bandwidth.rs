//! What one viewer's page costs a classroom's Wi-Fi: WebSocket payload bytes a second at
//! 2 and 1 000 tx/s over 100 accounts, against the bytes of the records themselves (what a
//! client streaming the topic would receive over the same window).
//!
//! The release binary on the benchmark broker, generating at each rate; one WebSocket viewer
//! counts every payload byte for `BENCH_BANDWIDTH_SECONDS` from its first snapshot on (a
//! snapshot re-sent because the viewer fell behind counts too), and what each part of the
//! deltas weighed. The topic is read back afterwards: its records' keys and values whose
//! timestamps fall in the same window are the peer. Prints `ROW bandwidth | …` lines for
//! `scripts/bench.sh`. Targets (issue 21): ≤ 2 kB/s at 2 tx/s, ≤ 20 kB/s at 1 000 tx/s.
//!
//!     cargo bench -p cashflow --bench bandwidth
//!     BENCH_BANDWIDTH_SECONDS=10 BENCH_BANDWIDTH_RATES=1000 cargo bench -p cashflow --bench bandwidth

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const ACCOUNTS: u32 = 100;

#[derive(Default)]
struct Seen {
    bytes: u64,
    frames: u64,
    /// Snapshots after the first, and their bytes.
    snapshots: u64,
    snapshot_bytes: u64,
    /// Bytes by the delta's part (its JSON value's length).
    parts: BTreeMap<String, u64>,
    /// The window, ms since the epoch.
    from_ms: i64,
    to_ms: i64,
}

async fn watch(url: &str, seconds: u64) -> Seen {
    let url = format!("{}/ws", url.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let mut seen = Seen::default();
    let mut until = None;
    loop {
        let deadline = until.unwrap_or_else(|| Instant::now() + Duration::from_secs(30));
        let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline.into(), ws.next()).await else {
            break;
        };
        let Message::Text(text) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON frame");
        let kind = v["type"].as_str().unwrap_or_default().to_owned();
        if until.is_none() {
            // The window opens with the first snapshot.
            if kind == "snapshot" {
                until = Some(Instant::now() + Duration::from_secs(seconds));
                seen.from_ms = support::now_ms();
            }
            continue;
        }
        seen.bytes += text.len() as u64;
        seen.frames += 1;
        if kind == "snapshot" {
            seen.snapshots += 1;
            seen.snapshot_bytes += text.len() as u64;
        } else if let serde_json::Value::Object(m) = &v {
            for (k, part) in m.iter().filter(|(k, _)| *k != "type") {
                *seen.parts.entry(k.clone()).or_default() += part.to_string().len() as u64;
            }
        }
    }
    seen.to_ms = support::now_ms();
    seen
}

#[tokio::main]
async fn main() {
    let seconds: u64 = support::env_or("BENCH_BANDWIDTH_SECONDS", 60);
    let rates: Vec<u32> = support::env_list("BENCH_BANDWIDTH_RATES", "2,1000");
    let (brokers, label, _host) = support::broker();
    for rate in rates {
        let topic = common::unique("bench-bandwidth");
        let data = tempfile::tempdir().expect("a data dir");
        let mut args = common::server_args(&brokers, &topic, &[]);
        args.extend(
            [
                "--listen",
                "127.0.0.1:0",
                "--accounts",
                &ACCOUNTS.to_string(),
                "--rate",
                &rate.to_string(),
                "--data-dir",
                &data.path().display().to_string(),
            ]
            .map(String::from),
        );
        let mut server = common::Binary::start(&args);
        // Connections made and the group's first assignment done before the window.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let seen = watch(&server.url, seconds).await;
        server.sigterm();
        let _ = server.child.wait();
        let (b, t) = (brokers.clone(), topic.clone());
        let records = tokio::task::spawn_blocking(move || common::read_topic(&b, &t))
            .await
            .expect("read back");
        let topic_bytes: usize = records
            .iter()
            .filter(|r| {
                cashflow_shared::Transaction::parse(&r.payload)
                    .ok()
                    .and_then(|tx| tx.timestamp_ms)
                    .is_some_and(|ts| (seen.from_ms..seen.to_ms).contains(&ts))
            })
            .map(|r| r.payload.len() + r.key.as_ref().map_or(0, Vec::len))
            .sum();
        support::delete_topics(&brokers, &topic).await;
        let secs = (seen.to_ms - seen.from_ms) as f64 / 1000.0;
        let per_s = |b: u64| b as f64 / secs;
        let viewer = per_s(seen.bytes);
        let topic = topic_bytes as f64 / secs;
        let mut parts: Vec<(String, u64)> = seen.parts.into_iter().collect();
        parts.sort_by_key(|(_, b)| std::cmp::Reverse(*b));
        let parts = parts
            .iter()
            .take(5)
            .map(|(k, b)| format!("{k} {:.2}", per_s(*b) / 1000.0))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "{label} at {rate} tx/s over {secs:.0} s: {:.2} kB/s per viewer ({:.1} frames/s, {} snapshots again, {} B), the records {:.2} kB/s; by part (kB/s): {parts}",
            viewer / 1000.0,
            per_s(seen.frames),
            seen.snapshots,
            seen.snapshot_bytes,
            topic / 1000.0,
        );
        println!(
            "ROW bandwidth | {label} | {rate} | {secs:.0} | {:.1} | {:.2} | {} | {:.2} | {:.3} | {parts} |",
            per_s(seen.frames),
            viewer / 1000.0,
            seen.snapshots,
            topic / 1000.0,
            viewer / topic.max(1.0),
        );
    }
}
