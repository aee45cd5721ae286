//! The keys-and-ordering lesson, on Apache Kafka: with one constant
//! key (the original's) every record lands on one partition; keyed by account, two calculator
//! members apply no transaction out of order; with random keys the same two members do (each
//! generated record carries its account's sequence number, and the calculator counts those
//! applied after a later one). Balances stay exact throughout: order does not change a sum.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cashflow_shared::command::Command;
use cashflow_shared::ordering::KeyStrategy;
use common::{Broker, TestApp, read_topic, recompute, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(90);

async fn keys(app: &TestApp, keys: KeyStrategy) {
    let (status, _) = app
        .producer
        .send(Command::SetKeys { keys })
        .await
        .expect("set keys");
    assert_eq!(status.keys, keys);
}

/// Waits until the calculator has applied everything delivered so far.
async fn caught_up(app: &TestApp) -> u64 {
    wait_for(WAIT, "the calculator to catch up", || async {
        let delivered = app.producer_counts().delivered;
        let applied = app.stats().applied;
        (delivered > 0 && applied == delivered && app.producer_counts().sent == delivered)
            .then_some(applied)
    })
    .await
}

async fn keys_decide_ordering(broker: Broker) {
    let topic = unique("ordering");
    let app = spawn_app_with(broker, &topic, |s| {
        s.rate = cashflow::config::Rate::PerSecond(400.0);
        s.generator.accounts = 20;
        s.paused = true;
    })
    .await;

    // One constant key, as the original: every record on the one partition it hashes to.
    keys(&app, KeyStrategy::Constant).await;
    app.producer
        .send(Command::Burst { count: 300 })
        .await
        .expect("burst");
    caught_up(&app).await;
    let records = read_topic(&app.brokers, &topic);
    assert_eq!(records.len(), 300);
    let parts: BTreeSet<i32> = records.iter().map(|r| r.partition).collect();
    let expected = KeyStrategy::Constant
        .partition_of(1, 6)
        .expect("a partition");
    assert_eq!(parts, BTreeSet::from([expected]), "all on one partition");
    assert!(
        records
            .iter()
            .all(|r| r.key.as_deref() == Some(b"transaction".as_slice()))
    );
    assert_eq!(app.ordering().violations, 0);

    // Keyed by account, two members sharing the work under load: none out of order.
    keys(&app, KeyStrategy::ByAccount).await;
    app.calculator.add().await.expect("a second member");
    wait_for(WAIT, "two members with partitions", || async {
        let g = app.group();
        (g.members.len() == 2 && g.members.iter().all(|m| !m.partitions.is_empty())).then_some(())
    })
    .await;
    app.producer.send(Command::Start).await.expect("start");
    wait_for(WAIT, "both members to apply by-account records", || async {
        let g = app.group();
        (g.members.iter().all(|m| m.records > 100) && app.ordering().checked > 2_000).then_some(())
    })
    .await;
    let by_account = app.ordering();
    assert_eq!(by_account.violations, 0, "{by_account:?}");

    // Random keys, the same members: an account's records now come from several partitions.
    keys(&app, KeyStrategy::Random).await;
    let late = wait_for(WAIT, "transactions applied out of order", || async {
        let o = app.ordering();
        (o.violations > 0).then_some(o)
    })
    .await;
    println!("{broker:?}: by account {by_account:?}; random keys {late:?}");
    wait_for(WAIT, "/api/topic to say so", || async {
        let v: cashflow_shared::api::TopicView = app.get("/api/topic").await;
        (v.keys == KeyStrategy::Random && v.ordering.violations > 0).then_some(())
    })
    .await;

    // Exact all the same: every balance equals the recomputation from the topic.
    app.producer.send(Command::Pause).await.expect("pause");
    caught_up(&app).await;
    let records = read_topic(&app.brokers, &topic);
    let spread = records
        .iter()
        .filter(|r| r.key.as_ref().is_some_and(|k| k.len() == 8))
        .map(|r| r.partition)
        .collect::<BTreeSet<_>>();
    assert_eq!(spread.len(), 6, "random keys reach every partition");
    let b = app.balances().await;
    let got: std::collections::BTreeMap<u32, (i64, u64)> = b
        .accounts
        .iter()
        .map(|a| (a.account, (a.balance.minor(), a.count)))
        .collect();
    assert_eq!(got, recompute(&records));

    // Back to keys by account while records of both strategies are still being applied: the
    // control case's count (records keyed by account late after one keyed by account) stays 0,
    // whatever the random-keyed records did.
    keys(&app, KeyStrategy::ByAccount).await;
    app.producer.send(Command::Start).await.expect("start");
    let before = app.ordering();
    wait_for(WAIT, "more by-account records applied", || async {
        (app.ordering().checked > before.checked + 2_000).then_some(())
    })
    .await;
    let after = app.ordering();
    assert!(after.violations > 0, "{after:?}");
    assert_eq!(after.keyed_violations, 0, "{after:?}");

    // The producer's `new_balance` is its whole view of an account, which random keys spread
    // over partitions: their records are counted as unchecked, not as mismatches, and once
    // keys are by account again and the lag is 0, every record agrees (issue 21: at e51ed68
    // one mismatch a record, for good).
    app.producer.send(Command::Pause).await.expect("pause");
    caught_up(&app).await;
    let settled = app.stats();
    assert!(settled.unchecked > 0, "{settled:?}");
    app.producer.send(Command::Start).await.expect("start");
    wait_for(WAIT, "more by-account records applied", || async {
        (app.stats().applied > settled.applied + 2_000).then_some(())
    })
    .await;
    app.producer.send(Command::Pause).await.expect("pause");
    caught_up(&app).await;
    let later = app.stats();
    assert_eq!(
        (later.mismatches, later.unchecked),
        (settled.mismatches, settled.unchecked),
        "keyed by account again: {} more records, none mismatched or unchecked",
        later.applied - settled.applied
    );
    app.shutdown().await;
}

on_apache_kafka!(apache_kafka_keys_decide_ordering, keys_decide_ordering);
