//! Broker faults against Apache Kafka: the broker stopped, or killed with SIGKILL, mid-run and
//! started again (the idempotent producer delivers everything exactly once, the consumers resume,
//! the balances stay exact, and the page is told of the outage and the recovery); and the broker
//! absent when the server starts. On a broker of their own (scripts/kafka.sh on
//! `RESTART_KAFKA_PORT`, default 19492), so the other tests, which run beside them, keep the
//! shared one; one at a time, because they stop it.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cashflow::{App, Settings};
use cashflow_shared::command::Command;
use cashflow_shared::protocol::ServerMsg;
use cashflow_shared::{Money, Transaction, TxType};
use common::{Broker, TestApp, read_topic, repo_root, spawn_app_with, unique, wait_for};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// The port of the broker these tests stop and start (scripts/kafka.sh stops it at the end of
/// scripts/test.sh).
fn port() -> String {
    std::env::var("RESTART_KAFKA_PORT").unwrap_or_else(|_| "19492".into())
}

/// Bootstrap servers of this binary's own broker, started if it is not running.
fn own_kafka() -> String {
    kafka("start");
    format!("127.0.0.1:{}", port())
}

fn kafka(cmd: &str) {
    let ok = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/kafka.sh"))
        .arg(cmd)
        .env("KAFKA_PORT", port())
        .env_remove("KAFKA_DIR")
        .status()
        .expect("scripts/kafka.sh")
        .success();
    assert!(ok, "scripts/kafka.sh {cmd} failed");
}

async fn kafka_async(cmd: &'static str) {
    tokio::task::spawn_blocking(move || kafka(cmd))
        .await
        .expect("scripts/kafka.sh");
}

const RATE: f64 = 500.0;

/// The tests of this binary stop their broker: they take turns (when run as one process; run by
/// scripts/test.sh, each is a process of its own, kept apart by `.config/nextest.toml`).
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a viewer of the page was told about the broker, in order (changes only).
#[derive(Clone, Default)]
struct Viewer(Arc<Mutex<Vec<bool>>>);

