//! Graceful shutdown stops the pieces in the documented order, each recording its own stop:
//! the producer flushes first, then the consumers commit, then the final snapshots are taken of
//! the state they left, then the HTTP server stops, then (when cashflow runs it) the managed broker.

mod common;

use cashflow_shared::command::Command;
use common::{Broker, spawn_app, unique};

async fn stops_in_order(broker: Broker) {
    let app = spawn_app(broker, &unique("shutdown")).await;
    // Stopped while a burst is still being produced and consumed.
    app.producer
        .send(Command::Burst { count: 20_000 })
        .await
        .expect("burst");
    common::wait_for(
        std::time::Duration::from_secs(60),
        "something applied",
        || async { (app.stats().applied > 0).then_some(()) },
    )
    .await;
    let stops = app.shutdown_stops().await;
    let at = |what: &str| {
        stops
            .iter()
            .position(|s| s == what)
            .unwrap_or_else(|| panic!("{what:?} not in {stops:?}"))
    };
    let producer = at("producer flushed");
    let consumers = at("logging consumer committed").max(at("balance calculator committed"));
    let snapshots = at("final snapshots written");
    let http = at("http server stopped");
    assert!(producer < at("logging consumer committed"), "{stops:?}");
    assert!(producer < at("balance calculator committed"), "{stops:?}");
    assert!(consumers < snapshots, "{stops:?}");
    assert!(snapshots < http, "{stops:?}");
    if matches!(broker, Broker::Managed) {
        assert!(http < at("managed broker stopped"), "{stops:?}");
    }
}

on_apache_kafka!(stops_in_order_on_apache_kafka, stops_in_order);

/// The managed broker stops last, after the HTTP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_in_order_on_the_managed_broker() {
    stops_in_order(Broker::Managed).await;
}
