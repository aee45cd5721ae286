//! What one viewer receives from the hub: frames and bytes per second at 1 tx/s and at the
//! maximum rate, side by side in one run (the shared Apache Kafka, 10 s each).
//!
//!     cargo bench -p cashflow --bench hub
//!     HUB_ACCOUNTS=100 HUB_SECONDS=10 cargo bench -p cashflow --bench hub

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cashflow::config::Rate;
use cashflow_shared::command::Command;
use common::{Broker, spawn_app_with, unique};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let accounts = env("HUB_ACCOUNTS", 100) as u32;
    let seconds = env("HUB_SECONDS", 10);
    let app = spawn_app_with(Broker::Apache, &unique("hub"), |s| {
        s.generator.accounts = accounts
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.http_addr))
        .await
        .expect("connect");
    println!("\none viewer, {accounts} accounts, {seconds} s per rate\n");
    println!("| rate | applied tx/s | frames/s | bytes/s | largest frame |");
    println!("|---|---|---|---|---|");
    for (label, rate) in [("1 tx/s", Rate::PerSecond(1.0)), ("max", Rate::Max)] {
        app.producer
            .send(Command::SetRate {
                rate: rate.as_option(),
            })
            .await
            .expect("rate");
        app.producer.send(Command::Start).await.expect("start");
        // Let the rate settle, and drain what came before.
        let settle = Instant::now() + Duration::from_secs(2);
        while let Ok(Some(_)) =
            tokio::time::timeout(settle.saturating_duration_since(Instant::now()), ws.next()).await
        {
        }
        let applied0 = app.stats().applied;
        let (mut frames, mut bytes, mut largest) = (0u64, 0u64, 0usize);
        let start = Instant::now();
        let end = start + Duration::from_secs(seconds);
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(end.saturating_duration_since(Instant::now()), ws.next()).await
        {
            if let Message::Text(t) = m {
                frames += 1;
                bytes += t.len() as u64;
                largest = largest.max(t.len());
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let applied = (app.stats().applied - applied0) as f64 / secs;
        println!(
            "| {label} | {applied:.0} | {:.1} | {:.0} | {largest} |",
            frames as f64 / secs,
            bytes as f64 / secs
        );
        app.producer.send(Command::Pause).await.expect("pause");
    }
    app.shutdown().await;
}