impl Viewer {
    async fn watch(app: &TestApp) -> Viewer {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.http_addr))
            .await
            .expect("connect");
        let seen = Viewer::default();
        let out = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let reachable = match serde_json::from_str::<ServerMsg>(&t) {
                    Ok(ServerMsg::Snapshot(s)) => Some(s.broker_reachable),
                    Ok(ServerMsg::Delta(d)) => d.broker_reachable,
                    _ => None,
                };
                if let Some(r) = reachable {
                    let mut v = out.0.lock().unwrap_or_else(|e| e.into_inner());
                    if v.last() != Some(&r) {
                        v.push(r);
                    }
                }
            }
        });
        seen
    }

    fn told(&self) -> Vec<bool> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn health(app: &TestApp) -> Option<u16> {
    Some(
        reqwest::get(format!("http://{}/health", app.http_addr))
            .await
            .ok()?
            .status()
            .as_u16(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stopped_and_started_mid_run() {
    outage_mid_run("stop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_started_mid_run() {
    outage_mid_run("kill").await;
}

async fn outage_mid_run(how: &'static str) {
    let _turn = BROKER.lock().await;
    let brokers = tokio::task::spawn_blocking(own_kafka)
        .await
        .expect("scripts/kafka.sh");
    let app = spawn_app_with(Broker::Apache, &unique("outage"), |s| {
        s.brokers = Some(brokers);
        s.rate = cashflow::config::Rate::PerSecond(RATE)
    })
    .await;
    app.producer.send(Command::Start).await.expect("start");
    wait_for(
        Duration::from_secs(60),
        "some transactions applied",
        || async { (app.stats().applied > 500).then_some(()) },
    )
    .await;

    let viewer = Viewer::watch(&app).await;
    kafka_async(how).await;
    wait_for(
        Duration::from_secs(30),
        "/health to report the outage",
        || async { (health(&app).await? == 503).then_some(()) },
    )
    .await;
    wait_for(Duration::from_secs(10), "generation to be held", || async {
        app.producer_counts().held.then_some(())
    })
    .await;
    let sent_during_outage = app.producer_counts().sent;
    let down = std::time::Instant::now();
    kafka_async("start").await;
    // Held while the broker was starting: far fewer sent than the rate would have produced.
    let sent_while_starting = app.producer_counts().sent - sent_during_outage;
    let unheld = (down.elapsed().as_secs_f64() * RATE) as u64;
    assert!(
        sent_while_starting < unheld / 2,
        "{sent_while_starting} sent while the broker started (unheld: about {unheld})"
    );

    // Keep producing a little after the broker is back, then stop and let everything settle.
    wait_for(Duration::from_secs(90), "production to resume", || async {
        (app.producer_counts().delivered > sent_during_outage + 200).then_some(())
    })
    .await;
    assert!(!app.producer_counts().held, "generation resumed");
    app.producer.send(Command::Pause).await.expect("pause");
    let (sent, delivered) = wait_for(
        Duration::from_secs(120),
        "every delivery report",
        || async {
            let p = app.producer_counts().clone();
            (p.delivered + p.failed == p.sent).then_some((p.sent, p.delivered))
        },
    )
    .await;
    assert_eq!(
        delivered,
        sent,
        "nothing failed: {:?}",
        app.producer_counts().last_error
    );

    let records = read_topic(&app.brokers, app.topic());
    // Duplicates first, each with where it lies: a record written twice (the idempotent
    // producer's retry not recognised across the broker's restart) is told apart from a
    // miscount of deliveries.
    let mut seen: std::collections::HashMap<String, (i32, i64)> = Default::default();
    let mut twice = Vec::new();
    for r in &records {
        let id = Transaction::parse(&r.payload)
            .expect("valid")
            .transaction_id;
        if let Some(first) = seen.insert(id.clone(), (r.partition, r.offset)) {
            twice.push(format!(
                "{id} at p{}@{} and p{}@{}",
                first.0, first.1, r.partition, r.offset
            ));
        }
    }
    let ids: HashSet<&String> = seen.keys().collect();
    assert!(twice.is_empty(), "written twice: {twice:?}");
    assert_eq!(ids.len(), records.len(), "no duplicates in the topic");
    assert_eq!(
        records.len() as u64,
        delivered,
        "each delivered transaction is in the topic once"
    );

    let b = wait_for(
        Duration::from_secs(120),
        "the calculator to apply everything",
        || async {
            let b = app.ledger_balances(0, 10_000);
            (b.stats.applied == delivered).then_some(b)
        },
    )
    .await;
    let expected = common::recompute(&records);
    let got: BTreeMap<u32, (i64, u64)> = b
        .accounts
        .iter()
        .map(|a| (a.account, (a.balance.minor(), a.count)))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(app.stats().mismatches, 0);
    wait_for(
        Duration::from_secs(30),
        "the page to be told of the outage and the recovery",
        || async { viewer.told().ends_with(&[true, false, true]).then_some(()) },
    )
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_absent_at_start_then_appears() {
    let _turn = BROKER.lock().await;
    let _ = common::tracing_subscriber_init();
    let brokers = tokio::task::spawn_blocking(own_kafka)
        .await
        .expect("scripts/kafka.sh");
    kafka_async("stop").await;
    let mut settings = Settings::for_tests(Some(brokers), &unique("late"));
    settings.rate = cashflow::config::Rate::PerSecond(200.0);
    // The server starts and serves the page without a broker.
    let app = TestApp::from(App::start(settings).await.expect("starts without a broker"));
    let viewer = Viewer::watch(&app).await;
    wait_for(
        Duration::from_secs(30),
        "/health 503 and the page told the broker is unreachable",
        || async { (health(&app).await? == 503 && viewer.told() == [false]).then_some(()) },
    )
    .await;
    // Settings commands are taken meanwhile; a manual transaction is refused with a reason.
    let status = app.producer.send(Command::Start).await.expect("start");
    assert!(status.0.running);
    let manual = app
        .producer
        .send(Command::Manual {
            account: 1,
            transaction_type: TxType::Credit,
            amount: Money::from_minor(100),
        })
        .await;
    assert!(
        manual
            .as_ref()
            .is_err_and(|e| *e == cashflow::pipeline::producer::ProducerError::NotRestored),
        "{manual:?}"
    );

    kafka_async("start").await;
    assert!(
        tokio::time::timeout(Duration::from_secs(90), app.wait_ready())
            .await
            .unwrap_or(false),
        "the topic is created once the broker appears"
    );
    wait_for(Duration::from_secs(60), "/health 200", || async {
        (health(&app).await? == 200).then_some(())
    })
    .await;
    wait_for(Duration::from_secs(60), "transactions applied", || async {
        (app.stats().applied > 200).then_some(())
    })
    .await;
    wait_for(Duration::from_secs(10), "the page told", || async {
        (viewer.told().last() == Some(&true)).then_some(())
    })
    .await;
    assert_eq!(viewer.told(), [false, true], "told once, no flicker");
    assert_eq!(app.stats().mismatches, 0);
    assert_eq!(app.producer_counts().failed, 0);
    app.shutdown().await;
}
