//! cashflow's producer against Kafka's own and the Python peers, in one run, at equal settings.
//!
//! Every producer is idempotent with `acks=all` (cashflow's design; Kafka's and librdkafka's
//! defaults since Kafka 3.0) and writes ~230-byte records to a fresh topic of 6 partitions,
//! timed from its first record until every delivery report is in. Two settings:
//! - defaults: each client at its own batching defaults (linger.ms 5 everywhere; batch.size
//!   1 MB in librdkafka, 16 KiB in the Java client);
//! - tuned: all of them at linger.ms 20, batch.size 256 KiB.
//!
//! Peers: `kafka-producer-perf-test` (Kafka's `ProducerPerformance`, `--record-size 230`,
//! unkeyed); a Python confluent-kafka producer keyed by account that produces without waiting
//! and flushes once (`scripts/bench/py_producer.py batched`); and, at defaults only, the
//! original's loop (produce then flush, per message, keyed "transaction").
//! cashflow: the shipped release binary (`--paused --calculator-paused`, so its calculator does
//! not compete for the 2 cores; the logging consumer runs), a `burst` of N sent over its
//! WebSocket, tuned through the batching lesson's `set_batching` command.
//! Prints `ROW producer | …` lines for `scripts/bench.sh`.
//!
//!     cargo bench -p cashflow --bench producer          (N = 1 000 000 on the test broker)
//!     BENCH_PRODUCE=200000 BENCH_BROKERS=managed cargo bench -p cashflow --bench producer

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cashflow_shared::api::ProducerStats;
use futures_util::SinkExt;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use tokio_tungstenite::tungstenite::Message;

const PARTITIONS: i32 = 6;
const RECORD_SIZE: usize = 230;
const TUNED: (u32, u32) = (20, 256 * 1024);

async fn create_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let t = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    let r = admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .expect("create topic");
    for r in r {
        r.expect("topic created");
    }
}

/// The producer settings of a row, as `key=value` (none at defaults).
fn props(tuned: bool) -> Vec<String> {
    let mut p = vec![
        "acks=all".to_string(),
        "enable.idempotence=true".to_string(),
    ];
    if tuned {
        p.push(format!("linger.ms={}", TUNED.0));
        p.push(format!("batch.size={}", TUNED.1));
    }
    p
}

