//! "Reset the demo" on Apache Kafka and on the embedded broker, driven as the page drives it:
//! after lessons have run (a second member, random keys, the naive consumer, a poison pill), a
//! reset gives a fresh, empty topic, one member, keys by account, no naive consumer, every
//! check back to "not run", and generation resumes: the balances are then exactly those of the
//! new topic's records, nothing fails, and the invariant holds over them.

mod common;

use std::time::Duration;

use cashflow_shared::command::Command;
use cashflow_shared::lessons::{CaseState, LessonId};
use cashflow_shared::naive::NaiveState;
use cashflow_shared::ordering::KeyStrategy;
use cashflow_shared::poison::Poison;
use cashflow_shared::protocol::ServerMsg;
use common::ws::{connect, reply, send};
use common::{Broker, settled_exactly_once, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(90);

async fn reset_gives_a_fresh_demo(broker: Broker) {
    let app = spawn_app_with(broker, &unique("reset"), |s| {
        s.generator.accounts = 20;
        s.rate = cashflow::config::Rate::PerSecond(200.0);
    })
    .await;
    app.producer.send(Command::Start).await.expect("start");
    app.wait_applied(500, WAIT).await;
    let mut ws = connect(&app).await;
    for cmd in [
        r#"{"cmd":"add_member","id":1}"#,
        r#"{"cmd":"start_naive","delivery":"at_least_once","id":2}"#,
    ] {
        send(&mut ws, cmd).await;
        assert!(
            !matches!(reply(&mut ws).await, ServerMsg::Error { .. }),
            "{cmd}"
        );
    }
    app.producer
        .send(Command::SetKeys {
            keys: KeyStrategy::Random,
        })
        .await
        .expect("keys");
    app.producer
        .send(Command::Inject {
            poison: Poison::NotJson,
        })
        .await
        .expect("inject");
    wait_for(WAIT, "the poison lesson to turn", || async {
        let l = app.shared.lessons.get();
        (l.get(LessonId::Poison)?.experiment.state == CaseState::Happened).then_some(())
    })
    .await;
    let failed_before = app.shared.producer().failed;

    send(&mut ws, r#"{"cmd":"reset_demo","id":3}"#).await;
    assert!(matches!(
        reply(&mut ws).await,
        ServerMsg::Reset { id: Some(3) }
    ));
    send(&mut ws, r#"{"cmd":"reset_demo","id":4}"#).await;
    match reply(&mut ws).await {
        ServerMsg::Error { message, .. } => assert!(message.contains("under way"), "{message}"),
        other => panic!("a second reset at once: {other:?}"),
    }
    wait_for(WAIT, "the fresh demo", || async {
        let g = app.shared.generator()?;
        let l = app.shared.lessons.get();
        (app.shared.store().recreated >= 1
            && g.running
            && g.keys == KeyStrategy::ByAccount
            && app.shared.naive.get().state == NaiveState::Off
            && app.shared.group().members.len() == 1
            && l.lessons
                .iter()
                .all(|l| l.experiment.state != CaseState::Happened))
        .then_some(())
    })
    .await;
    // Generation goes on into the new topic.
    wait_for(WAIT, "records in the new topic", || async {
        (app.shared.ledger().stats().applied >= 300).then_some(())
    })
    .await;
    let records = settled_exactly_once(&app, failed_before).await;
    assert!(
        records.len() >= 300,
        "only the new topic's records: {}",
        records.len()
    );
    app.shutdown().await;
}

on_both_brokers!(
    apache_kafka_reset_gives_a_fresh_demo,
    embedded_reset_gives_a_fresh_demo,
    reset_gives_a_fresh_demo
);
