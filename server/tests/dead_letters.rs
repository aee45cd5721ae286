//! Dead letters under pressure: a flood of bad records is dead-lettered exactly once each
//! without holding the good records back for long; a record too large for the dead-letter topic
//! goes there truncated (original size in a header); one the topic cannot take at all is
//! counted as failed and the calculator goes on.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use cashflow_shared::api::Balances;
use common::{Broker, TestApp, read_topic, spawn_app, spawn_app_with, unique, wait_for};
use rdkafka::ClientConfig;

const WAIT: Duration = Duration::from_secs(120);

async fn balances(app: &TestApp) -> Balances {
    app.balances().await
}

fn good(account: u32, id: &str) -> String {
    format!(
        r#"{{"account":{account},"transaction_id":"{id}","transaction_type":"Credit","amount":1}}"#
    )
}

fn write_all(brokers: &str, topic: &str, records: &[(String, Vec<u8>)]) {
    common::write_records(brokers, topic, records.iter().cloned());
}

/// Creates `topic` (6 partitions) with one configuration value, before cashflow does.
async fn create_topic(brokers: &str, topic: &str, key: &str, value: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    let r = admin
        .create_topics(
            [&NewTopic::new(topic, 6, TopicReplication::Fixed(1)).set(key, value)],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
}

/// 20 000 bad records from a misconfigured client, in a few runs between good ones: every bad
/// record is in the dead-letter topic exactly once, every good one is applied, and the
/// calculator's committed position reaches the end.
async fn a_flood_of_bad_records(broker: Broker) {
    let topic = unique("flood");
    let app = spawn_app(broker, &topic).await;
    let bad = 20_000usize;
    let mut records = Vec::new();
    for i in 0..bad {
        if i % 5_000 == 0 {
            records.push((
                (i % 7).to_string(),
                good(1 + (i % 7) as u32, &format!("g{i}")).into_bytes(),
            ));
        }
        records.push(((i % 7).to_string(), format!("garbage {i}").into_bytes()));
    }
    let goods = records.len() - bad;
    let started = Instant::now();
    write_all(&app.brokers, &topic, &records);
    let b = wait_for(WAIT, "every record handled", || async {
        let b = balances(&app).await;
        (b.malformed as usize == bad && b.stats.applied as usize == goods).then_some(b)
    })
    .await;
    let elapsed = started.elapsed();
    println!("{broker:?}: {bad} bad records written and dead-lettered in {elapsed:?}");
    assert_eq!(b.stats.dead_letter_failed, 0);
    let letters = wait_for(WAIT, "the dead letters", || async {
        let r = read_topic(&app.brokers, &format!("{topic}.dlq"));
        (r.len() >= bad).then_some(r)
    })
    .await;
    assert_eq!(letters.len(), bad, "each bad record once");
    let positions: HashSet<(String, String)> = letters
        .iter()
        .map(|l| {
            let h = |k: &str| {
                l.headers
                    .iter()
                    .find(|(hk, _)| hk == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (h("cashflow.source.partition"), h("cashflow.source.offset"))
        })
        .collect();
    assert_eq!(positions.len(), bad, "no source position twice");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_kafka_a_flood_of_bad_records() {
    a_flood_of_bad_records(Broker::Apache).await;
}

/// Full batches (the records wait in the topic) with malformed records and duplicate ids
/// inside: the calculator applies each batch in runs under one ledger lock up to the first
/// record that needs more, then one by one (`Calculator::prepare`). Every good record is applied
/// exactly once, every bad one dead-lettered, and every balance is its account's good records'
/// sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_batches_with_bad_records_inside_stay_exact() {
    let topic = unique("full-batches");
    let app = spawn_app_with(Broker::Apache, &topic, |s| {
        // The records wait in the topic, so the member reads them in full batches.
        s.calculator_paused = true;
    })
    .await;
    let opening = app.balances().await.opening_balance.minor();
    let (n, accounts) = (30_000u32, 50u32);
    let bad_at = |i: u32| i % 1_999 == 7;
    // A good record's id again, 50 records later: same account, same partition, in the window.
    // (Never another duplicate's: 50 is no multiple of 2 503.)
    let dup_at = |i: u32| i >= 50 && i % 2_503 == 11 && !bad_at(i - 50);
    let mut expected: BTreeMap<u32, i64> = BTreeMap::new();
    let (mut records, mut bad, mut dups) = (Vec::new(), 0u64, 0u64);
    for i in 0..n {
        let account = 1 + i % accounts;
        let value = if bad_at(i) {
            bad += 1;
            format!("garbage {i}")
        } else {
            let of = if dup_at(i) { i - 50 } else { i };
            let (ty, amount) = (if of % 3 == 0 { "Debit" } else { "Credit" }, 1 + of % 9);
            if dup_at(i) {
                dups += 1;
            } else {
                let delta = i64::from(amount) * 100 * if ty == "Debit" { -1 } else { 1 };
                *expected.entry(account).or_insert(opening) += delta;
            }
            format!(
                r#"{{"account":{account},"transaction_id":"pipe-{of}","transaction_type":"{ty}","amount":{amount}}}"#
            )
        };
        records.push((account.to_string(), value.into_bytes()));
    }
    assert!(bad > 10 && dups > 10);
    write_all(&app.brokers, &topic, &records);
    app.set_paused(false);
    let goods = u64::from(n) - bad - dups;
    let b = wait_for(WAIT, "every record handled", || async {
        let b = balances(&app).await;
        (b.stats.applied + b.malformed >= u64::from(n)).then_some(b)
    })
    .await;
    assert_eq!(
        (b.stats.applied, b.malformed, b.stats.duplicate_ids),
        (goods, bad + dups, dups)
    );
    let got: BTreeMap<u32, i64> = b
        .accounts
        .iter()
        .map(|a| (a.account, a.balance.minor()))
        .collect();
    assert_eq!(got, expected, "every balance is its good records' sum");
    app.shutdown().await;
}

/// A dead-letter topic that takes at most 4 KiB a record: a 10 KB bad record goes there
/// truncated, with its original size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_dead_letter_is_truncated() {
    let topic = unique("dlqlarge");
    let dlq = format!("{topic}.dlq");
    create_topic(&common::apache_kafka(), &dlq, "max.message.bytes", "4096").await;
    let app = spawn_app(Broker::Apache, &topic).await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(10_000)).into_bytes();
    write_all(
        &app.brokers,
        &topic,
        &[
            ("1".into(), big.clone()),
            ("1".into(), good(1, "a").into_bytes()),
        ],
    );
    let b = wait_for(WAIT, "the large record dead-lettered", || async {
        let b = balances(&app).await;
        (b.malformed == 1 && b.stats.applied == 1).then_some(b)
    })
    .await;
    assert_eq!(b.stats.dead_letter_failed, 0);
    // `malformed` counts the letter when it is decided; it is in the topic once acknowledged.
    let letters = wait_for(WAIT, "the letter in the dead-letter topic", || async {
        let l = read_topic(&app.brokers, &dlq);
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(letters.len(), 1);
    let header = |k: &str| {
        letters[0]
            .headers
            .iter()
            .find(|(hk, _)| hk == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("cashflow.original.size"),
        Some(big.len().to_string())
    );
    assert!(header("cashflow.truncated").is_some());
    assert_eq!(letters[0].payload, big[..1024]);
    app.shutdown().await;
}

/// A dead-letter topic that cannot take the letter even truncated (at most 200 bytes a record):
/// the bad record is counted as failed, and the good records after it are applied all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_dead_letter_is_counted_and_passed() {
    let topic = unique("dlqsmall");
    create_topic(
        &common::apache_kafka(),
        &format!("{topic}.dlq"),
        "max.message.bytes",
        "200",
    )
    .await;
    let app = spawn_app(Broker::Apache, &topic).await;
    write_all(
        &app.brokers,
        &topic,
        &[
            ("1".into(), "not json ".repeat(40).into_bytes()),
            ("1".into(), good(1, "b").into_bytes()),
            ("2".into(), good(2, "c").into_bytes()),
        ],
    );
    let b = wait_for(WAIT, "the unwritable dead letter counted", || async {
        let b = balances(&app).await;
        (b.stats.dead_letter_failed == 1 && b.stats.applied == 2).then_some(b)
    })
    .await;
    assert_eq!(b.malformed, 1);
    app.shutdown().await;
}
