//! The replay lesson on Apache Kafka, driven as the page drives it:
//! a fresh calculator in a group of its own reads the topic from its log start and converges,
//! partition by partition, to the live balances (at the same offsets); once over, its group is
//! deleted. It converges while the producer keeps writing too (it chases the live calculator).

mod common;

use std::time::Duration;

use cashflow_shared::api::TopicView;
use cashflow_shared::command::Command;
use cashflow_shared::protocol::ServerMsg;
use cashflow_shared::replay::{ReplayState, ReplayStatus};
use common::ws::{Ws, connect, reply, send};
use common::{Broker, TestApp, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(90);

async fn start(ws: &mut Ws) -> ServerMsg {
    send(ws, r#"{"cmd":"start_replay","id":1}"#).await;
    reply(ws).await
}

async fn converged(app: &TestApp, group: &str) -> ReplayStatus {
    wait_for(WAIT, "the replay to converge", || async {
        let r = app.replay();
        assert_eq!(r.group, group);
        assert!(
            !matches!(r.state, ReplayState::Failed | ReplayState::Partial),
            "{r:?}"
        );
        (r.state == ReplayState::Converged).then_some(r)
    })
    .await
}

async fn replay_converges(broker: Broker) {
    let topic = unique("replay");
    let app = spawn_app_with(broker, &topic, |s| {
        s.paused = true;
        s.generator.accounts = 20;
        s.rate = cashflow::config::Rate::PerSecond(200.0);
    })
    .await;
    app.producer
        .send(Command::Burst { count: 3_000 })
        .await
        .expect("burst");
    app.wait_applied(3_000, WAIT).await;

    let mut ws = connect(&app).await;
    let group = match start(&mut ws).await {
        ServerMsg::Replay { replay, .. } => {
            assert_eq!(replay.state, ReplayState::Running);
            assert!(replay.group.contains("-replay-"), "{}", replay.group);
            replay.group
        }
        other => panic!("{other:?}"),
    };
    let r = converged(&app, &group).await;
    assert_eq!(
        (r.read, r.total, r.matched, r.partitions),
        (3_000, 3_000, 6, 6)
    );
    assert!(r.from.values().all(|o| *o == 0));
    println!("{broker:?}: replayed {} records in {} ms", r.read, r.ms);
    if matches!(broker, Broker::Apache) {
        // Over: its group is gone from the broker.
        wait_for(WAIT, "the replay's group to be deleted", || async {
            let v: TopicView = app.get("/api/topic").await;
            (v.taken_ms > r.started_ms + r.ms as i64 && v.groups.iter().all(|g| g.group != group))
                .then_some(())
        })
        .await;
    }

    // While the producer writes: it chases the live calculator and still converges.
    app.producer.send(Command::Start).await.expect("start");
    let group = match start(&mut ws).await {
        ServerMsg::Replay { replay, .. } => replay.group,
        other => panic!("{other:?}"),
    };
    // A second one is refused while it runs (unless the first converged in the meantime).
    let group = match start(&mut ws).await {
        ServerMsg::Error { message, .. } => {
            assert!(message.contains("running already"), "{message}");
            group
        }
        ServerMsg::Replay { replay, .. } => replay.group,
        other => panic!("{other:?}"),
    };
    let r = converged(&app, &group).await;
    assert!(r.read > 3_000, "{r:?}");
    app.shutdown().await;
}

on_apache_kafka!(apache_kafka_replay_converges, replay_converges);
