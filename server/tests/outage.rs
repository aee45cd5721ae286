//! The outage lesson on the embedded broker, driven as the page drives it: "stop the broker for
//! N seconds" under load. Generation is held while it is away, and afterwards every transaction
//! is in the topic exactly once, the balances equal the recomputation and the invariant holds;
//! the lesson reports its recovery time. On an external broker the command is refused with the
//! way to do it there.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use cashflow_shared::Transaction;
use cashflow_shared::command::Command;
use cashflow_shared::invariant::InvariantState;
use cashflow_shared::outage::OutageState;
use cashflow_shared::protocol::ServerMsg;
use common::ws::{connect, reply, send};
use common::{Broker, read_topic, recompute, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_outage_loses_and_doubles_nothing() {
    let topic = unique("outage");
    let app = spawn_app_with(Broker::Embedded, &topic, |s| {
        s.generator.accounts = 20;
        s.rate = cashflow::config::Rate::PerSecond(200.0);
    })
    .await;
    app.producer.send(Command::Start).await.expect("start");
    app.wait_applied(300, WAIT).await;

    let mut ws = connect(&app).await;
    send(&mut ws, r#"{"cmd":"stop_broker","seconds":0,"id":1}"#).await;
    match reply(&mut ws).await {
        ServerMsg::Error { message, .. } => assert!(message.contains("1 to 120"), "{message}"),
        other => panic!("{other:?}"),
    }
    send(&mut ws, r#"{"cmd":"stop_broker","seconds":4,"id":2}"#).await;
    match reply(&mut ws).await {
        ServerMsg::Outage { outage, .. } => assert_eq!(outage.state, OutageState::Down),
        other => panic!("{other:?}"),
    }
    send(&mut ws, r#"{"cmd":"stop_broker","seconds":4,"id":3}"#).await;
    match reply(&mut ws).await {
        ServerMsg::Error { message, .. } => assert!(message.contains("under way"), "{message}"),
        other => panic!("{other:?}"),
    }
    wait_for(WAIT, "generation to be held", || async {
        app.shared.outage.get().held.then_some(())
    })
    .await;
    let o = wait_for(WAIT, "the lesson to see the recovery", || async {
        let o = app.shared.outage.get();
        assert_ne!(o.state, OutageState::Failed, "{o:?}");
        (o.state == OutageState::Recovered).then_some(o)
    })
    .await;
    assert_eq!((o.failed, o.duplicates), (0, 0), "{o:?}");
    assert!(o.delivered_since > 0 && o.back_ms > o.started_ms, "{o:?}");
    println!(
        "embedded outage of {} s: {} in flight when it came back, recovered in {} ms",
        o.seconds, o.in_flight_at_back, o.recovery_ms
    );

    // Settled: every transaction sent is in the topic once, and applied once.
    app.producer.send(Command::Pause).await.expect("pause");
    let delivered = wait_for(WAIT, "every delivery report", || async {
        let p = app.shared.producer();
        (p.delivered + p.failed == p.sent).then_some(p)
    })
    .await;
    assert_eq!(delivered.failed, 0, "{:?}", delivered.last_error);
    let records = read_topic(&app.brokers, &topic);
    let ids: HashSet<String> = records
        .iter()
        .map(|r| {
            Transaction::parse(&r.payload)
                .expect("valid")
                .transaction_id
        })
        .collect();
    assert_eq!(records.len() as u64, delivered.delivered, "none lost");
    assert_eq!(ids.len(), records.len(), "none written twice");
    let b = wait_for(WAIT, "the calculator to apply everything", || async {
        let b = app.shared.balances(0, 10_000);
        (b.stats.applied == delivered.delivered).then_some(b)
    })
    .await;
    let got: std::collections::BTreeMap<u32, (i64, u64)> = b
        .accounts
        .iter()
        .map(|a| (a.account, (a.balance.minor(), a.count)))
        .collect();
    assert_eq!(got, recompute(&records));
    wait_for(WAIT, "the invariant to hold over every record", || async {
        let i = app.shared.invariant();
        (i.state == InvariantState::Holds && i.acked == delivered.delivered).then_some(())
    })
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_broker_is_not_stopped_from_the_page() {
    let app = spawn_app_with(Broker::Apache, &unique("outage-ext"), |_| {}).await;
    let mut ws = connect(&app).await;
    send(&mut ws, r#"{"cmd":"stop_broker","seconds":5,"id":1}"#).await;
    match reply(&mut ws).await {
        ServerMsg::Error { message, .. } => {
            assert!(message.contains("scripts/kafka.sh kill"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.shared.outage.get().state, OutageState::Idle);
    app.shutdown().await;
}
