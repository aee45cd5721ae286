//! A million account ids (any client can write them to the topic): every frame and response
//! stays bounded, the page gets the generator's accounts then the most active, totals cover
//! all of them, `/api/balances` pages, and a restart reads them from the snapshot.

mod common;

use std::time::Duration;

use cashflow_shared::api::{Balances, Health, MAX_BALANCES_PAGE};
use cashflow_shared::dashboard::Dashboard;
use cashflow_shared::protocol::{MAX_SHOWN_ACCOUNTS, ServerMsg};
use cashflow_shared::transaction::{Transaction, TxType};
use cashflow_shared::{AccountId, Money};
use common::{Broker, TestApp, apache_kafka, spawn_app, unique, wait_for};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const ACCOUNTS: u32 = 1_000_000;
/// Accounts with ids ≡ 7 (mod 1000) get three transactions: the most active.
fn transactions_of(a: AccountId) -> u32 {
    if a % 1000 == 7 { 3 } else { 1 }
}
/// Generous bounds, far below what a million accounts would take (~60 MB of JSON).
const MAX_FRAME: usize = 64 * 1024;
const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;
const WAIT: Duration = Duration::from_secs(600);

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    reqwest::get(format!("http://{}{path}", app.http_addr))
        .await
        .expect("GET")
}

async fn balances(app: &TestApp, path: &str) -> (Balances, usize) {
    let body = get(app, path).await.bytes().await.expect("body");
    (serde_json::from_slice(&body).expect("JSON"), body.len())
}

