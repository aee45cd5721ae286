//! Memory per account with a million account ids (any client can write them to the topic).
//!
//! 1. The ledger itself: bytes allocated by a `Ledger` holding N accounts (a counting
//!    allocator in this process).
//! 2. The real server (release binary, `--paused`, Apache Kafka), in three phases, each ending
//!    with a viewer and a walk through every page of `/api/balances`:
//!    - warm-up: 20 000 records of 100 accounts;
//!    - control: N records of the same 100 accounts;
//!    - measured: N records, one for each of N new accounts.
//!
//!    What an account costs is the measured phase's peak resident memory less the control's,
//!    over N. Both phases fetch, parse and apply the same number of records of about the same
//!    size (the control's keys and ids are a few bytes longer, which if anything lowers the
//!    figure), so the memory that records rather than accounts take (librdkafka's fetch
//!    buffers, which the allocator keeps after they are freed) is in both. Measured against the
//!    warm-up alone (the earlier measure; also printed, now with the control in between) that
//!    memory was counted per account, and the figure at 1 M accounts was 75 to 119 B from run to
//!    run. The API walk is not the same in both: N accounts take N / 10 000 pages of up to
//!    0.6 MB, the control's 100 one small page; that is counted per account, as it should be.
//!
//!    Two readings of each phase: its peak (after applying or after the viewer), and its
//!    settled resident memory (once it stops moving, a few seconds later: mimalloc returns
//!    freed pages to the kernel a second after their last use). The peak holds what the last
//!    burst of work took (fetch buffers, a 0.6 MB API page, a snapshot being written) as well
//!    as what the server keeps; the settled reading holds what it keeps.
//!
//! Each size runs `BENCH_ACCOUNTS_RUNS` times (at least 1; default 3), each on a fresh server and
//! topic; each figure is the median run's, the runs in brackets lowest first.
//!
//! Run with:
//!
//!     cargo bench -p cashflow --bench accounts
//!     BENCH_ACCOUNTS=200000 BENCH_ACCOUNTS_RUNS=1 cargo bench -p cashflow --bench accounts

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

/// Resident memory once it stops moving: the allocator gives freed pages back a second after
/// their last use (mimalloc's purge delay), so this is what the server holds rather than what
/// its last burst of work took. Settled when 9 readings 250 ms apart (2 s) lie within 256 KiB;
/// at most 20 s (then the last reading, said so).
async fn settled_kib(pid: u32) -> u64 {
    const READINGS: usize = 9;
    let mut readings = std::collections::VecDeque::new();
    let until = Instant::now() + Duration::from_secs(20);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let kib = common::rss_kib(pid);
        assert!(kib > 0, "the server (pid {pid}) is gone");
        readings.push_back(kib);
        if readings.len() > READINGS {
            readings.pop_front();
        }
        let (lo, hi) = (readings.iter().min(), readings.iter().max());
        if let (Some(&lo), Some(&hi)) = (lo, hi)
            && readings.len() == READINGS
            && hi - lo <= 256
        {
            return readings.back().copied().unwrap_or(hi);
        }
        if Instant::now() > until {
            println!("  (resident memory still moving after 20 s: {readings:?} KiB)");
            return readings.back().copied().unwrap_or(0);
        }
    }
}

/// What one phase measured.
struct Phase {
    /// Peak resident memory, KiB: after applying or after the viewer.
    peak_kib: u64,
    /// Resident memory once settled after the viewer, KiB.
    settled_kib: u64,
    applied_in: Duration,
    /// The viewer's largest frame.
    largest: usize,
}

/// One phase: `records` written, then waited for until the ledger holds `accounts` accounts and
/// has applied `applied` records, then viewed, then left to settle.
async fn phase(
    (brokers, topic, url, pid): (&str, &str, &str, u32),
    records: impl Iterator<Item = (String, Vec<u8>)> + Send + 'static,
    accounts: u64,
    applied: u64,
) -> Phase {
    let t0 = Instant::now();
    let (b, t) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || common::write_records(&b, &t, records))
        .await
        .expect("written");
    common::wait_for(Duration::from_secs(600), "the phase applied", || async {
        get::<Balances>(&format!("{url}/api/balances?limit=1"))
            .await
            .filter(|b| b.totals.accounts == accounts && b.stats.applied == applied)
    })
    .await;
    let applied_in = t0.elapsed();
    let loaded = common::rss_kib(pid);
    let (largest, frames, pages, biggest_page) = view(url).await;
    let viewed = common::rss_kib(pid);
    let settled = settled_kib(pid).await;
    println!(
        "  {accounts} accounts, {applied} applied (in {:.1} s): RSS {loaded} KiB applied, {viewed} KiB after {frames} frames (largest {largest} B) and {pages} API pages (largest {biggest_page} B), {settled} KiB settled",
        applied_in.as_secs_f64()
    );
    Phase {
        peak_kib: loaded.max(viewed),
        settled_kib: settled,
        applied_in,
        largest,
    }
}

