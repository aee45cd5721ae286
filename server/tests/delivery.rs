//! The delivery-semantics lesson on Apache Kafka, driven as the page
//! drives it: the naive calculator is crashed under load between its two steps, once
//! at-least-once (it counts the batch twice) and once at-most-once (it loses the batch). It
//! ends with a different total than the exact calculator, whose balances stay equal to the
//! recomputation from the topic and whose invariant holds.

mod common;

use std::time::Duration;

use cashflow_shared::command::Command;
use cashflow_shared::invariant::InvariantState;
use cashflow_shared::naive::{Delivery, NaiveState, NaiveStatus};
use cashflow_shared::protocol::ServerMsg;
use common::ws::{Ws, connect, reply, send};
use common::{Broker, TestApp, read_topic, recompute, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(90);

async fn naive(ws: &mut Ws, cmd: &str) -> NaiveStatus {
    send(ws, cmd).await;
    match reply(ws).await {
        ServerMsg::Naive { naive, .. } => naive,
        other => panic!("{cmd}: {other:?}"),
    }
}

/// Waits until the naive calculator has run `batches` batches with records since its `crashes`
/// crash.
async fn running(app: &TestApp, crashes: u32, batches: u64) -> NaiveStatus {
    wait_for(WAIT, "the naive calculator to run", || async {
        let n = app.naive();
        assert!(
            !matches!(n.state, NaiveState::Failed | NaiveState::Off),
            "{n:?}"
        );
        (n.crashes == crashes && n.state == NaiveState::Running && n.batches >= batches)
            .then_some(n)
    })
    .await
}

async fn crash(app: &TestApp, ws: &mut Ws, before: &NaiveStatus) -> NaiveStatus {
    let armed = naive(ws, r#"{"cmd":"crash_naive","id":2}"#).await;
    assert!(armed.crash_armed, "{armed:?}");
    // Restarted, and reading again: a batch past the one it crashed in.
    let n = running(app, before.crashes + 1, before.batches + 1).await;
    assert!(!n.crash_armed);
    let c = n.last_crash.expect("the crash is reported");
    assert!(c.batch > 0, "it crashes in a batch with records: {n:?}");
    n
}

async fn naive_consumer_loses_or_doubles(broker: Broker) {
    let topic = unique("delivery");
    let app = spawn_app_with(broker, &topic, |s| {
        s.paused = true;
        s.generator.accounts = 20;
        s.rate = cashflow::config::Rate::PerSecond(200.0);
    })
    .await;
    app.producer
        .send(Command::Burst { count: 500 })
        .await
        .expect("burst");
    app.wait_applied(500, WAIT).await;

    let mut ws = connect(&app).await;
    // Crashing before it runs is refused with a reason.
    send(&mut ws, r#"{"cmd":"crash_naive","id":1}"#).await;
    match reply(&mut ws).await {
        ServerMsg::Error { message, .. } => assert!(message.contains("not running"), "{message}"),
        other => panic!("{other:?}"),
    }
    let started = naive(
        &mut ws,
        r#"{"cmd":"start_naive","delivery":"at_least_once","id":1}"#,
    )
    .await;
    assert_eq!(started.delivery, Delivery::AtLeastOnce);
    assert!(started.group.contains("-naive-"), "{}", started.group);
    app.producer.send(Command::Start).await.expect("start");
    let before = running(&app, 0, 2).await;
    assert_eq!((before.lost, before.doubled), (0, 0), "{before:?}");

    // At-least-once: saved, then killed before committing: the batch is read twice.
    let after = crash(&app, &mut ws, &before).await;
    let batch = after.last_crash.map_or(0, |c| c.batch);
    // The whole batch is read again (and an earlier one too if its commit was refused, as
    // during the rebalance that follows the restart). The restarted member gets its
    // partitions back one fetch at a time, so its first batches may hold only part of it.
    let after = wait_for(WAIT, "the crashed batch to be read again", || async {
        let n = app.naive();
        assert_eq!(n.lost, 0, "at-least-once loses nothing: {n:?}");
        (n.doubled >= batch).then_some(n)
    })
    .await;
    let doubled = after.doubled;

    // At-most-once: committed, then killed before saving: the batch is lost.
    let switched = naive(
        &mut ws,
        r#"{"cmd":"start_naive","delivery":"at_most_once","id":3}"#,
    )
    .await;
    assert_eq!(switched.group, started.group, "the same run, switched");
    assert_eq!(switched.delivery, Delivery::AtMostOnce);
    let before = running(&app, 1, after.batches + 1).await;
    let after = crash(&app, &mut ws, &before).await;
    let lost = after.last_crash.map_or(0, |c| c.batch);
    // Each partition's loss is known once the restarted member has it assigned.
    let after = wait_for(WAIT, "the crashed batch to be skipped", || async {
        let n = app.naive();
        assert!(n.lost <= lost, "only the crashed batch is lost: {n:?}");
        (n.lost == lost).then_some(n)
    })
    .await;
    assert!(after.doubled >= doubled, "{after:?}");
    let doubled = after.doubled;

    // Once both calculators stand at the end of every partition: the naive total differs by
    // exactly what was doubled and lost, the exact one equals the recomputation.
    app.producer.send(Command::Pause).await.expect("pause");
    let delivered = wait_for(WAIT, "the exact calculator to catch up", || async {
        let p = app.producer_counts();
        let applied = app.stats().applied;
        (p.sent == p.delivered && applied == p.delivered && applied > 0).then_some(p.delivered)
    })
    .await;
    let n = wait_for(
        WAIT,
        "every partition to be compared at its end",
        || async {
            let n = app.naive();
            let ends = app.next_offsets();
            (n.compared == 6 && n.partitions == 6 && ends.values().sum::<i64>() == delivered as i64)
                .then_some(n)
        },
    )
    .await;
    let n = wait_for(WAIT, "the comparison at the ends", || async {
        let m = app.naive();
        (m.batches == n.batches
            && m.count_difference == m.doubled as i64 - m.lost as i64
            && m.doubled == doubled)
            .then_some(m)
    })
    .await;
    assert_ne!(n.net_difference, cashflow_shared::Money::ZERO, "{n:?}");
    assert!(n.differing_accounts > 0 && !n.accounts.is_empty(), "{n:?}");
    for a in &n.accounts {
        assert_ne!(a.exact, a.naive, "{a:?}");
    }
    let records = read_topic(&app.brokers, &topic);
    let exact: std::collections::BTreeMap<u32, (i64, u64)> = app
        .balances()
        .await
        .accounts
        .iter()
        .map(|a| (a.account, (a.balance.minor(), a.count)))
        .collect();
    assert_eq!(exact, recompute(&records), "the exact calculator is exact");
    let i = app.invariant();
    assert_eq!(i.state, InvariantState::Holds, "{i:?}");
    println!(
        "{broker:?}: at-least-once crash doubled {doubled} (batch {batch}), at-most-once crash lost {lost}; naive total off by {} over {} accounts",
        n.net_difference, n.differing_accounts
    );

    // Stopped: its group is deleted.
    let stopped = naive(&mut ws, r#"{"cmd":"stop_naive","id":4}"#).await;
    assert_eq!(stopped.group, started.group);
    wait_for(WAIT, "the naive calculator to stop", || async {
        (app.naive().state == NaiveState::Off).then_some(())
    })
    .await;
    if matches!(broker, Broker::Apache) {
        wait_for(WAIT, "its group to be deleted", || async {
            let v: cashflow_shared::api::TopicView = app.get("/api/topic").await;
            (v.taken_ms > 0 && v.groups.iter().all(|g| g.group != started.group)).then_some(())
        })
        .await;
    }
    app.shutdown().await;
}

on_apache_kafka!(
    apache_kafka_naive_consumer_loses_or_doubles,
    naive_consumer_loses_or_doubles
);
