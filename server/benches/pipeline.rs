//! End-to-end throughput, embedded broker and Apache Kafka side by side in one run:
//! a burst of N transactions through the idempotent producer (until every delivery report is
//! in) and through the balance calculator (until every one is applied).
//!
//!     cargo bench -p cashflow --bench pipeline            (N = 100000)
//!     BENCH_N=20000 cargo bench -p cashflow --bench pipeline

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cashflow::producer::Command;
use common::{Broker, spawn_app, unique, wait_for};

struct Run {
    name: &'static str,
    produce: Duration,
    end_to_end: Duration,
}

async fn run(broker: Broker, name: &'static str, n: u64) -> Run {
    let app = spawn_app(broker, &unique("bench")).await;
    let start = Instant::now();
    app.producer.send(Command::Burst(n)).await.expect("burst");
    wait_for(Duration::from_secs(600), "deliveries", || async {
        let p = app.shared.producer();
        assert_eq!(p.failed, 0);
        (p.delivered >= n).then_some(())
    })
    .await;
    let produce = start.elapsed();
    wait_for(Duration::from_secs(600), "applied", || async {
        (app.shared.ledger().stats().applied >= n).then_some(())
    })
    .await;
    let end_to_end = start.elapsed();
    app.shutdown().await;
    Run {
        name,
        produce,
        end_to_end,
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
        run(Broker::Embedded, "embedded (nisshi)", n).await,
        run(Broker::Apache, "Apache Kafka 4.1", n).await,
    ];
    println!("\n{n} transactions, burst, 6 partitions, idempotent producer, acks=all\n");
    println!("| broker | produce (delivered) | tx/s | end to end (applied) | tx/s |");
    println!("|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {:.2} s | {:.0} | {:.2} s | {:.0} |",
            r.name,
            r.produce.as_secs_f64(),
            n as f64 / r.produce.as_secs_f64(),
            r.end_to_end.as_secs_f64(),
            n as f64 / r.end_to_end.as_secs_f64()
        );
    }
    println!(
        "\nembedded / Apache time ratio: produce {:.2}, end to end {:.2}",
        runs[0].produce.as_secs_f64() / runs[1].produce.as_secs_f64(),
        runs[0].end_to_end.as_secs_f64() / runs[1].end_to_end.as_secs_f64()
    );
}