/// One run: its three phases, and what an account costs beyond the ledger's own entry.
struct Run {
    warm: Phase,
    control: Phase,
    measured: Phase,
    n: u32,
    per_account: f64,
}

impl Run {
    /// Growth from `from` to `to` (KiB), per account. Signed: a measured phase below the control
    /// shows as such rather than as nothing.
    fn per(&self, to: u64, from: u64) -> f64 {
        (to as f64 - from as f64) * 1024.0 / f64::from(self.n)
    }
    /// Peak growth over the control's peak, per account.
    fn grown(&self) -> f64 {
        self.per(self.measured.peak_kib, self.control.peak_kib)
    }
    /// The same, less the ledger's own.
    fn beyond(&self) -> f64 {
        self.grown() - self.per_account
    }
    /// Against the warm-up (the earlier measure).
    fn beyond_warm(&self) -> f64 {
        self.per(self.measured.peak_kib, self.warm.peak_kib) - self.per_account
    }
    /// Settled growth over the control's settled, less the ledger's own.
    fn beyond_settled(&self) -> f64 {
        self.per(self.measured.settled_kib, self.control.settled_kib) - self.per_account
    }
}

async fn run(n: u32, per_account: f64) -> Run {
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
    let at = (brokers.as_str(), topic.as_str(), url.as_str(), pid);
    // The same 100 accounts in the warm-up and the control (ids above the measured ones).
    let few = 100u32;
    let of_few = move |from: u32, count: u32| {
        (from..from + count).map(move |i| {
            let a = n + 1 + i % few;
            (a.to_string(), tx(a, i + 1).to_json().into_bytes())
        })
    };
    let warm_records = 20_000u32;
    let applied = u64::from(warm_records);
    let warm = phase(at, of_few(0, warm_records), u64::from(few), applied).await;
    let applied = applied + u64::from(n);
    let control = phase(at, of_few(warm_records, n), u64::from(few), applied).await;
    let records = (1..=n).map(|a| (a.to_string(), tx(a, 0).to_json().into_bytes()));
    let accounts = u64::from(n + few);
    let applied = applied + u64::from(n);
    let measured = phase(at, records, accounts, applied).await;
    server.sigterm();
    let _ = server.child.wait();

    let r = Run {
        warm,
        control,
        measured,
        n,
        per_account,
    };
    println!(
        "server: RSS {} KiB warmed up → {} KiB after {n} records of {few} accounts → {} KiB after {n} new accounts (applied in {:.1} s); {:.1} B per account beyond the ledger ({:.1} B against the warm-up); settled {} → {} KiB, {:.1} B per account beyond the ledger",
        r.warm.peak_kib,
        r.control.peak_kib,
        r.measured.peak_kib,
        r.measured.applied_in.as_secs_f64(),
        r.beyond(),
        r.beyond_warm(),
        r.control.settled_kib,
        r.measured.settled_kib,
        r.beyond_settled(),
    );
    r
}

#[tokio::main]
async fn main() {
    let n: u32 = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("BENCH_ACCOUNTS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(3);
    let per_account = ledger_bytes_per_account(n);
    println!("ledger alone: {per_account:.1} B per account ({n} accounts, 6 partitions)");
    let mut all = Vec::new();
    for _ in 0..runs {
        all.push(run(n, per_account).await);
    }
    // Each figure's runs, lowest first. The settled columns come from the settled figure's
    // median run, the others from the peak's.
    let runs_of = |all: &mut Vec<Run>, key: fn(&Run) -> f64| {
        all.sort_by(|a, b| key(a).total_cmp(&key(b)));
        all.iter()
            .map(|r| format!("{:.1}", key(r)))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let settled_runs = runs_of(&mut all, Run::beyond_settled);
    let (settled, control_settled_kib, measured_settled_kib) = {
        let s = &all[all.len() / 2];
        (
            s.beyond_settled(),
            s.control.settled_kib,
            s.measured.settled_kib,
        )
    };
    let runs_text = runs_of(&mut all, Run::beyond);
    let m = &all[all.len() / 2];
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "ROW accounts | {n} | {per_account:.1} | {:.1} | **{:.1}** ({runs_text}) | **{settled:.1}** ({settled_runs}) | {:.1} | {:.1} → {:.1} → {:.1} MiB | {:.1} → {:.1} MiB | {:.1} s | {} |",
        m.grown(),
        m.beyond(),
        m.beyond_warm(),
        mib(m.warm.peak_kib),
        mib(m.control.peak_kib),
        mib(m.measured.peak_kib),
        mib(control_settled_kib),
        mib(measured_settled_kib),
        m.measured.applied_in.as_secs_f64(),
        m.measured.largest,
    );
}
