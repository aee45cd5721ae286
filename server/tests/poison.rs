//! The poison-pill lesson, on Apache Kafka, driven as the page
//! drives it (WebSocket commands): every kind of malformed record, and the last transaction
//! sent again with the same id and key, goes to the dead-letter topic; `/api/dead-letters`
//! reads each back with its reason and source position; balances do not move, the invariant
//! still holds, and the calculator goes on applying.

mod common;

use std::time::Duration;

use cashflow_shared::Transaction;
use cashflow_shared::command::Command;
use cashflow_shared::poison::{DeadLetters, Poison};
use cashflow_shared::protocol::ServerMsg;
use common::ws::{connect, reply, send};
use common::{Broker, by_account, read_topic, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(60);

async fn poison_goes_to_the_dead_letter_topic(broker: Broker) {
    let topic = unique("poison");
    let app = spawn_app_with(broker, &topic, |s| {
        s.paused = true;
        s.generator.accounts = 5;
    })
    .await;
    app.producer
        .send(Command::Burst { count: 50 })
        .await
        .expect("burst");
    app.invariant_holds(50, WAIT).await;
    let before = by_account(&app.balances().await);

    let mut ws = connect(&app).await;
    for (i, p) in Poison::ALL.into_iter().enumerate() {
        send(
            &mut ws,
            &format!(r#"{{"cmd":"inject","poison":"{}","id":{i}}}"#, p.name()),
        )
        .await;
        match reply(&mut ws).await {
            ServerMsg::Ack { id, .. } => assert_eq!(id, Some(i as u64)),
            other => panic!("{p:?}: {other:?}"),
        }
    }
    send(&mut ws, r#"{"cmd":"inject","poison":"arsenic","id":9}"#).await;
    match reply(&mut ws).await {
        ServerMsg::Error { message, .. } => {
            assert!(message.contains("unknown variant"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    let letters = wait_for(WAIT, "every injected record read back", || async {
        let d: DeadLetters = app.get("/api/dead-letters").await;
        (d.read >= Poison::ALL.len() as u64).then_some(d)
    })
    .await;
    assert_eq!(letters.read, Poison::ALL.len() as u64, "{letters:?}");
    let source = read_topic(&app.brokers, &topic);
    for p in Poison::ALL {
        let l = letters
            .newest
            .iter()
            .find(|l| l.reason.contains(p.reason()))
            .unwrap_or_else(|| panic!("no dead letter says {:?}: {letters:?}", p.reason()));
        let original = source
            .iter()
            .find(|r| r.partition == l.partition && r.offset == l.offset)
            .unwrap_or_else(|| panic!("{p:?}: no record at {}@{}", l.partition, l.offset));
        assert_eq!(l.bytes, original.payload.len() as u64, "{p:?}");
        assert!(l.preview.chars().count() <= 121, "{p:?}: bounded preview");
        if p == Poison::Duplicate {
            // Same id and key as a transaction applied before: the same partition, later.
            let dup = Transaction::parse(&original.payload).expect("a transaction");
            let first = source
                .iter()
                .find(|r| {
                    r.offset < l.offset
                        && Transaction::parse(&r.payload)
                            .is_ok_and(|t| t.transaction_id == dup.transaction_id)
                })
                .expect("the original transaction");
            assert_eq!(first.partition, l.partition);
            assert_eq!(first.key, original.key);
        }
    }
    assert_eq!(
        by_account(&app.balances().await),
        before,
        "balances did not move"
    );
    let stats = app.stats();
    assert_eq!(stats.dead_lettered, Poison::ALL.len() as u64);
    assert_eq!(stats.duplicate_ids, 1);

    // The calculator goes on, and the invariant is not disturbed by records that are not the
    // producer's.
    app.producer
        .send(Command::Burst { count: 20 })
        .await
        .expect("burst");
    app.invariant_holds(70, WAIT).await;
    app.shutdown().await;
}

on_apache_kafka!(
    apache_kafka_poison_goes_to_the_dead_letter_topic,
    poison_goes_to_the_dead_letter_topic
);
