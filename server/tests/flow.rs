//! The record flow the page animates: every dot the WebSocket sends is a real record (its
//! partition and offset hold, in the topic read by a separate client, the account and amount the
//! dot shows); at classroom rates every record is followed; at high rates at most ~20 a second.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cashflow_shared::Transaction;
use cashflow_shared::command::Command;
use cashflow_shared::flow::{EVERY_RECORD_UP_TO, FlowDot, SAMPLES_PER_SECOND};
use cashflow_shared::protocol::ServerMsg;
use common::ws::{connect, next};
use common::{Broker, read_topic, spawn_app_with, unique, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dot_is_a_real_record() {
    let topic = unique("flow");
    let app = spawn_app_with(Broker::Apache, &topic, |s| {
        s.rate = cashflow::config::Rate::PerSecond(3.0);
        s.generator.accounts = 5;
    })
    .await;
    let mut ws = connect(&app).await;
    app.producer.send(Command::Start).await.expect("start");
    // (partition, offset) → the latest state of that dot.
    let mut dots: BTreeMap<(i32, i64), FlowDot> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while dots.values().filter(|d| d.applied_ms.is_some()).count() < 16 {
        assert!(Instant::now() < deadline, "dots: {dots:?}");
        let flow = match next(&mut ws, Duration::from_secs(10)).await {
            ServerMsg::Snapshot(s) => s.flow,
            ServerMsg::Delta(d) => d.flow,
            _ => continue,
        };
        for d in flow {
            dots.insert((d.partition, d.offset), d);
        }
    }
    app.producer.send(Command::Pause).await.expect("pause");
    let delivered = wait_for(
        Duration::from_secs(30),
        "the producer to settle",
        || async {
            let p = app.producer_counts();
            (p.sent == p.delivered + p.failed).then_some(p.delivered)
        },
    )
    .await;
    app.wait_applied(delivered, Duration::from_secs(30)).await;

    let records: BTreeMap<(i32, i64), Transaction> = read_topic(&app.brokers, &topic)
        .into_iter()
        .map(|r| {
            let tx = Transaction::parse(&r.payload).expect("a transaction");
            ((r.partition, r.offset), tx)
        })
        .collect();
    for (pos, d) in &dots {
        let tx = records
            .get(pos)
            .unwrap_or_else(|| panic!("dot {pos:?} is not a record in the topic"));
        assert_eq!(tx.account, d.account, "{pos:?}");
        assert_eq!(tx.delta().minor(), d.delta, "{pos:?}");
        assert_eq!(tx.producer_id.as_deref(), Some(app.producer_id()));
        if d.applied_ms.is_some() {
            assert_eq!(d.member, Some(1), "applied by the only member");
        }
    }
    // At 3 records a second (≤ EVERY_RECORD_UP_TO) every record acknowledged between the
    // first dot and the last was followed.
    const { assert!(EVERY_RECORD_UP_TO >= 3) };
    let first = dots.values().map(|d| d.acked_ms).min().unwrap_or(0);
    let last = dots.values().map(|d| d.acked_ms).max().unwrap_or(0);
    let missing: Vec<_> = records
        .iter()
        .filter(|(pos, tx)| {
            !dots.contains_key(pos)
                && tx
                    .timestamp_ms
                    .is_some_and(|t| t > first + 500 && t < last - 1_500)
        })
        .map(|(pos, _)| *pos)
        .collect();
    assert!(
        missing.is_empty(),
        "records not followed at 3/s: {missing:?}"
    );

    // A burst far above classroom rates: a bounded sample, not every record.
    let mut ws = connect(&app).await;
    app.producer
        .send(Command::Burst { count: 3_000 })
        .await
        .expect("burst");
    let started = Instant::now();
    let mut burst_dots = std::collections::BTreeSet::new();
    while started.elapsed() < Duration::from_secs(3) {
        if let ServerMsg::Delta(d) = next(&mut ws, Duration::from_secs(10)).await {
            burst_dots.extend(
                d.flow
                    .iter()
                    .filter(|d| !dots.contains_key(&(d.partition, d.offset)))
                    .map(|d| (d.partition, d.offset)),
            );
        }
    }
    let applied = app
        .wait_applied(delivered + 3_000, Duration::from_secs(30))
        .await;
    assert_eq!(applied.stats.applied, delivered + 3_000);
    assert!(!burst_dots.is_empty(), "the burst is sampled");
    // 3 000 records within the window, at most SAMPLES_PER_SECOND followed per second.
    assert!(
        burst_dots.len() <= 4 * SAMPLES_PER_SECOND as usize,
        "{} records followed in 3 s: the sample is bounded",
        burst_dots.len()
    );
    app.shutdown().await;
}
