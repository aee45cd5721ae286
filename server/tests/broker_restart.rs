//! Apache Kafka stopped and started again mid-run: the idempotent producer delivers everything
//! exactly once, the consumers resume, and the balances stay exact. Alone in its test binary,
//! because it stops the shared test broker.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use cashflow::producer::Command;
use cashflow_shared::Transaction;
use common::{Broker, read_topic, repo_root, spawn_app_with, unique, wait_for};

fn kafka(cmd: &str) {
    let ok = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/kafka.sh"))
        .arg(cmd)
        .status()
        .expect("scripts/kafka.sh")
        .success();
    assert!(ok, "scripts/kafka.sh {cmd} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stopped_and_started_mid_run() {
    let app = spawn_app_with(Broker::Apache, &unique("outage"), |s| {
        s.rate = cashflow::config::Rate::PerSecond(500.0)
    })
    .await;
    app.producer.send(Command::Start).await.expect("start");
    wait_for(
        Duration::from_secs(60),
        "some transactions applied",
        || async { (app.shared.ledger().stats().applied > 500).then_some(()) },
    )
    .await;

    tokio::task::spawn_blocking(|| kafka("stop"))
        .await
        .expect("stop");
    wait_for(
        Duration::from_secs(30),
        "/health to report the outage",
        || async {
            let h = reqwest::get(format!("http://{}/health", app.http_addr))
                .await
                .ok()?;
            (h.status() == 503).then_some(())
        },
    )
    .await;
    let sent_during_outage = app.shared.producer().sent;
    tokio::task::spawn_blocking(|| kafka("start"))
        .await
        .expect("start");

    // Keep producing a little after the broker is back, then stop and let everything settle.
    wait_for(Duration::from_secs(90), "production to resume", || async {
        (app.shared.producer().delivered > sent_during_outage + 200).then_some(())
    })
    .await;
    app.producer.send(Command::Pause).await.expect("pause");
    let (sent, delivered) = wait_for(
        Duration::from_secs(120),
        "every delivery report",
        || async {
            let p = app.shared.producer().clone();
            (p.delivered + p.failed == p.sent).then_some((p.sent, p.delivered))
        },
    )
    .await;
    assert_eq!(
        delivered,
        sent,
        "nothing failed: {:?}",
        app.shared.producer().last_error
    );

    let records = read_topic(&app.brokers, &app.shared.topic);
    let ids: HashSet<String> = records
        .iter()
        .map(|r| {
            Transaction::parse(&r.payload)
                .expect("valid")
                .transaction_id
        })
        .collect();
    assert_eq!(
        records.len() as u64,
        delivered,
        "each delivered transaction is in the topic once"
    );
    assert_eq!(ids.len(), records.len(), "no duplicates in the topic");

    let b = wait_for(
        Duration::from_secs(120),
        "the calculator to apply everything",
        || async {
            let l = app.shared.ledger();
            (l.stats().applied == delivered).then(|| l.accounts().clone())
        },
    )
    .await;
    let expected = common::recompute(&records);
    let got: BTreeMap<u32, (i64, u64)> = b
        .iter()
        .map(|(a, s)| (*a, (s.balance.minor(), s.count)))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(app.shared.ledger().stats().mismatches, 0);
    app.shutdown().await;
}
