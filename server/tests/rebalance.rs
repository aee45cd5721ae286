//! Two cashflow instances in one consumer group on Apache Kafka: when the second joins, the
//! first's revoked partitions are committed and the newcomer catches them up before applying;
//! when it leaves, the first gets them back and catches up what the second applied meanwhile.
//! The first's balances end equal to a recomputation from the topic.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cashflow_shared::command::Command;
use common::{Broker, read_topic, spawn_app, spawn_app_with, unique, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_moving_between_instances_are_caught_up_before_applying() {
    let topic = unique("rebalance");
    let a = spawn_app_with(Broker::Apache, &topic, |s| {
        s.rate = cashflow::config::Rate::PerSecond(400.0);
        s.generator.accounts = 24;
    })
    .await;
    a.producer.send(Command::Start).await.expect("start");
    wait_for(Duration::from_secs(60), "A to apply records", || async {
        (a.stats().applied > 300).then_some(())
    })
    .await;

    // B: same topic and group, generating nothing. Everything it applies beyond what the topic
    // held when it started comes from partitions the group gave it.
    let at_b_start = a.producer_counts().sent;
    let b = spawn_app(Broker::Apache, &topic).await;
    wait_for(
        Duration::from_secs(60),
        "B to own partitions and apply records live",
        || async { (b.stats().applied > at_b_start + 400).then_some(()) },
    )
    .await;
    // The two split the partitions between them (what the page shows as owned).
    wait_for(Duration::from_secs(30), "the partitions split", || async {
        let (pa, pb) = (a.assigned(), b.assigned());
        (!pa.is_empty() && !pb.is_empty() && pa.is_disjoint(&pb) && pa.len() + pb.len() == 6)
            .then_some(())
    })
    .await;
    assert!(b.partition_views().iter().any(|p| p.owned && p.records > 0));
    let b_stats = b.stats();
    assert_eq!(
        b_stats.mismatches, 0,
        "B computes what the producer computed"
    );
    // B leaves (final commit); A gets its partitions back and must catch up first.
    b.shutdown().await;

    wait_for(Duration::from_secs(30), "A to own all 6 again", || async {
        (a.assigned().len() == 6).then_some(())
    })
    .await;
    let sent = a.producer_counts().sent;
    wait_for(Duration::from_secs(60), "A to produce more", || async {
        (a.producer_counts().delivered > sent + 400).then_some(())
    })
    .await;
    a.producer.send(Command::Pause).await.expect("pause");
    wait_for(Duration::from_secs(60), "every delivery report", || async {
        let p = a.producer_counts().clone();
        (p.delivered + p.failed == p.sent).then_some(())
    })
    .await;
    assert_eq!(a.producer_counts().failed, 0);

    let records = read_topic(&a.brokers, a.topic());
    let mut ends = BTreeMap::new();
    for r in &records {
        ends.insert(r.partition, r.offset + 1);
    }
    wait_for(
        Duration::from_secs(60),
        "A to handle every record",
        || async {
            let next = a.next_offsets();
            ends.iter()
                .all(|(p, end)| next.get(p).copied().unwrap_or(0) == *end)
                .then_some(())
        },
    )
    .await;
    let got: BTreeMap<u32, (i64, u64)> = a
        .ledger_balances(0, 10_000)
        .accounts
        .iter()
        .map(|b| (b.account, (b.balance.minor(), b.count)))
        .collect();
    assert_eq!(
        got,
        common::recompute(&records),
        "A's balances equal the topic's"
    );
    let stats = a.stats();
    assert_eq!(
        stats.applied,
        records.len() as u64,
        "each record applied once"
    );
    assert_eq!(stats.mismatches, 0, "A's producer view stayed consistent");
    a.shutdown().await;
}