/// `kafka-producer-perf-test`: records/s.
fn perf_tool(root: &Path, brokers: &str, topic: &str, n: u64, tuned: bool) -> Option<f64> {
    let out = Command::new(root.join("scripts/kafka.sh"))
        .args(["tool", "org.apache.kafka.tools.ProducerPerformance"])
        .args(["--topic", topic, "--num-records", &n.to_string()])
        .args([
            "--record-size",
            &RECORD_SIZE.to_string(),
            "--throughput",
            "-1",
        ])
        .arg("--producer-props")
        .arg(format!("bootstrap.servers={brokers}"))
        .args(props(tuned))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The last line: "N records sent, X records/sec (Y MB/sec), …".
    let last = text.lines().rfind(|l| l.contains("records sent"))?;
    let sent: u64 = last.split_whitespace().next()?.parse().ok()?;
    if sent < n || !out.status.success() {
        eprintln!(
            "perf tool sent {sent} of {n}:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    last.split(", ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The Python peer in `mode` (loop or batched): records/s.
fn python(root: &Path, brokers: &str, topic: &str, n: u64, mode: &str, tuned: bool) -> Option<f64> {
    let mut args: Vec<String> = [brokers, topic, &n.to_string(), mode]
        .map(String::from)
        .to_vec();
    // acks and idempotence are the script's own (the same as everyone's).
    args.extend(
        props(tuned)
            .into_iter()
            .filter(|p| !p.starts_with("enable.") && !p.starts_with("acks")),
    );
    let v = support::python_peer(&root.join("scripts/bench/py_producer.py"), &args)?;
    (v["records"].as_u64() == Some(n)).then_some(v["rate"].as_f64()?)
}

async fn get<T: serde::de::DeserializeOwned>(url: &str) -> Option<T> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

/// The release binary: a burst of `n` through its producer, records/s until every delivery
/// report is in.
async fn cashflow(brokers: &str, topic: &str, n: u64, tuned: bool) -> f64 {
    let args = common::server_args(
        brokers,
        topic,
        &["--paused", "--calculator-paused", "--listen", "127.0.0.1:0"],
    );
    let mut server = common::Binary::start(&args);
    let url = server.url.clone();
    let producer =
        |url: String| async move { get::<ProducerStats>(&format!("{url}/api/producer")).await };
    common::wait_for(Duration::from_secs(120), "the topic", || async {
        get::<cashflow_shared::api::TopicView>(&format!("{url}/api/topic"))
            .await
            .filter(|v| v.partitions.len() == PARTITIONS as usize)
    })
    .await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/ws", url.replace("http://", "ws://")))
            .await
            .expect("ws");
    if tuned {
        let cmd = format!(
            r#"{{"cmd":"set_batching","linger_ms":{},"batch_size":{}}}"#,
            TUNED.0, TUNED.1
        );
        ws.send(Message::Text(cmd.into())).await.expect("batching");
        // The producer is made again on its next tick with work: one record first.
        ws.send(Message::Text(r#"{"cmd":"burst","count":1}"#.into()))
            .await
            .expect("burst");
        common::wait_for(Duration::from_secs(30), "the new batching", || async {
            producer(url.clone())
                .await
                .filter(|p| p.reconfigured >= 1 && p.delivered >= 1)
        })
        .await;
    }
    let before = u64::from(tuned);
    ws.send(Message::Text(
        format!(r#"{{"cmd":"burst","count":{n}}}"#).into(),
    ))
    .await
    .expect("burst");
    let start = Instant::now();
    let p = common::wait_for(
        Duration::from_secs(600),
        "every delivery report",
        || async {
            producer(url.clone())
                .await
                .filter(|p| p.delivered + p.failed >= n + before)
        },
    )
    .await;
    let took = start.elapsed();
    server.sigterm();
    let _ = server.child.wait();
    assert_eq!(p.failed, 0, "deliveries failed: {:?}", p.last_error);
    n as f64 / took.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let n: u64 = support::env_or("BENCH_PRODUCE", 1_000_000);
    let n_py: u64 = support::env_or("BENCH_PRODUCE_PY", n.min(300_000));
    let n_loop: u64 = support::env_or("BENCH_PRODUCE_LOOP", 10_000);
    let python_on = support::env_or("BENCH_PYTHON", 1) == 1;
    let (brokers, label, _host) = support::broker();
    let root = common::repo_root();
    let prefix = common::unique("bench-produce");
    let mut k = 0;
    let mut fresh = || {
        k += 1;
        format!("{prefix}-{k}")
    };
    let ratio = |ours: f64, peer: Option<f64>| {
        peer.map_or("– | –".into(), |p| format!("{p:.0} | {:.2}×", ours / p))
    };
    for tuned in [false, true] {
        let ours = cashflow(&brokers, &fresh(), n, tuned).await;
        let t = fresh();
        create_topic(&brokers, &t).await;
        let perf = perf_tool(&root, &brokers, &t, n, tuned);
        let py = if python_on {
            let t = fresh();
            create_topic(&brokers, &t).await;
            python(&root, &brokers, &t, n_py, "batched", tuned)
        } else {
            None
        };
        let settings = if tuned {
            format!("tuned (linger.ms {}, batch.size 256 KiB)", TUNED.0)
        } else {
            "defaults".to_string()
        };
        println!(
            "cashflow {ours:.0}/s, perf tool {perf:.0?}/s, Python batched {py:.0?}/s ({settings})"
        );
        println!(
            "ROW producer | {label} | {settings} | {n} | {ours:.0} | {} | {} |",
            ratio(ours, perf),
            ratio(ours, py)
        );
        if !tuned && python_on {
            let t = fresh();
            create_topic(&brokers, &t).await;
            let looped = python(&root, &brokers, &t, n_loop, "loop", false);
            println!(
                "ROW producer-loop | {label} | {n_loop} | {} |",
                ratio(ours, looped)
            );
        }
    }
    support::delete_topics(&brokers, &prefix).await;
}
