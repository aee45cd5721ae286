//! Fan-out: what 10, 100 and 1 000 WebSocket viewers cost the server at a fixed 1 000 tx/s,
//! and its memory with 10 viewers that stop reading.
//!
//! The shipped release binary runs the default demo (its managed broker, 100 accounts) at
//! 1 000 tx/s. For each number of viewers the bench opens that many WebSockets, lets them
//! settle, then takes the server's CPU time (`/proc/PID/stat`, user + system) over the window
//! and counts every frame and byte each viewer receives. CPU is given as % of one core above
//! the figure with no viewer. Stalled viewers: 10 sockets that are opened and never read;
//! the server's resident memory is taken before and after.
//! Prints `ROW fanout | …` and `ROW stalled | …` lines for `scripts/bench.sh`.
//!
//!     cargo bench -p cashflow --bench fanout
//!     BENCH_FANOUT_SECONDS=5 BENCH_FANOUT_VIEWERS=0,10 cargo bench -p cashflow --bench fanout

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const RATE: u32 = 1_000;

#[derive(Default)]
struct Totals {
    frames: AtomicU64,
    bytes: AtomicU64,
}

async fn viewer(url: String, totals: Arc<Totals>, stop: tokio_util::sync::CancellationToken) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        eprintln!("a viewer could not connect");
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    totals.frames.fetch_add(1, Ordering::Relaxed);
                    totals.bytes.fetch_add(t.len() as u64, Ordering::Relaxed);
                }
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = support::env_or("BENCH_FANOUT_SECONDS", 10);
    let counts: Vec<usize> = support::env_list("BENCH_FANOUT_VIEWERS", "0,10,100,1000");
    let server = common::Binary::start(&[
        "--ephemeral".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--kafka-listen".into(),
        "127.0.0.1:0".into(),
        "--rate".into(),
        RATE.to_string(),
    ]);
    let pid = server.child.id();
    let ws_url = format!("{}/ws", server.url.replace("http://", "ws://"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut idle_cpu = None;
    for n in counts {
        let totals = Arc::new(Totals::default());
        let stop = tokio_util::sync::CancellationToken::new();
        let tasks: Vec<_> = (0..n)
            .map(|_| tokio::spawn(viewer(ws_url.clone(), totals.clone(), stop.clone())))
            .collect();
        // Connected, snapshots sent, the rate steady again.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (f0, b0) = (
            totals.frames.load(Ordering::Relaxed),
            totals.bytes.load(Ordering::Relaxed),
        );
        let (c0, t0) = (common::cpu_seconds(pid), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (c1, secs) = (common::cpu_seconds(pid), t0.elapsed().as_secs_f64());
        let frames = (totals.frames.load(Ordering::Relaxed) - f0) as f64 / secs;
        let bytes = (totals.bytes.load(Ordering::Relaxed) - b0) as f64 / secs;
        let cpu = (c1 - c0) / secs * 100.0;
        let base = *idle_cpu.get_or_insert(cpu);
        let per = |v: f64| if n == 0 { 0.0 } else { v / n as f64 };
        println!(
            "{n} viewers: server {cpu:.1} % of a core, {:.1} frames/s and {:.0} B/s per viewer",
            per(frames),
            per(bytes)
        );
        println!(
            "ROW fanout | {n} | {cpu:.1} % | {:+.1} % | {:.1} | {:.0} |",
            cpu - base,
            per(frames),
            per(bytes)
        );
        stop.cancel();
        for t in tasks {
            let _ = t.await;
        }
    }
    // Ten viewers that never read: the server must not buffer for them without bound.
    let before = common::rss_kib(pid);
    let mut stalled = Vec::new();
    for _ in 0..10 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(ws_url.clone()).await {
            stalled.push(ws);
        }
    }
    let mut peak = before;
    let until = Instant::now() + Duration::from_secs(seconds * 2);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(common::rss_kib(pid));
    }
    println!(
        "10 stalled viewers over {} s: resident memory {before} KiB before, {peak} KiB at most",
        seconds * 2
    );
    println!(
        "ROW stalled | {} | {:.1} | {:.1} | {:+.1} |",
        stalled.len(),
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        (peak as f64 - before as f64) / 1024.0
    );
    drop(stalled);
    server.sigterm();
    let mut server = server;
    let _ = server.child.wait();
}
