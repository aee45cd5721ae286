//! The balance calculator as a group of members inside one server, driven the way the page
//! drives it (WebSocket commands), on Apache Kafka: "add member"
//! makes the broker rebalance so two members own every partition exactly once, "remove" gives
//! them back; three cycles under load leave balances equal to a recomputation from the topic.
//! Pausing stops fetching (lag grows while the producer writes), resuming drains it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cashflow_shared::api::TopicView;
use cashflow_shared::command::Command;
use cashflow_shared::group::GroupStatus;
use cashflow_shared::invariant::InvariantState;
use cashflow_shared::protocol::ServerMsg;
use common::ws::{Ws, connect, reply, send};
use common::{Broker, TestApp, read_topic, recompute, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(60);

async fn command(ws: &mut Ws, cmd: &str) -> GroupStatus {
    send(ws, &format!(r#"{{"cmd":"{cmd}","id":1}}"#)).await;
    match reply(ws).await {
        ServerMsg::Calculator { id: Some(1), group } => group,
        other => panic!("{cmd}: {other:?}"),
    }
}

/// Waits until the calculator has `n` members that between them own every partition once.
async fn wait_members(app: &TestApp, n: usize) -> GroupStatus {
    wait_for(WAIT, &format!("{n} members owning all 6"), || async {
        let g = app.group();
        let mut all: Vec<i32> = g
            .members
            .iter()
            .flat_map(|m| m.partitions.clone())
            .collect();
        all.sort_unstable();
        (g.members.len() == n
            && g.members.iter().all(|m| !m.partitions.is_empty())
            && all == (0..6).collect::<Vec<_>>())
        .then_some(g)
    })
    .await
}

/// On Apache Kafka the broker itself says who owns what: the calculator's group as described
/// by the coordinator must show the same members and partitions.
async fn broker_agrees(app: &TestApp, group: &GroupStatus) {
    wait_for(WAIT, "the broker's description to agree", || async {
        let v: TopicView = app.get("/api/topic").await;
        let g = v.groups.iter().find(|g| g.group == group.group)?;
        let mut theirs: Vec<(String, Vec<i32>)> = g
            .members
            .iter()
            .map(|m| (m.member_id.clone(), m.partitions.clone()))
            .collect();
        let mut ours: Vec<(String, Vec<i32>)> = app
            .group()
            .members
            .iter()
            .map(|m| (m.member_id.clone(), m.partitions.clone()))
            .collect();
        theirs.sort();
        ours.sort();
        (theirs == ours && g.state == "Stable").then_some(())
    })
    .await;
}

async fn members_rebalance_and_balances_stay_exact(broker: Broker) {
    let topic = unique("members");
    let app = spawn_app_with(broker, &topic, |s| {
        s.rate = cashflow::config::Rate::PerSecond(300.0);
        s.generator.accounts = 30;
    })
    .await;
    app.producer.send(Command::Start).await.expect("start");
    let one = wait_members(&app, 1).await;
    assert!(
        !one.members[0].member_id.is_empty(),
        "member id from librdkafka"
    );
    let mut ws = connect(&app).await;

    for cycle in 0..3 {
        let before = app.stats().applied;
        command(&mut ws, "add_member").await;
        let two = wait_members(&app, 2).await;
        if matches!(broker, Broker::Apache) {
            broker_agrees(&app, &two).await;
        }
        // Both members apply live records.
        wait_for(WAIT, "both members to apply records", || async {
            let g = app.group();
            (g.members.iter().all(|m| m.records > 0) && app.stats().applied > before + 200)
                .then_some(())
        })
        .await;
        let g = app.group();
        let added = g
            .rebalances
            .iter()
            .rev()
            .find(|r| r.cause == "member 2 added")
            .expect("the timeline names the rebalance");
        assert!(
            added
                .moves
                .iter()
                .any(|m| m.from == Some(1) && m.to == Some(2)),
            "cycle {cycle}: partitions moved from member 1 to 2: {added:?}"
        );
        assert!(added.ended_ms.is_some(), "{added:?}");

        command(&mut ws, "remove_member").await;
        let back = wait_members(&app, 1).await;
        assert_eq!(back.members[0].member, 1);
        let removed = back
            .rebalances
            .iter()
            .rev()
            .find(|r| r.cause == "member 2 removed")
            .expect("the removal is in the timeline");
        assert!(
            removed
                .moves
                .iter()
                .all(|m| m.from == Some(2) && m.to == Some(1)),
            "{removed:?}"
        );
    }
    // Never fewer than one, never more than one per partition.
    send(&mut ws, r#"{"cmd":"remove_member","id":2}"#).await;
    assert!(matches!(
        reply(&mut ws).await,
        ServerMsg::Error { id: Some(2), .. }
    ));

    // Pause: the producer goes on, the calculator's lag grows; resume: it drains to 0.
    let paused = command(&mut ws, "pause_consumption").await;
    assert!(paused.paused);
    let group = paused.group.clone();
    let lag = |v: &TopicView| {
        v.groups
            .iter()
            .find(|g| g.group == group)
            .map_or(0, |g| g.total_lag)
    };
    // Applying stops while the producer's acknowledgements go on: the invariant says
    // "catching up" with the gap, and the broker's lag for the group grows as well.
    let inv = wait_for(
        WAIT,
        "the invariant to fall behind while paused",
        || async {
            let i = app.invariant();
            (i.lag > 300).then_some(i)
        },
    )
    .await;
    assert_eq!(inv.state, InvariantState::CatchingUp, "{inv:?}");
    let v = wait_for(WAIT, "the broker's lag to grow while paused", || async {
        let v: TopicView = app.get("/api/topic").await;
        (lag(&v) > 300 && v.invariant.state == InvariantState::CatchingUp).then_some(v)
    })
    .await;
    assert!(v.invariant.lag > 0, "{:?}", v.invariant);
    let applied_paused = app.stats().applied;
    let resumed = command(&mut ws, "resume_consumption").await;
    assert!(!resumed.paused);
    app.producer.send(Command::Pause).await.expect("pause");
    let delivered = wait_for(WAIT, "the producer to settle", || async {
        let p = app.producer_counts();
        (p.sent == p.delivered + p.failed).then_some(p.delivered)
    })
    .await;
    let b = app.wait_applied(delivered, WAIT).await;
    assert!(b.stats.applied > applied_paused, "resumed");
    wait_for(WAIT, "lag to drain to 0", || async {
        let v: TopicView = app.get("/api/topic").await;
        (lag(&v) == 0 && v.latency.count > 0).then_some(())
    })
    .await;
    // A record from another producer (the original's script) is counted apart.
    let foreign = r#"{"account": 900, "transaction_id": "900-Credit-py1", "transaction_type": "Credit", "amount": 1, "new_balance": 101, "transaction_summary": {"Transactions for Customer ID 900": 1}}"#;
    common::raw_producer(&app.brokers)
        .send(
            rdkafka::producer::FutureRecord::to(&topic)
                .key("transaction")
                .payload(foreign),
            Duration::from_secs(10),
        )
        .await
        .expect("foreign record");
    let b = app.wait_applied(delivered + 1, WAIT).await;
    // The invariant holds: every acknowledged record of this run's producer applied, the nets
    // equal account by account.
    let v: TopicView = app.get("/api/topic").await;
    let inv = app.invariant();
    assert_eq!(inv.state, InvariantState::Holds, "{inv:?}");
    assert_eq!(
        (inv.acked, inv.applied, inv.foreign_records),
        (delivered, delivered, 1)
    );
    assert!(matches!(
        v.invariant.state,
        InvariantState::Holds | InvariantState::CatchingUp
    ));
    assert_eq!(b.stats.applied, delivered + 1);

    // Balances equal a recomputation from the topic, exactly.
    let records = read_topic(&app.brokers, &topic);
    assert_eq!(records.len() as u64, delivered + 1);
    let expected = recompute(&records);
    let b = app.balances().await;
    assert_eq!(b.stats.mismatches, 0);
    for a in &b.accounts {
        assert_eq!(
            expected.get(&a.account),
            Some(&(a.balance.minor(), a.count)),
            "account {}",
            a.account
        );
    }
    assert_eq!(
        b.accounts
            .iter()
            .map(|a| a.account)
            .collect::<BTreeSet<_>>(),
        expected.keys().copied().collect()
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_apache_kafka() {
    members_rebalance_and_balances_stay_exact(Broker::Apache).await;
}

/// A record that carries this server's producer id but was never acknowledged to its producer
/// (forged by another client) makes the counts differ for good once the calculator has read the
/// whole topic: the invariant reports it broken rather than "catching up" forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_record_breaks_the_invariant() {
    let topic = unique("forged");
    let app = spawn_app_with(Broker::Apache, &topic, |_| {}).await;
    app.producer
        .send(Command::Burst { count: 50 })
        .await
        .expect("burst");
    app.wait_applied(50, WAIT).await;
    wait_for(WAIT, "the invariant to hold", || async {
        (app.invariant().state == InvariantState::Holds).then_some(())
    })
    .await;
    let forged = format!(
        r#"{{"account": 1, "transaction_id": "1-Credit-forged", "transaction_type": "Credit", "amount": 5, "producer_id": "{}"}}"#,
        app.producer_id()
    );
    common::raw_producer(&app.brokers)
        .send(
            rdkafka::producer::FutureRecord::to(&topic)
                .key("1")
                .payload(&forged),
            Duration::from_secs(10),
        )
        .await
        .expect("forged record");
    let inv = wait_for(WAIT, "the invariant to break", || async {
        let i = app.invariant();
        (i.state == InvariantState::Broken).then_some(i)
    })
    .await;
    assert_eq!((inv.acked, inv.applied, inv.lag), (50, 51, -1), "{inv:?}");
    assert!(
        inv.describe()
            .contains("50 records acknowledged by Kafka, 51 applied")
    );
    app.shutdown().await;
}