/// The first frames a new viewer gets, with their sizes.
/// A new viewer's frames (each with its size) until its page (the page's reducer) satisfies
/// `done`, or 15 s: the frames and the page. (The snapshot is what earlier deltas added up to;
/// the busy parts reach the page within a second after it.)
async fn watch_page(
    app: &TestApp,
    done: impl Fn(&Dashboard) -> bool,
) -> (Vec<(ServerMsg, usize)>, Dashboard) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.http_addr))
        .await
        .expect("connect");
    let mut frames = Vec::new();
    let mut page = Dashboard::default();
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    while page.snapshots == 0 || !done(&page) {
        let Ok(msg) = tokio::time::timeout_at(until, ws.next()).await else {
            break;
        };
        if let Message::Text(t) = msg.expect("open").expect("frame") {
            let m: ServerMsg = serde_json::from_str(&t).expect("a server message");
            page.apply(m.clone());
            frames.push((m, t.len()));
        }
    }
    (frames, page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_account_ids_keep_every_frame_bounded() {
    let brokers = apache_kafka();
    let topic = unique("million");
    let app = spawn_app(Broker::Apache, &topic).await;
    let records = (1..=ACCOUNTS).flat_map(|a| {
        (0..transactions_of(a)).map(move |i| {
            let tx = Transaction {
                account: a,
                transaction_id: format!("m{a}-{i}"),
                transaction_type: TxType::Credit,
                amount: Money::from_minor(i64::from(a % 100) + 1),
                new_balance: None,
                transaction_summary: Default::default(),
                timestamp_ms: None,
                producer_id: None,
                sequence: None,
            };
            (a.to_string(), tx.to_json().into_bytes())
        })
    });
    let written = tokio::task::spawn_blocking({
        let (b, t) = (brokers.clone(), topic.clone());
        move || common::write_records(&b, &t, records)
    });
    let total: u64 = (1..=ACCOUNTS).map(|a| u64::from(transactions_of(a))).sum();
    let opening = Money::from_major(100).minor();
    let expected_sum: i64 = (1..=ACCOUNTS)
        .map(|a| opening + i64::from(transactions_of(a)) * (i64::from(a % 100) + 1))
        .sum();
    written.await.expect("written");
    let (b, _) = wait_for(WAIT, "every record applied", || async {
        let b = balances(&app, "/api/balances?limit=1").await;
        (b.0.stats.applied == total).then_some(b)
    })
    .await;
    assert_eq!(b.totals.accounts, u64::from(ACCOUNTS));
    assert_eq!(b.totals.balance, Some(Money::from_minor(expected_sum)));

    // The API pages.
    let (first, size) = balances(&app, "/api/balances").await;
    assert_eq!(first.accounts.len(), 1000, "a default page of 1 000");
    assert_eq!(first.next_after, Some(1000));
    assert!(size < MAX_PAGE_BYTES, "default page is {size} bytes");
    let (big, size) = balances(&app, &format!("/api/balances?limit={MAX_BALANCES_PAGE}")).await;
    assert_eq!(big.accounts.len(), MAX_BALANCES_PAGE);
    assert!(size < MAX_PAGE_BYTES, "largest page is {size} bytes");
    let (next, _) = balances(&app, "/api/balances?after=1000&limit=5").await;
    let ids: Vec<AccountId> = next.accounts.iter().map(|a| a.account).collect();
    assert_eq!(ids, vec![1001, 1002, 1003, 1004, 1005]);
    let (last, _) = balances(&app, &format!("/api/balances?after={}", ACCOUNTS - 3)).await;
    assert_eq!(last.accounts.len(), 3);
    assert_eq!(last.next_after, None, "the last page says so");
    let (beyond, _) = balances(&app, &format!("/api/balances?after={}", u32::MAX)).await;
    assert!(beyond.accounts.is_empty() && beyond.next_after.is_none());
    let r = get(
        &app,
        &format!("/api/balances?limit={}", MAX_BALANCES_PAGE + 1),
    )
    .await;
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .await
            .expect("body")
            .contains("limit must be between")
    );
    let r = get(&app, "/api/balances?after=minus-one").await;
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);

    // A viewer gets the generator's accounts, then the most active; every frame is small.
    let pinned = |page: &Dashboard| page.generator.as_ref().map_or(0, |g| g.settings.accounts);
    let shown_right = |page: &Dashboard| {
        let ids: Vec<AccountId> = page.accounts.keys().copied().collect();
        let pinned = pinned(page) as usize;
        ids.len() == MAX_SHOWN_ACCOUNTS
            && ids[..pinned] == (1..=pinned as AccountId).collect::<Vec<_>>()[..]
            && ids[pinned..].iter().all(|a| a % 1000 == 7)
    };
    let (frames, page) = watch_page(&app, |page| {
        shown_right(page) && page.counters.totals.accounts == u64::from(ACCOUNTS)
    })
    .await;
    for (m, size) in &frames {
        assert!(*size <= MAX_FRAME, "a frame of {size} bytes: {m:?}");
    }
    assert!(
        frames
            .iter()
            .any(|(m, _)| matches!(m, ServerMsg::Snapshot(_))),
        "no snapshot in {frames:?}"
    );
    assert!(
        shown_right(&page),
        "the generator's accounts, then the most active: {:?}",
        page.accounts.keys().collect::<Vec<_>>()
    );
    assert_eq!(page.counters.totals.accounts, u64::from(ACCOUNTS));
    assert_eq!(
        page.counters.totals.balance,
        Some(Money::from_minor(expected_sum))
    );

    // A restart reads the accounts from the snapshot the shutdown wrote, not the topic.
    app.shutdown().await;
    let app = spawn_app(Broker::Apache, &topic).await;
    let restore = wait_for(WAIT, "the restore", || async {
        let h: Health = get(&app, "/health").await.json().await.ok()?;
        (h.status == "ok").then_some(h.store.restore?)
    })
    .await;
    let chunks = u64::from(ACCOUNTS).div_ceil(1000);
    assert_eq!(restore.from_snapshot, restore.partitions);
    assert!(
        restore.changelog_records <= 3 * (chunks + 6 * 2),
        "read {} changelog records for {chunks} chunks",
        restore.changelog_records
    );
    assert!(
        restore.source_records <= 6 * 10_000,
        "read {} source records: only the id window",
        restore.source_records
    );
    let (after, _) = balances(&app, "/api/balances?limit=1").await;
    assert_eq!(after.totals, b.totals);
    assert_eq!(after.stats.applied, total);
    app.shutdown().await;
    println!("restore of {ACCOUNTS} accounts: {restore:?}");
}
