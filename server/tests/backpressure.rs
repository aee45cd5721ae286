//! The back-pressure and batching lesson, on Apache Kafka: with a
//! max lag set and the calculator paused, the producer stops once the calculator is that far
//! behind and goes on when it catches up; new batching creates the producer again (the old one
//! flushed first), and nothing is lost or doubled across the switch (the invariant holds).

mod common;

use std::time::Duration;

use cashflow_shared::command::Command;
use cashflow_shared::invariant::InvariantState;
use common::{Broker, TestApp, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(60);
const MAX_LAG: u64 = 300;

fn held(app: &TestApp) -> bool {
    app.generator().is_some_and(|g| g.held_by_lag)
}

async fn back_pressure_and_batching(broker: Broker) {
    let topic = unique("backpressure");
    let app = spawn_app_with(broker, &topic, |s| {
        s.rate = cashflow::config::Rate::PerSecond(1_000.0);
        s.generator.accounts = 20;
    })
    .await;
    app.producer
        .send(Command::SetMaxLag {
            max_lag: Some(MAX_LAG),
        })
        .await
        .expect("max lag");
    app.producer.send(Command::Start).await.expect("start");
    app.calculator.set_paused(true);
    wait_for(WAIT, "the producer to hold", || async {
        held(&app).then_some(())
    })
    .await;
    // Held, it stays near the limit (one 10 ms tick's records may pass it) while the
    // calculator stands still: sampled for 2 s.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut worst = 0;
    for _ in 0..10 {
        tick.tick().await;
        worst = worst.max(app.own_lag());
        assert!(held(&app));
    }
    println!("{broker:?}: held at lag {worst} (max {MAX_LAG})");
    assert!(
        (MAX_LAG as i64..MAX_LAG as i64 + 100).contains(&worst),
        "lag {worst} while held"
    );

    // The calculator catches up: the producer goes on.
    let delivered = app.producer_counts().delivered;
    app.calculator.set_paused(false);
    wait_for(WAIT, "the producer to go on", || async {
        (!held(&app) && app.producer_counts().delivered > delivered + 500).then_some(())
    })
    .await;

    // New batching: a new producer, the old one flushed; nothing lost or doubled.
    let (status, _) = app
        .producer
        .send(Command::SetBatching {
            linger_ms: 50,
            batch_size: 65_536,
        })
        .await
        .expect("batching");
    assert_eq!((status.linger_ms, status.batch_size), (50, 65_536));
    wait_for(WAIT, "the producer to be created again", || async {
        let p = app.producer_counts();
        (p.reconfigured == 1).then_some(())
    })
    .await;
    let delivered = app.producer_counts().delivered;
    wait_for(WAIT, "deliveries with the new batching", || async {
        (app.producer_counts().delivered > delivered + 500).then_some(())
    })
    .await;
    app.producer.send(Command::Pause).await.expect("pause");
    let p = wait_for(WAIT, "every record delivered", || async {
        let p = app.producer_counts();
        (p.sent == p.delivered + p.failed).then_some(p)
    })
    .await;
    assert_eq!(p.failed, 0);
    wait_for(WAIT, "the invariant to hold over every record", || async {
        let i = app.invariant();
        (i.state == InvariantState::Holds && i.acked == p.delivered).then_some(())
    })
    .await;
    app.shutdown().await;
}

on_apache_kafka!(
    apache_kafka_back_pressure_and_batching,
    back_pressure_and_batching
);
