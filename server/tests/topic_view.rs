//! `GET /api/topic`: the topic's offsets and the groups reading it, from the broker. End
//! offsets equal what was written; cashflow's own groups and a foreign consumer group appear,
//! with members, their partitions, committed offsets and lag = end − committed.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cashflow_shared::api::TopicView;
use cashflow_shared::command::Command;
use common::{Broker, read_topic, spawn_app, unique, wait_for};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;

const WAIT: Duration = Duration::from_secs(60);

async fn topic_view_shows_offsets_groups_and_lag(broker: Broker) {
    let topic = unique("view");
    let app = spawn_app(broker, &topic).await;
    app.producer
        .send(Command::Burst { count: 600 })
        .await
        .expect("burst");
    app.wait_applied(600, WAIT).await;
    let ends: BTreeMap<i32, i64> = read_topic(&app.brokers, &topic)
        .iter()
        // Every partition, those without records at 0.
        .fold((0..6).map(|p| (p, 0)).collect(), |mut m, r| {
            let e = m.entry(r.partition).or_insert(0);
            *e = (*e).max(r.offset + 1);
            m
        });

    // A foreign consumer group reads 200 records, commits, and stays a member (on Apache Kafka;
    // on the embedded broker it reads assigned partitions, without joining: a member's join
    // there once hung under the full suite's load, and its assignments are not shown anyway).
    let foreign = unique("foreign");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &app.brokers)
        .set("group.id", &foreign)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    if matches!(broker, Broker::Apache) {
        consumer.subscribe(&[&topic]).expect("subscribe");
    } else {
        let mut all = rdkafka::TopicPartitionList::new();
        for p in 0..6 {
            all.add_partition_offset(&topic, p, rdkafka::Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&all).expect("assign");
    }
    let consumer = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + WAIT;
        let mut read = 0;
        while read < 200 {
            assert!(
                std::time::Instant::now() < deadline,
                "the foreign consumer read only {read}"
            );
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                assert!(m.offset() >= 0);
                read += 1;
            }
        }
        consumer
            .commit_consumer_state(CommitMode::Sync)
            .expect("commit");
        consumer
    })
    .await
    .expect("the foreign consumer");
    let committed: BTreeMap<i32, i64> = consumer
        .committed(Duration::from_secs(10))
        .expect("committed")
        .elements_for_topic(&topic)
        .iter()
        .filter_map(|e| {
            e.offset()
                .to_raw()
                .filter(|o| *o >= 0)
                .map(|o| (e.partition(), o))
        })
        .collect();
    assert!(!committed.is_empty());

    let view: TopicView = wait_for(WAIT, "the view of the topic and its groups", || async {
        let v: TopicView = app.get("/api/topic").await;
        eprintln!("VIEW {}", serde_json::to_string(&v).unwrap_or_default());
        let offsets_in = v
            .partitions
            .iter()
            .map(|p| (p.partition, p.end))
            .collect::<BTreeMap<_, _>>()
            == ends;
        let balance = v.groups.iter().find(|g| g.group.ends_with("-balance"))?;
        let f = v.groups.iter().find(|g| g.group == foreign)?;
        (offsets_in
            && balance.total_lag == 0
            && f.committed == committed
            && (f.members.len() == 1 || matches!(broker, Broker::Managed)))
        .then_some(v)
    })
    .await;
    assert_eq!(view.partitions.iter().map(|p| p.end).sum::<i64>(), 600);
    let f = view
        .groups
        .iter()
        .find(|g| g.group == foreign)
        .expect("foreign group");
    // The embedded broker's DescribeGroups names members but not their assignments.
    if matches!(broker, Broker::Apache) {
        let mut owned: Vec<i32> = f
            .members
            .iter()
            .flat_map(|m| m.partitions.clone())
            .collect();
        owned.sort();
        assert_eq!(
            owned,
            (0..6).collect::<Vec<_>>(),
            "its member holds every partition once"
        );
    }
    for p in &view.partitions {
        let from = committed.get(&p.partition).copied().unwrap_or(p.log_start);
        assert_eq!(
            f.lag[&p.partition],
            p.end - from,
            "lag = end − committed, partition {}",
            p.partition
        );
    }
    assert_eq!(f.total_lag, 600 - committed.values().sum::<i64>(), "{f:?}");
    let logger = view.groups.iter().find(|g| g.group.ends_with("-logger"));
    assert!(
        logger.is_some(),
        "cashflow's logging consumer's group: {:?}",
        view.groups
    );
    drop(consumer);
    app.shutdown().await;
}

on_apache_kafka!(
    topic_view_on_apache_kafka,
    topic_view_shows_offsets_groups_and_lag
);

/// Key → partition: every record went to `murmur2(key) mod 6` (the Java clients' partitioner,
/// which the page explains), and `/api/balances` shows each account on that partition.
async fn accounts_live_where_murmur2_says(broker: Broker) {
    use cashflow_shared::partitioner::partition_for;
    let topic = unique("keys");
    let app = spawn_app(broker, &topic).await;
    app.producer
        .send(Command::Burst { count: 300 })
        .await
        .expect("burst");
    let b = app.wait_applied(300, WAIT).await;
    let records = read_topic(&app.brokers, &topic);
    assert_eq!(records.len(), 300);
    for r in &records {
        let key = r.key.as_deref().expect("keyed by account");
        assert_eq!(
            Some(r.partition),
            partition_for(key, 6),
            "key {:?}",
            String::from_utf8_lossy(key)
        );
    }
    assert!(!b.accounts.is_empty());
    for a in &b.accounts {
        assert_eq!(
            a.partition,
            partition_for(a.account.to_string().as_bytes(), 6),
            "account {}",
            a.account
        );
    }
    app.shutdown().await;
}

on_apache_kafka!(
    accounts_live_where_murmur2_says_on_apache_kafka,
    accounts_live_where_murmur2_says
);
