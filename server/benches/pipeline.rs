//! End-to-end throughput, the managed broker and the shared Apache Kafka side by side in one run:
//! a burst of N transactions through the idempotent producer (until every delivery report is
//! in) and through the balance calculator (until every one is applied); then N bad records from
//! a foreign producer, timed until every one is dead-lettered; then a restart in the same group,
//! timed until the balances of all N are restored (snapshot plus tail).
//!
//!     cargo bench -p cashflow --bench pipeline            (N = 100000)
//!     BENCH_N=20000 cargo bench -p cashflow --bench pipeline

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cashflow_shared::command::Command;
use common::{Broker, unique, wait_for};

struct Run {
    name: &'static str,
    produce: Duration,
    end_to_end: Duration,
    dead_letters: Duration,
    restore: Duration,
}

/// Writes `n` records that are not transactions, as fast as the client allows.
fn write_garbage(brokers: &str, topic: &str, n: u64) {
    common::write_records(
        brokers,
        topic,
        (0..n).map(|i| {
            (
                (i % 100).to_string(),
                format!("not a transaction {i}").into_bytes(),
            )
        }),
    );
}

async fn run(broker: Broker, name: &'static str, n: u64) -> Run {
    // The managed broker keeps its log in a folder of its own, so the restart below finds it.
    let dir = matches!(broker, Broker::Managed).then(|| std::env::temp_dir().join(unique("bench")));
    let with_dir = |s: &mut cashflow::Settings| s.data_dir = dir.clone();
    let app = common::spawn_app_with(broker, &unique("bench"), with_dir).await;
    let start = Instant::now();
    app.producer
        .send(Command::Burst { count: n })
        .await
        .expect("burst");
    wait_for(Duration::from_secs(600), "deliveries", || async {
        let p = app.producer_counts();
        assert_eq!(p.failed, 0);
        (p.delivered >= n).then_some(())
    })
    .await;
    let produce = start.elapsed();
    wait_for(Duration::from_secs(600), "applied", || async {
        (app.stats().applied >= n).then_some(())
    })
    .await;
    let end_to_end = start.elapsed();
    let topic = app.topic().to_owned();
    let start = Instant::now();
    write_garbage(&app.brokers, &topic, n);
    wait_for(Duration::from_secs(600), "dead-lettered", || async {
        (app.stats().dead_lettered >= n).then_some(())
    })
    .await;
    let dead_letters = start.elapsed();
    app.shutdown().await;
    // The same topic and group again: everything is rebuilt from the topic.
    let start = Instant::now();
    let again = common::spawn_app_with(broker, &topic, with_dir).await;
    wait_for(Duration::from_secs(600), "restored", || async {
        (!again.store().restoring && again.stats().applied >= n).then_some(())
    })
    .await;
    let restore = start.elapsed();
    again.shutdown().await;
    if let Some(d) = &dir {
        let _ = std::fs::remove_dir_all(d);
    }
    Run {
        name,
        produce,
        end_to_end,
        dead_letters,
        restore,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let n: u64 = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runs = [
        run(Broker::Managed, "managed Apache Kafka", n).await,
        run(Broker::Apache, "Apache Kafka 4.1", n).await,
    ];
    println!("\n{n} transactions, burst, 6 partitions, idempotent producer, acks=all\n");
    println!(
        "| broker | produce (delivered) | tx/s | end to end (applied) | tx/s | {n} bad records written + dead-lettered | records/s | restart → restored |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {:.2} s | {:.0} | {:.2} s | {:.0} | {:.2} s | {:.0} | {:.2} s |",
            r.name,
            r.produce.as_secs_f64(),
            n as f64 / r.produce.as_secs_f64(),
            r.end_to_end.as_secs_f64(),
            n as f64 / r.end_to_end.as_secs_f64(),
            r.dead_letters.as_secs_f64(),
            n as f64 / r.dead_letters.as_secs_f64(),
            r.restore.as_secs_f64(),
        );
    }
    println!(
        "\nmanaged / shared Apache Kafka time ratio: produce {:.2}, end to end {:.2}",
        runs[0].produce.as_secs_f64() / runs[1].produce.as_secs_f64(),
        runs[0].end_to_end.as_secs_f64() / runs[1].end_to_end.as_secs_f64()
    );
}
