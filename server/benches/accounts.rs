//! Memory per account with a million account ids (any client can write them to the topic).
//!
//! 1. The ledger itself: bytes allocated by a `Ledger` holding N accounts (a counting
//!    allocator in this process).
//! 2. The real server (release binary, `--paused`, Apache Kafka), warmed up (20 000 records of
//!    100 other accounts applied, a viewer, the API's pages): its resident memory before and
//!    after N accounts arrive, then after a viewer and a walk through every page of
//!    `/api/balances`; what it holds beyond the ledger, per account, is the difference.
//!
//! Run with:
//!
//!     cargo bench -p cashflow --bench accounts
//!     BENCH_ACCOUNTS=200000 cargo bench -p cashflow --bench accounts

#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cashflow_shared::api::{Balances, Health};
use cashflow_shared::ledger::Position;
use cashflow_shared::transaction::{Transaction, TxType};
use cashflow_shared::{Ledger, Money};
use futures_util::StreamExt;

/// Bytes allocated now, by this process.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same layout, as the caller promised.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn tx(account: u32, i: u32) -> Transaction {
    Transaction {
        account,
        transaction_id: format!("m{account}-{i}"),
        transaction_type: TxType::Credit,
        amount: Money::from_minor(i64::from(account % 100) + 1),
        new_balance: None,
        transaction_summary: Default::default(),
        timestamp_ms: None,
        producer_id: None,
        sequence: None,
    }
}

/// Bytes per account of a ledger holding `n` accounts over 6 partitions (one record each;
/// the id window, bounded by offsets, is left out by emptying it).
fn ledger_bytes_per_account(n: u32) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let mut l = Ledger::with_id_window(Money::from_major(100), 1);
    for a in 1..=n {
        let p = (a % 6) as i32;
        let offset = l.next_offset(p);
        l.apply(
            &tx(a, 0),
            Position {
                partition: p,
                offset,
            },
        );
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    std::hint::black_box(&l);
    bytes as f64 / f64::from(n)
}

async fn get<T: serde::de::DeserializeOwned>(url: &str) -> Option<T> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

/// A viewer for 3 s, and every page of the API: the largest frame, frames, pages, the largest
/// page.
async fn view(url: &str) -> (usize, usize, usize, usize) {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/ws", url.replace("http://", "ws://")))
            .await
            .expect("ws");
    let (mut frames, mut largest) = (0, 0);
    let until = Instant::now() + Duration::from_secs(3);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until.into(), ws.next()).await {
        frames += 1;
        largest = largest.max(m.len());
    }
    let (mut after, mut pages, mut biggest_page) = (0u32, 0, 0);
    loop {
        let body = reqwest::get(format!("{url}/api/balances?after={after}&limit=10000"))
            .await
            .expect("page")
            .bytes()
            .await
            .expect("body");
        biggest_page = biggest_page.max(body.len());
        pages += 1;
        let b: Balances = serde_json::from_slice(&body).expect("JSON");
        match b.next_after {
            Some(a) => after = a,
            None => break,
        }
    }
    (largest, frames, pages, biggest_page)
}

#[tokio::main]
async fn main() {
    let n: u32 = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let per_account = ledger_bytes_per_account(n);
    println!("ledger alone: {per_account:.1} B per account ({n} accounts, 6 partitions)");

    let brokers = common::apache_kafka();
    let topic = common::unique("bench-accounts");
    let args = common::server_args(&brokers, &topic, &["--paused", "--listen", "127.0.0.1:0"]);
    let mut server = common::Binary::start(&args);
    let pid = server.child.id();
    let url = server.url.clone();
    common::wait_for(Duration::from_secs(120), "health ok", || async {
        get::<Health>(&format!("{url}/health"))
            .await
            .filter(|h| h.status == "ok")
    })
    .await;
    // Warm up first, so the figure is what each account adds, not what any running server
    // holds once it works (Kafka clients' buffers, the allocator's first arenas, a viewer's
    // frames): 20 000 records of 100 other accounts, applied and viewed.
    let (warm_accounts, warm_records) = (100u32, 20_000u32);
    let warm = (0..warm_records).map(move |i| {
        let a = n + 1 + i % warm_accounts;
        (a.to_string(), tx(a, i + 1).to_json().into_bytes())
    });
    let (b, t) = (brokers.clone(), topic.clone());
    tokio::task::spawn_blocking(move || common::write_records(&b, &t, warm))
        .await
        .expect("written");
    common::wait_for(Duration::from_secs(120), "the warm-up applied", || async {
        get::<Balances>(&format!("{url}/api/balances?limit=1"))
            .await
            .filter(|b| b.stats.applied == u64::from(warm_records))
    })
    .await;
    view(&url).await;
    let base = common::rss_kib(pid);
    let t0 = Instant::now();
    let records = (1..=n).map(|a| (a.to_string(), tx(a, 0).to_json().into_bytes()));
    let (b, t) = (brokers.clone(), topic.clone());
    tokio::task::spawn_blocking(move || common::write_records(&b, &t, records))
        .await
        .expect("written");
    common::wait_for(
        Duration::from_secs(600),
        "every account applied",
        || async {
            get::<Balances>(&format!("{url}/api/balances?limit=1"))
                .await
                .filter(|b| {
                    b.totals.accounts == u64::from(n + warm_accounts)
                        && b.stats.applied == u64::from(n + warm_records)
                })
        },
    )
    .await;
    let applied_in = t0.elapsed();
    let loaded = common::rss_kib(pid);

    let (largest, frames, pages, biggest_page) = view(&url).await;
    let viewed = common::rss_kib(pid);
    let grown = (viewed.max(loaded) - base) as f64 * 1024.0 / f64::from(n);
    println!(
        "server: RSS {base} KiB idle → {loaded} KiB with {n} accounts (applied in {:.1} s) → {viewed} KiB after a viewer and {pages} API pages",
        applied_in.as_secs_f64()
    );
    println!(
        "server: {grown:.1} B per account in all, {:.1} B beyond the ledger; largest WebSocket frame {largest} B of {frames}, largest API page {biggest_page} B",
        grown - per_account
    );
    println!(
        "ROW accounts | {n} | {per_account:.1} | {grown:.1} | {:.1} | {:.1} → {:.1} MiB | {:.1} s | {largest} |",
        grown - per_account,
        base as f64 / 1024.0,
        viewed.max(loaded) as f64 / 1024.0,
        applied_in.as_secs_f64()
    );
    server.sigterm();
    let _ = server.child.wait();
}
