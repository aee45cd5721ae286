//! The WebSocket bridge on a free port, with a tokio-tungstenite client.

mod common;

use std::time::{Duration, Instant};

use cashflow_shared::Money;
use cashflow_shared::dashboard::Dashboard;
use cashflow_shared::protocol::{PROTOCOL_VERSION, ServerMsg};
use common::ws::{connect, next, reply, send};
use common::{Broker, spawn_app, unique};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_deltas_at_most_20_a_second() {
    let app = spawn_app(Broker::Apache, &unique("ws")).await;
    let mut ws = connect(&app).await;
    assert!(matches!(
        next(&mut ws, Duration::from_secs(5)).await,
        ServerMsg::Hello {
            protocol: PROTOCOL_VERSION,
            ..
        }
    ));
    let ServerMsg::Snapshot(snap) = next(&mut ws, Duration::from_secs(5)).await else {
        panic!("snapshot expected")
    };
    assert!(snap.accounts.is_empty());
    assert!(!snap.generator.running, "tests start paused");

    send(&mut ws, r#"{"cmd":"burst","count":500,"id":1}"#).await;
    assert!(matches!(
        reply(&mut ws).await,
        ServerMsg::Ack { id: Some(1), .. }
    ));
    // The deltas, fed to the page's reducer, bring every applied transaction; so do the
    // partitions: all 6 owned by this server, their records adding up to 500.
    let mut page = Dashboard::default();
    page.apply(ServerMsg::Snapshot(snap.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = |p: &[cashflow_shared::protocol::PartitionView]| -> i64 {
        p.iter().map(|p| p.records).sum()
    };
    let counts = |page: &Dashboard| page.accounts.values().map(|a| a.count).sum::<u64>();
    while counts(&page) < 500 || records(&page.partitions) < 500 {
        assert!(
            Instant::now() < deadline,
            "deltas did not add up to 500: {:?} {:?}",
            page.accounts,
            page.partitions
        );
        let msg = next(&mut ws, Duration::from_secs(10)).await;
        assert!(matches!(msg, ServerMsg::Delta(_)), "only deltas: {msg:?}");
        page.apply(msg);
    }
    let partitions = page.partitions.clone();
    assert_eq!(records(&partitions), 500);
    assert_eq!(partitions.len(), 6);
    assert!(partitions.iter().all(|p| p.owned), "{partitions:?}");
    assert!(
        partitions.iter().filter(|p| p.records > 0).count() > 1,
        "spread over partitions"
    );

    // At maximum rate the hub still sends at most ~20 frames a second.
    send(&mut ws, r#"{"cmd":"set_rate","rate":null}"#).await;
    assert!(matches!(reply(&mut ws).await, ServerMsg::Ack { .. }));
    send(&mut ws, r#"{"cmd":"start"}"#).await;
    assert!(matches!(reply(&mut ws).await, ServerMsg::Ack { .. }));
    let start = Instant::now();
    let mut deltas = 0;
    while start.elapsed() < Duration::from_secs(2) {
        if let ServerMsg::Delta(_) = next(&mut ws, Duration::from_secs(5)).await {
            deltas += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Frames queued before the window (a busy test machine reads late) count too: allow the
    // hub's whole buffer on top. A hub that sent a frame per transaction would send thousands.
    let bound = 20.0 * secs + 2.0 + cashflow::http::hub::BROADCAST_CAPACITY as f64;
    assert!(
        deltas as f64 <= bound,
        "{deltas} deltas in {secs:.2} s (bound {bound:.0})"
    );
    assert!(
        deltas >= 5,
        "only {deltas} deltas in {secs:.2} s at full rate"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commands_get_errors_and_the_socket_stays_usable() {
    let app = spawn_app(Broker::Apache, &unique("ws-bad")).await;
    let mut ws = connect(&app).await;
    next(&mut ws, Duration::from_secs(5)).await;
    next(&mut ws, Duration::from_secs(5)).await;
    let cases = [
        ("{not json", "not a command"),
        (r#"{"cmd":"explode"}"#, "unknown variant"),
        (
            r#"{"cmd":"set_rate","rate":0,"id":3}"#,
            "rate must be between",
        ),
        (r#"{"cmd":"set_rate","rate":"fast"}"#, "not a command"),
        (
            r#"{"cmd":"set_accounts","accounts":0}"#,
            "accounts must be between",
        ),
        (
            r#"{"cmd":"set_accounts","accounts":100000}"#,
            "accounts must be between",
        ),
        (
            r#"{"cmd":"set_mix","credit_percent":101}"#,
            "credit percentage",
        ),
        (
            r#"{"cmd":"set_amounts","min":5,"max":1}"#,
            "amounts must satisfy",
        ),
        (
            r#"{"cmd":"manual","account":1,"transaction_type":"Debit","amount":0}"#,
            "amount must be between",
        ),
        (
            r#"{"cmd":"manual","account":1,"transaction_type":"Debit","amount":0.001}"#,
            "decimal places",
        ),
        (
            r#"{"cmd":"manual","account":0,"transaction_type":"Debit","amount":1}"#,
            "account must be between",
        ),
        (r#"{"cmd":"burst","count":0}"#, "burst must be between"),
    ];
    for (frame, want) in cases {
        send(&mut ws, frame).await;
        match reply(&mut ws).await {
            ServerMsg::Error { message, .. } => assert!(
                message.contains(want),
                "{frame}: {message:?} should contain {want:?}"
            ),
            other => panic!("{frame}: expected an error, got {other:?}"),
        }
    }
    send(
        &mut ws,
        &format!(r#"{{"cmd":"pause","pad":"{}"}}"#, "x".repeat(10_000)),
    )
    .await;
    assert!(
        matches!(reply(&mut ws).await, ServerMsg::Error { message, .. } if message.contains("too large"))
    );
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send");
    assert!(matches!(reply(&mut ws).await, ServerMsg::Error { .. }));
    send(&mut ws, r#"{"cmd":"hello","protocol":999}"#).await;
    assert!(matches!(reply(&mut ws).await, ServerMsg::Reload { .. }));

    // Still usable: a valid manual transaction is acknowledged and reaches the balances.
    send(
        &mut ws,
        r#"{"cmd":"manual","account":4,"transaction_type":"Credit","amount":2.5,"id":9}"#,
    )
    .await;
    match reply(&mut ws).await {
        ServerMsg::Ack {
            id: Some(9),
            transaction: Some(t),
            ..
        } => assert_eq!(t.amount, Money::from_minor(250)),
        other => panic!("expected an ack, got {other:?}"),
    }
    common::wait_for(
        Duration::from_secs(30),
        "the manual transaction applied",
        || async { (app.account(4).balance == Money::from_minor(10_250)).then_some(()) },
    )
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_floods_are_rate_limited() {
    let app = spawn_app(Broker::Apache, &unique("ws-flood")).await;
    let mut ws = connect(&app).await;
    next(&mut ws, Duration::from_secs(5)).await;
    next(&mut ws, Duration::from_secs(5)).await;
    for _ in 0..100 {
        send(&mut ws, r#"{"cmd":"pause"}"#).await;
    }
    let (mut acks, mut limited) = (0, 0);
    while acks + limited < 100 {
        match reply(&mut ws).await {
            ServerMsg::Ack { .. } => acks += 1,
            ServerMsg::Error { message, .. } if message.contains("too many") => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(limited > 50 && acks >= 20, "acks {acks}, limited {limited}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_viewer_does_not_stop_others() {
    let app = spawn_app(Broker::Apache, &unique("ws-stall")).await;
    let _stalled = connect(&app).await; // never read
    let mut live = connect(&app).await;
    next(&mut live, Duration::from_secs(5)).await;
    next(&mut live, Duration::from_secs(5)).await;
    send(&mut live, r#"{"cmd":"set_rate","rate":1000}"#).await;
    reply(&mut live).await;
    send(&mut live, r#"{"cmd":"start"}"#).await;
    reply(&mut live).await;
    let start = Instant::now();
    let mut deltas = 0;
    while start.elapsed() < Duration::from_secs(3) {
        if let ServerMsg::Delta(_) = next(&mut live, Duration::from_secs(5)).await {
            deltas += 1;
        }
    }
    assert!(
        deltas >= 10,
        "the live viewer got only {deltas} deltas in 3 s"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_are_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app(Broker::Apache, &unique("ws-origin")).await;
    let url = format!("ws://{}/ws", app.http_addr);
    let mut evil = url.as_str().into_client_request().expect("request");
    evil.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(evil)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("403"), "{err}");
    let mut own = url.as_str().into_client_request().expect("request");
    own.headers_mut().insert(
        "Origin",
        format!("http://{}", app.http_addr).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(own)
        .await
        .expect("same origin is allowed");
    assert!(matches!(
        next(&mut ws, Duration::from_secs(5)).await,
        ServerMsg::Hello { .. }
    ));
    // DNS rebinding: a page of evil.example, its name now resolving to this machine, sends
    // its own name as Host and Origin alike.
    let port = app.http_addr.port();
    let mut rebound = url.as_str().into_client_request().expect("request");
    rebound
        .headers_mut()
        .insert("Host", format!("evil.example:{port}").parse().unwrap());
    rebound.headers_mut().insert(
        "Origin",
        format!("http://evil.example:{port}").parse().unwrap(),
    );
    let err = tokio_tungstenite::connect_async(rebound)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("403"), "{err}");
    let mut by_name = url.as_str().into_client_request().expect("request");
    by_name
        .headers_mut()
        .insert("Host", format!("localhost:{port}").parse().unwrap());
    by_name.headers_mut().insert(
        "Origin",
        format!("http://localhost:{port}").parse().unwrap(),
    );
    tokio_tungstenite::connect_async(by_name)
        .await
        .expect("localhost is this machine");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_presenter_token_viewers_are_read_only() {
    let app = common::spawn_app_with(Broker::Apache, &unique("ws-token"), |s| {
        s.presenter_token = Some("s3cret-token".into())
    })
    .await;
    let mut ws = connect(&app).await;
    assert!(matches!(
        next(&mut ws, Duration::from_secs(5)).await,
        ServerMsg::Hello {
            presenter_required: true,
            ..
        }
    ));
    next(&mut ws, Duration::from_secs(5)).await;
    send(&mut ws, r#"{"cmd":"burst","count":5,"id":1}"#).await;
    assert!(
        matches!(reply(&mut ws).await, ServerMsg::Error { id: Some(1), message } if message.contains("read-only"))
    );
    send(&mut ws, r#"{"cmd":"login","token":"guess","id":2}"#).await;
    assert!(
        matches!(reply(&mut ws).await, ServerMsg::Error { id: Some(2), message } if message.contains("wrong"))
    );
    send(&mut ws, r#"{"cmd":"login","token":"s3cret-token","id":3}"#).await;
    assert!(matches!(
        reply(&mut ws).await,
        ServerMsg::Presenter { id: Some(3) }
    ));
    send(&mut ws, r#"{"cmd":"burst","count":5,"id":4}"#).await;
    assert!(matches!(
        reply(&mut ws).await,
        ServerMsg::Ack { id: Some(4), .. }
    ));
    // Another viewer is still read-only, and nothing it sent was produced.
    let mut other = connect(&app).await;
    next(&mut other, Duration::from_secs(5)).await;
    next(&mut other, Duration::from_secs(5)).await;
    send(&mut other, r#"{"cmd":"pause"}"#).await;
    assert!(matches!(reply(&mut other).await, ServerMsg::Error { .. }));
    common::wait_for(Duration::from_secs(30), "the burst applied", || async {
        (app.stats().applied == 5).then_some(())
    })
    .await;
    assert_eq!(app.producer_counts().sent, 5);
    app.shutdown().await;
}

/// A viewer's page state, fed by its own socket on a task of its own.
fn follow(mut ws: common::ws::Ws) -> std::sync::Arc<std::sync::Mutex<Dashboard>> {
    use futures_util::StreamExt;
    let page = std::sync::Arc::new(std::sync::Mutex::new(Dashboard::default()));
    let p = page.clone();
    tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                let msg: ServerMsg = serde_json::from_str(&t).expect("a frame of the protocol");
                p.lock().unwrap().apply(msg);
            }
        }
    });
    page
}

/// Where the page differs from `/api/balances` (every account is shown: 100 of them).
fn differs(page: &Dashboard, api: &cashflow_shared::api::Balances) -> Option<String> {
    if page.counters.ledger.applied != api.stats.applied {
        return Some(format!(
            "applied {} on the page, {} in the API",
            page.counters.ledger.applied, api.stats.applied
        ));
    }
    if page.accounts.len() != api.accounts.len() {
        return Some(format!(
            "{} accounts on the page, {} in the API",
            page.accounts.len(),
            api.accounts.len()
        ));
    }
    for a in &api.accounts {
        let p = page.accounts.get(&a.account)?;
        if (p.balance, p.count) != (a.balance, a.count) {
            return Some(format!("account {}: page {p:?}, API {a:?}", a.account));
        }
    }
    let records: i64 = page.partitions.iter().map(|p| p.records).sum();
    let next: i64 = api.next_offsets.values().sum();
    (records != next).then(|| format!("partitions: page {records} records, API {next}"))
}

/// Light frames (changes only, busy parts at the eye's rate) still add up exactly: at
/// 1 000 tx/s over 100 accounts, a viewer from the start and one that joins mid-stream both
/// end with every balance, count, partition and the applied counter of `/api/balances`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fed_by_deltas_equal_the_api_on_apache_kafka() {
    let app = spawn_app(Broker::Apache, &unique("ws-exact")).await;
    let mut control = connect(&app).await;
    let early = follow(connect(&app).await);
    for cmd in [
        r#"{"cmd":"set_accounts","accounts":100}"#,
        r#"{"cmd":"set_rate","rate":1000}"#,
        r#"{"cmd":"start"}"#,
    ] {
        send(&mut control, cmd).await;
        assert!(
            matches!(reply(&mut control).await, ServerMsg::Ack { .. }),
            "{cmd}"
        );
    }
    app.wait_applied(2_000, Duration::from_secs(60)).await;
    let late = follow(connect(&app).await);
    app.wait_applied(5_000, Duration::from_secs(60)).await;
    send(&mut control, r#"{"cmd":"pause"}"#).await;
    assert!(matches!(reply(&mut control).await, ServerMsg::Ack { .. }));
    // Records still in flight at the pause are delivered and applied; then both pages reach
    // the API's figures (read again each time: they settle together).
    common::wait_for(
        Duration::from_secs(60),
        "the calculator caught up",
        || async {
            let p = app.producer_stats().await;
            let b = app.balances().await;
            (p.delivered > 0 && p.sent == p.delivered + p.failed && b.stats.applied == p.delivered)
                .then_some(())
        },
    )
    .await;
    for (name, page) in [("early", &early), ("late", &late)] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let api = app.balances().await;
            assert_eq!(api.accounts.len(), 100);
            let Some(d) = differs(&page.lock().unwrap(), &api) else {
                break;
            };
            assert!(
                Instant::now() < deadline,
                "the {name} viewer never matched the API: {d}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(late.lock().unwrap().snapshots, 1);
    app.shutdown().await;
}
