//! The replication lesson on the 3-node Apache Kafka cluster cashflow runs itself
//! (`--local-brokers 3`: replication factor 3, min.insync.replicas=2), driven as the presenter
//! drives it, over the WebSocket: under load, the node leading partition 0 is stopped. Its
//! partitions get new leaders from the in-sync replicas, a second node's stop is refused (the
//! KRaft quorum), nothing is lost or written twice, and the node, started again, rejoins every
//! partition's in-sync replicas. Then another node is killed with SIGKILL, as a crash: cashflow
//! starts it again by itself, and still nothing is lost.

mod common;

use std::time::{Duration, Instant};

use cashflow_shared::api::TopicView;
use cashflow_shared::command::Command;
use cashflow_shared::outage::NodeState;
use cashflow_shared::protocol::ServerMsg;
use common::ws::{connect, reply, send};
use common::{Broker, TestApp, settled_exactly_once, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(120);

async fn view(app: &TestApp) -> TopicView {
    app.get("/api/topic").await
}

/// Waits until every partition has a leader other than `gone` and `gone` is in no ISR.
async fn led_without(app: &TestApp, gone: i32) -> TopicView {
    wait_for(WAIT, "new leaders from the in-sync replicas", || async {
        let v = view(app).await;
        (v.partitions.len() == 6
            && v.partitions
                .iter()
                .all(|p| p.leader > 0 && p.leader != gone && !p.isr.contains(&gone)))
        .then_some(v)
    })
    .await
}

async fn back_in_every_isr(app: &TestApp, node: i32) {
    wait_for(WAIT, "the node back in every ISR", || async {
        let v = view(app).await;
        (v.partitions.len() == 6 && v.partitions.iter().all(|p| p.isr.contains(&node)))
            .then_some(())
    })
    .await;
}

async fn deliveries_go_on(app: &TestApp) {
    let then = app.producer_counts().delivered;
    wait_for(WAIT, "deliveries to go on", || async {
        (app.producer_counts().delivered > then + 400).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presenter_stops_a_leader_node_and_nothing_is_lost() {
    let app = spawn_app_with(Broker::Managed, &unique("cluster"), |s| {
        s.local_brokers = 3;
        s.replication_factor = 3;
        s.kafka_heap_mb = 256;
        s.generator.accounts = 20;
        s.rate = cashflow::config::Rate::PerSecond(200.0);
    })
    .await;
    let broker = app.managed_broker().expect("cashflow runs the cluster");
    // Asked for port 0: three free ports, none of them privileged (not 0 + 1 and 0 + 2).
    let ports: std::collections::BTreeSet<u16> = app
        .brokers
        .split(',')
        .map(|a| {
            a.rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .expect("port")
        })
        .collect();
    assert!(
        ports.len() == 3 && ports.iter().all(|p| *p > 1024),
        "{}",
        app.brokers
    );
    app.producer.send(Command::Start).await.expect("start");
    app.wait_applied(300, WAIT).await;
    let before = wait_for(
        WAIT,
        "three brokers, each partition fully in sync",
        || async {
            let v = view(&app).await;
            (v.brokers == [1, 2, 3]
                && v.partitions.len() == 6
                && v.partitions
                    .iter()
                    .all(|p| p.isr.len() == 3 && p.leader > 0))
            .then_some(v)
        },
    )
    .await;
    let victim = before.partitions[0].leader;
    let led: Vec<i32> = before
        .partitions
        .iter()
        .filter(|p| p.leader == victim)
        .map(|p| p.partition)
        .collect();

    // Stopped from the page, as the presenter does.
    let mut ws = connect(&app).await;
    let stopped = Instant::now();
    send(
        &mut ws,
        &format!(r#"{{"cmd":"stop_node","node":{victim},"id":1}}"#),
    )
    .await;
    match reply(&mut ws).await {
        ServerMsg::Outage { outage, .. } => {
            let n = &outage.nodes[victim as usize - 1];
            assert_eq!(n.state, NodeState::Stopped, "{outage:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(broker.node_pid(victim as u8), None, "its JVM has exited");
    // A second node while one is down: refused, with the reason.
    let other = if victim == 3 { 1 } else { victim + 1 };
    send(
        &mut ws,
        &format!(r#"{{"cmd":"stop_node","node":{other},"id":2}}"#),
    )
    .await;
    match reply(&mut ws).await {
        ServerMsg::Error { message, .. } => {
            assert!(message.contains("quorum"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        broker.node_pid(other as u8).is_some(),
        "node {other} still runs"
    );
    let moved = led_without(&app, victim).await;
    let moved_after = stopped.elapsed();
    for p in &led {
        let now = &moved.partitions[*p as usize];
        assert!(
            before.partitions[*p as usize].isr.contains(&now.leader),
            "partition {p}'s new leader {} was in sync",
            now.leader
        );
    }
    // Producing goes on with two in-sync replicas (min.insync.replicas=2), and the lesson's
    // check turns from the data.
    deliveries_go_on(&app).await;
    wait_for(WAIT, "the outage lesson's check", || async {
        let l = app.lessons();
        let o = l.get(cashflow_shared::lessons::LessonId::Outage)?;
        (o.experiment.state == cashflow_shared::lessons::CaseState::Happened).then_some(())
    })
    .await;

    // Started again from the page: it catches up and rejoins every in-sync replica set.
    let started = Instant::now();
    send(
        &mut ws,
        &format!(r#"{{"cmd":"start_node","node":{victim},"id":3}}"#),
    )
    .await;
    match reply(&mut ws).await {
        ServerMsg::Outage { outage, .. } => {
            let n = &outage.nodes[victim as usize - 1];
            assert_eq!(n.state, NodeState::Running, "{outage:?}");
            assert!(n.start_ms > 0, "{n:?}");
        }
        other => panic!("{other:?}"),
    }
    back_in_every_isr(&app, victim).await;
    let rejoined_after = started.elapsed();

    // A crash: node `other` killed with SIGKILL; cashflow starts it again by itself.
    let pid = broker.node_pid(other as u8).expect("running");
    // SAFETY: a plain kill(2) of the JVM this test's cashflow started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for(WAIT, "the killed node started again", || async {
        broker
            .node_pid(other as u8)
            .filter(|p| *p != pid)
            .map(|_| ())
    })
    .await;
    assert_eq!(broker.restarts(), 1);
    back_in_every_isr(&app, other).await;
    deliveries_go_on(&app).await;

    let records = settled_exactly_once(&app, 0).await;
    let delivered = app.producer_counts().delivered;
    assert_eq!(records.len() as u64, delivered, "none lost");
    println!(
        "3-node cluster run by cashflow: node {victim} (leader of {led:?}) stopped from the page; \
         leaders moved after {:.1} s; started again, back in every ISR after {:.1} s; node \
         {other} killed and restarted by cashflow; {delivered} transactions, 0 lost, 0 written \
         twice",
        moved_after.as_secs_f64(),
        rejoined_after.as_secs_f64(),
    );
    drop(broker);
    app.shutdown().await;
}
