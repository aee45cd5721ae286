//! The outage lesson on the managed Apache Kafka broker, driven as the page drives it: "stop the broker for
//! N seconds" under load. Generation is held while it is away, and afterwards every transaction
//! is in the topic exactly once, the balances equal the recomputation and the invariant holds;
//! the lesson reports its recovery time. On an external broker the command is refused with the
//! way to do it there.

mod common;

use std::time::Duration;

use cashflow_shared::command::Command;
use cashflow_shared::outage::OutageState;
use cashflow_shared::protocol::ServerMsg;
use common::ws::{connect, reply, send};
use common::{Broker, settled_exactly_once, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_broker_outage_loses_and_doubles_nothing() {
    let topic = unique("outage");
    let app = spawn_app_with(Broker::Managed, &topic, |s| {
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
    // Long enough for the broker watch to see it (a check every 2 s, each with a time-out).
    send(&mut ws, r#"{"cmd":"stop_broker","seconds":8,"id":2}"#).await;
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
        app.outage().held.then_some(())
    })
    .await;
    let o = wait_for(WAIT, "the lesson to see the recovery", || async {
        let o = app.outage();
        assert_ne!(o.state, OutageState::Failed, "{o:?}");
        (o.state == OutageState::Recovered).then_some(o)
    })
    .await;
    assert_eq!((o.failed, o.duplicates), (0, 0), "{o:?}");
    assert!(o.delivered_since > 0 && o.back_ms > o.started_ms, "{o:?}");
    // The JVM's start time is measured and shown; one node, running again.
    assert!(o.start_ms > 0, "{o:?}");
    assert!(
        o.describe().contains("its JVM started in"),
        "{}",
        o.describe()
    );
    let nodes = wait_for(WAIT, "the node shown running", || async {
        let n = app.outage().nodes;
        (n.len() == 1 && n[0].state == cashflow_shared::outage::NodeState::Running).then_some(n)
    })
    .await;
    assert_eq!(nodes[0].addr, app.brokers);
    // One node: the replication lesson's buttons refuse, naming the outage instead.
    send(&mut ws, r#"{"cmd":"stop_node","node":1,"id":4}"#).await;
    match reply(&mut ws).await {
        ServerMsg::Error { message, .. } => assert!(message.contains("one node only"), "{message}"),
        other => panic!("{other:?}"),
    }
    println!(
        "managed broker outage of {} s: {} in flight when it came back, recovered in {} ms",
        o.seconds, o.in_flight_at_back, o.recovery_ms
    );

    // Settled: every transaction sent is in the topic once, and applied once.
    let records = settled_exactly_once(&app, 0).await;
    assert_eq!(
        records.len() as u64,
        app.producer_counts().delivered,
        "none lost"
    );
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
    send(&mut ws, r#"{"cmd":"stop_node","node":2,"id":2}"#).await;
    match reply(&mut ws).await {
        ServerMsg::Error { message, .. } => assert!(message.contains("--brokers"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(app.outage().state, OutageState::Idle);
    assert!(app.outage().nodes.is_empty());
    app.shutdown().await;
}
