//! Restart time against topic size, the real binary on both brokers: the producer at "max" with
//! 100 accounts fills a topic to N records (the balance calculator snapshotting as it goes),
//! generation is paused over the WebSocket and the calculator catches up, then the server is
//! killed with SIGKILL (no final snapshot: the tail since the last periodic one is read again)
//! and started again, and later stopped with SIGTERM and started again; each restart is timed
//! until `/health` says "ok" (every balance restored) and the producer delivers again. Two
//! sizes 10× apart per broker show whether restart time follows the topic's history (it should
//! not).
//!
//!     cargo bench -p cashflow --bench restart
//!     BENCH_SIZES=100000,1000000 BENCH_MANAGED_SIZES=20000,200000 cargo bench -p cashflow --bench restart

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cashflow_shared::api::{Balances, Health, ProducerStats};

type Server = common::Binary;

fn start(args: &[String]) -> Server {
    common::Binary::start(args)
}

async fn get<T: serde::de::DeserializeOwned>(url: &str) -> Option<T> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

struct Restart {
    ok: Duration,
    producing: Duration,
    source_records: u64,
    changelog_records: u64,
}

/// Starts the server and times it to `/health` ok and to the producer's next delivery.
async fn restart(args: &[String]) -> (Server, Restart) {
    let t0 = Instant::now();
    let s = start(args);
    let h: Health = common::wait_for(Duration::from_secs(600), "health ok", || async {
        get::<Health>(&format!("{}/health", s.url))
            .await
            .filter(|h| h.status == "ok")
    })
    .await;
    let ok = t0.elapsed();
    common::wait_for(Duration::from_secs(60), "a delivery", || async {
        get::<ProducerStats>(&format!("{}/api/producer", s.url))
            .await
            .filter(|p| p.delivered > 0)
    })
    .await;
    let r = h.store.restore.unwrap_or_default();
    let restart = Restart {
        ok,
        producing: t0.elapsed(),
        source_records: r.source_records,
        changelog_records: r.changelog_records,
    };
    (s, restart)
}

/// Pauses generation through the page's WebSocket, as the presenter would.
async fn pause(url: &str) {
    use futures_util::SinkExt;
    let ws_url = format!("{}/ws", url.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        r#"{"cmd":"pause","id":1}"#,
    ))
    .await
    .expect("pause");
    common::wait_for(Duration::from_secs(30), "generation paused", || async {
        let p: ProducerStats = get(&format!("{url}/api/producer")).await?;
        (!p.running).then_some(())
    })
    .await;
}

fn sigterm(mut s: Server) {
    s.sigterm();
    s.child.wait().expect("wait");
}

fn sigkill(mut s: Server) {
    s.child.kill().expect("kill");
    s.child.wait().expect("wait");
}

async fn run(name: &str, base: Vec<String>, n: i64) -> (i64, Restart, Restart) {
    let args = |extra: &[&str]| {
        let mut a = base.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let s = start(&args(&["--rate", "max", "--accounts", "100"]));
    let filled = Instant::now();
    common::wait_for(Duration::from_secs(3_600), "the topic filled", || async {
        let p: ProducerStats = get(&format!("{}/api/producer", s.url)).await?;
        (p.delivered as i64 >= n).then_some(())
    })
    .await;
    pause(&s.url).await;
    // Everything delivered, then everything handled by the calculator.
    let total = common::wait_for(
        Duration::from_secs(3_600),
        "the calculator to catch up",
        || async {
            let p: ProducerStats = get(&format!("{}/api/producer", s.url)).await?;
            let b: Balances = get(&format!("{}/api/balances", s.url)).await?;
            let handled: i64 = b.next_offsets.values().sum();
            (p.sent == p.delivered && handled as u64 >= p.delivered).then_some(handled)
        },
    )
    .await;
    eprintln!("{name}: {total} records in {:?}", filled.elapsed());
    sigkill(s);
    let (s, killed) = restart(&args(&["--rate", "2"])).await;
    sigterm(s);
    let (s, stopped) = restart(&args(&["--rate", "2"])).await;
    sigterm(s);
    (total, killed, stopped)
}

fn sizes(var: &str, default: &[i64]) -> Vec<i64> {
    std::env::var(var)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut rows = Vec::new();
    for n in sizes("BENCH_MANAGED_SIZES", &[100_000, 1_000_000]) {
        let dir = std::env::temp_dir().join(common::unique("restart-bench"));
        let base = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--kafka-listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            dir.display().to_string(),
        ];
        rows.push(("managed Apache Kafka", run("managed", base, n).await));
        let _ = std::fs::remove_dir_all(&dir);
    }
    let brokers = common::apache_kafka();
    for n in sizes("BENCH_SIZES", &[3_000_000, 30_000_000]) {
        let topic = common::unique("restart-bench");
        let base = vec![
            "--brokers".into(),
            brokers.clone(),
            "--topic".into(),
            topic.clone(),
            "--group-prefix".into(),
            topic,
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        rows.push(("Apache Kafka 4.1", run("apache", base, n).await));
    }
    println!(
        "\nrestart with 100 accounts, 6 partitions, snapshots every 50 000 records per partition\n"
    );
    println!(
        "| broker | records in the topic | after SIGKILL: /health ok | producing | records re-read | changelog records | after SIGTERM: /health ok | producing | records re-read |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, (total, k, t)) in &rows {
        println!(
            "| {name} | {total} | {:.2} s | {:.2} s | {} | {} | {:.2} s | {:.2} s | {} |",
            k.ok.as_secs_f64(),
            k.producing.as_secs_f64(),
            k.source_records,
            k.changelog_records,
            t.ok.as_secs_f64(),
            t.producing.as_secs_f64(),
            t.source_records
        );
    }
}
