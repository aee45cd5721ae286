//! The balance calculator's state store: a restart reads the newest snapshot plus a short tail
//! (counted, not timed), falls back to replaying the topic when the changelog is gone or
//! unreadable, finishes on partitions that end in transaction markers, notices a re-created
//! topic, and can be stopped in the middle of a long restore.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cashflow::Settings;
use cashflow_shared::api::{Balances, Health, ProducerStats, RestoreProgress};
use cashflow_shared::command::Command;
use cashflow_shared::invariant::InvariantState;
use cashflow_shared::poison::{DeadLetters, Poison};
use cashflow_shared::protocol::ServerMsg;
use common::{
    Broker, TestApp, apache_kafka, by_account, read_topic, spawn_app_with, unique, wait_for,
};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, FutureRecord, Producer, ThreadedProducer};

const WAIT: Duration = Duration::from_secs(120);
/// Snapshot every N records of a partition; the id window is W offsets.
const N: i64 = 1_000;
const W: i64 = 200;
const ACCOUNTS: u32 = 600;
const CHUNK: usize = 50;

async fn get<T: serde::de::DeserializeOwned>(app: &TestApp, path: &str) -> T {
    app.get(path).await
}

/// Waits until the store has restored; the restore's figures.
async fn restored(app: &TestApp) -> RestoreProgress {
    wait_for(WAIT, "the restore to finish", || async {
        let h: Health = get(app, "/health").await;
        (h.status == "ok").then_some(h.store.restore?)
    })
    .await
}

async fn wait_applied(app: &TestApp, n: u64) -> Balances {
    app.wait_applied(n, WAIT).await
}

/// A server on `topic` that produced and applied `total` records: it, and its balances then.
async fn filled(
    broker: Broker,
    topic: &str,
    tweak: impl FnOnce(&mut Settings),
    total: u64,
) -> (TestApp, Balances) {
    let app = spawn_app_with(broker, topic, tweak).await;
    app.producer
        .send(Command::Burst { count: total })
        .await
        .expect("burst");
    wait_applied(&app, total).await;
    let before = get(&app, "/api/balances").await;
    (app, before)
}

/// Settings for the store tests: small snapshots intervals so a modest topic is many of them.
fn store_settings(dir: PathBuf) -> impl Fn(&mut Settings) + Clone {
    move |s: &mut Settings| {
        s.store.every_records = N;
        s.store.chunk_accounts = CHUNK;
        s.id_window = W;
        s.generator.accounts = ACCOUNTS;
        s.data_dir = Some(dir.clone());
    }
}

/// Deletes `topic` (a running cashflow creates it again).
async fn admin_delete(brokers: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let r = admin.delete_topics(&[topic], &opts).await.expect("delete");
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
}

/// Deletes `topic` and waits until it is gone (nothing creates it again meanwhile).
async fn admin_delete_topic(brokers: &str, topic: &str) {
    use rdkafka::admin::AdminClient;
    use rdkafka::client::DefaultClientContext;
    admin_delete(brokers, topic).await;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    wait_for(Duration::from_secs(30), "the topic to be gone", || async {
        let m = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()?;
        m.topics()
            .iter()
            .all(|t| t.partitions().is_empty() || t.error().is_some())
            .then_some(())
    })
    .await;
}

/// 10 × N records per partition, a restart: every partition comes from a snapshot, at most
/// 2 × N records per partition are read again, a few changelog records per partition, and the
/// balances are exactly those before, and so is the invariant (the same producer id, both of
/// its sides restored). Then, with the changelog deleted, a full replay (with a warning) gives
/// the same balances.
async fn restart_reads_state_plus_a_short_tail(broker: Broker) {
    let topic = unique("store");
    let dir = std::env::temp_dir().join(unique("cashflow-store"));
    let tweak = store_settings(dir.clone());
    let total = 10 * N as u64 * 6;
    let (app, before) = filled(broker, &topic, tweak.clone(), total).await;
    wait_for(WAIT, "snapshots taken while running", || async {
        (app.store().snapshots_written >= 6).then_some(())
    })
    .await;
    app.invariant_holds(total, WAIT).await;
    let producer = app.producer_id().to_owned();
    let brokers = app.brokers.clone();
    app.shutdown().await;

    let app = spawn_app_with(broker, &topic, tweak.clone()).await;
    let r = restored(&app).await;
    println!("{broker:?} restart after {total} records: {r:?}");
    assert_eq!(r.partitions, 6);
    assert_eq!(r.from_snapshot, 6, "every partition from a snapshot");
    for (p, n) in &r.source_records_by_partition {
        assert!(*n as i64 <= 2 * N, "partition {p}: {n} records read again");
    }
    assert!(
        r.changelog_records <= 6 * 20,
        "{} changelog records read for {ACCOUNTS} accounts in chunks of {CHUNK}",
        r.changelog_records
    );
    let after: Balances = get(&app, "/api/balances").await;
    assert_eq!(by_account(&after), by_account(&before));
    assert_eq!(after.next_offsets, before.next_offsets);
    assert_eq!(after.stats.applied, before.stats.applied);
    // The invariant goes on too: the same producer, and both sides as the last run left them
    // (restored, not recounted from zero), before anything new is produced.
    assert_eq!(app.producer_id(), producer, "the producer id is kept");
    let inv = app.invariant();
    assert_eq!(
        (inv.state, inv.acked, inv.applied, inv.foreign_records),
        (InvariantState::Holds, total, total, 0),
        "{inv:?}"
    );
    // It goes on exactly from there.
    app.producer
        .send(Command::Burst { count: 600 })
        .await
        .expect("burst");
    let b = wait_applied(&app, total + 600).await;
    app.invariant_holds(total + 600, WAIT).await;
    let records = read_topic(&app.brokers, &topic);
    let expected = common::recompute(&records);
    assert_eq!(by_account(&b), expected);
    assert_eq!(
        b.stats.mismatches, 0,
        "the producer's view was restored too"
    );
    let brokers = if matches!(broker, Broker::Apache) {
        brokers
    } else {
        app.brokers.clone()
    };
    app.shutdown().await;

    // No changelog at all: a full replay, and the same balances.
    if matches!(broker, Broker::Apache) {
        admin_delete_topic(&brokers, &format!("{topic}.balances")).await;
        let app = spawn_app_with(broker, &topic, tweak.clone()).await;
        let r = restored(&app).await;
        assert_eq!(r.from_snapshot, 0);
        assert_eq!(
            r.source_records,
            records.len() as u64,
            "replayed the whole topic"
        );
        let again: Balances = get(&app, "/api/balances").await;
        assert_eq!(by_account(&again), expected);
        // Without the store the last run's producer is not known: its records are foreign.
        let inv = app.invariant();
        assert_ne!(app.producer_id(), producer);
        assert_eq!(
            (inv.state, inv.acked, inv.foreign_records),
            (InvariantState::Idle, 0, records.len() as u64),
            "{inv:?}"
        );
        app.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

on_apache_kafka!(
    apache_kafka_restart_reads_state_plus_a_short_tail,
    restart_reads_state_plus_a_short_tail
);

/// A new group on a full topic (another calculator's snapshots in the changelog, nothing
/// committed): the restore applies snapshot plus tail and commits that position, so the
/// consumer starts at the end instead of reading every record again only to skip it.
async fn a_new_group_reads_the_topic_once(broker: Broker) {
    let topic = unique("once");
    let dir = std::env::temp_dir().join(unique("cashflow-once"));
    let tweak = store_settings(dir.clone());
    let (app, before) = filled(broker, &topic, tweak.clone(), 5 * N as u64 * 6).await;
    app.shutdown().await;

    let other = |s: &mut Settings| {
        tweak(s);
        s.group_prefix = format!("{}-other", s.group_prefix);
    };
    let app = spawn_app_with(broker, &topic, other).await;
    restored(&app).await;
    let group = format!("cashflow-{topic}-other-balance");
    wait_for(WAIT, "the calculator to hold every partition", || async {
        let g = app.group();
        (g.members.iter().map(|m| m.partitions.len()).sum::<usize>() == 6).then_some(())
    })
    .await;
    let after: Balances = get(&app, "/api/balances").await;
    assert_eq!(by_account(&after), by_account(&before));
    assert_eq!(after.next_offsets, before.next_offsets);
    // The new group's commit is the restored position, and no record was read twice.
    let committed = common::committed_offsets(&app.brokers, &group, &topic, 6);
    assert_eq!(committed, before.next_offsets, "committed for {group}");
    assert_eq!(
        after.stats.replayed, 0,
        "records read again by the consumer"
    );
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

on_apache_kafka!(
    apache_kafka_a_new_group_reads_the_topic_once,
    a_new_group_reads_the_topic_once
);

/// A snapshot in a format this build does not know is not guessed at: that partition is
/// replayed, the others still come from their snapshots, and the balances are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_snapshot_format_falls_back_to_replay() {
    let topic = unique("format");
    let dir = std::env::temp_dir().join(unique("cashflow-store"));
    let tweak = store_settings(dir.clone());
    let app = spawn_app_with(Broker::Apache, &topic, tweak.clone()).await;
    app.producer
        .send(Command::Burst { count: 3_000 })
        .await
        .expect("burst");
    let before = wait_applied(&app, 3_000).await;
    let brokers = app.brokers.clone();
    app.shutdown().await;
    let p = common::raw_producer(&brokers);
    p.send(
        FutureRecord::to(&format!("{topic}.balances"))
            .partition(0)
            .key("head")
            .payload(r#"{"format": 99, "from": "a later cashflow"}"#),
        Duration::from_secs(10),
    )
    .await
    .expect("produce");
    let app = spawn_app_with(Broker::Apache, &topic, tweak).await;
    let r = restored(&app).await;
    assert_eq!(
        r.from_snapshot, 5,
        "partition 0 replayed, the rest from snapshots"
    );
    let after: Balances = get(&app, "/api/balances").await;
    assert_eq!(by_account(&after), by_account(&before));
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn tx_json(account: u32, id: &str, amount: u32) -> String {
    format!(
        r#"{{"account":{account},"transaction_id":"{id}","transaction_type":"Credit","amount":{amount}}}"#
    )
}

/// Partitions whose last offsets are transaction markers (a committed and an aborted
/// transaction of another client) still finish restoring: the producer produces, `/health` is
/// ok, the committed record is applied and the aborted one is not, and shutdown is prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_finishes_at_transaction_markers() {
    let brokers = apache_kafka();
    let topic = unique("markers");
    let dir = std::env::temp_dir().join(unique("cashflow-store"));
    let tweak = store_settings(dir.clone());
    let app = spawn_app_with(Broker::Apache, &topic, tweak.clone()).await;
    app.producer
        .send(Command::Burst { count: 300 })
        .await
        .expect("burst");
    wait_applied(&app, 300).await;
    app.shutdown().await;

    let tp: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("transactional.id", unique("tx"))
        .create()
        .expect("transactional producer");
    let t = Duration::from_secs(30);
    tp.init_transactions(t).expect("init");
    tp.begin_transaction().expect("begin");
    let committed = tx_json(1001, "tx-committed", 5);
    tp.send(
        BaseRecord::<(), _>::to(&topic)
            .partition(0)
            .payload(&committed),
    )
    .map_err(|(e, _)| e)
    .expect("send");
    tp.commit_transaction(t).expect("commit");
    tp.begin_transaction().expect("begin");
    let aborted = tx_json(1002, "tx-aborted", 7);
    tp.send(
        BaseRecord::<(), _>::to(&topic)
            .partition(1)
            .payload(&aborted),
    )
    .map_err(|(e, _)| e)
    .expect("send");
    tp.flush(t).expect("flush");
    tp.abort_transaction(t).expect("abort");
    drop(tp);

    let app = spawn_app_with(Broker::Apache, &topic, |s| {
        tweak(s);
        s.paused = false;
        s.rate = cashflow::config::Rate::PerSecond(50.0);
    })
    .await;
    let started = Instant::now();
    restored(&app).await;
    wait_for(
        Duration::from_secs(30),
        "the producer to produce again",
        || async { (app.producer_counts().delivered > 0).then_some(()) },
    )
    .await;
    println!(
        "restore with markers at the ends: ok after {:?}",
        started.elapsed()
    );
    let b: Balances = get(&app, "/api/balances").await;
    let a = by_account(&b);
    assert_eq!(
        a.get(&1001),
        Some(&(10_500, 1)),
        "the committed record is applied"
    );
    assert_eq!(a.get(&1002), None, "the aborted record is not");
    tokio::time::timeout(Duration::from_secs(15), app.shutdown())
        .await
        .expect("shutdown within 15 s");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A topic deleted and created again (offsets start at 0 once more) while the changelog still
/// holds snapshots of the old one: the new topic starts with fresh balances instead of having
/// every record skipped as "already applied".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_starts_afresh() {
    let topic = unique("recreated");
    let dir = std::env::temp_dir().join(unique("cashflow-store"));
    let tweak = store_settings(dir.clone());
    let app = spawn_app_with(Broker::Apache, &topic, tweak.clone()).await;
    app.producer
        .send(Command::Burst { count: 3_000 })
        .await
        .expect("burst");
    wait_applied(&app, 3_000).await;
    let brokers = app.brokers.clone();
    app.shutdown().await;
    admin_delete_topic(&brokers, &topic).await;

    let app = spawn_app_with(Broker::Apache, &topic, tweak).await;
    restored(&app).await;
    app.producer
        .send(Command::Burst { count: 60 })
        .await
        .expect("burst");
    let b = wait_applied(&app, 60).await;
    let records = read_topic(&app.brokers, &topic);
    assert_eq!(records.len(), 60);
    assert_eq!(by_account(&b), common::recompute(&records));
    assert_eq!(b.stats.applied, 60);
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The topic deleted while cashflow runs (the broker watch creates it again): the balance
/// calculator notices that the partitions end below what it applied, starts afresh with a
/// warning on `/health` and the page, applies the new topic's records (none skipped as "seen"),
/// and a restart restores the new topic's balances, not the old one's.
async fn a_topic_recreated_while_running_starts_afresh(broker: Broker) {
    let topic = unique("recreated-live");
    let dir = std::env::temp_dir().join(unique("cashflow-store"));
    let tweak = store_settings(dir.clone());
    let app = spawn_app_with(broker, &topic, tweak.clone()).await;
    app.producer
        .send(Command::Burst { count: 3_000 })
        .await
        .expect("burst");
    wait_applied(&app, 3_000).await;
    // A dead letter of the old topic, which goes with it.
    app.producer
        .send(Command::Inject {
            poison: Poison::NotJson,
        })
        .await
        .expect("inject");
    wait_for(WAIT, "the dead letter read back", || async {
        let d: DeadLetters = get(&app, "/api/dead-letters").await;
        (d.newest.len() == 1).then_some(())
    })
    .await;
    admin_delete(&app.brokers, &topic).await;
    let h = wait_for(WAIT, "the re-creation to be noticed", || async {
        let h: Health = get(&app, "/health").await;
        (h.store.recreated == 1).then_some(h)
    })
    .await;
    let why = h.store.last_error.unwrap_or_default();
    assert!(why.contains("created again"), "{why}");
    wait_for(
        WAIT,
        "the old topic's dead letters gone from the panel",
        || async {
            let d: DeadLetters = get(&app, "/api/dead-letters").await;
            d.newest.is_empty().then_some(())
        },
    )
    .await;
    // The page is told, and its frames keep coming.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.http_addr))
        .await
        .expect("ws");
    let (mut told, mut deltas) = (false, 0);
    while deltas < 2 {
        use futures_util::StreamExt;
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("frames keep coming")
            .expect("open")
            .expect("frame");
        let Ok(text) = m.to_text() else { continue };
        match serde_json::from_str::<ServerMsg>(text) {
            Ok(ServerMsg::Snapshot(s)) => told = s.store.recreated == 1,
            Ok(ServerMsg::Delta(_)) => deltas += 1,
            _ => {}
        }
    }
    assert!(told, "the page's snapshot says the topic was re-created");
    // The embedded broker lost the idempotent producer's state with the topic: a new producer
    // takes over, made afresh once the re-creation is noticed (or, if a record went first,
    // after the broker refused its sequence number, a fatal error: what it had queued fails
    // and is counted; the second burst then gets through whole).
    let before: ProducerStats = get(&app, "/api/producer").await;
    for burst in 1..=2 {
        app.producer
            .send(Command::Burst { count: 500 })
            .await
            .expect("burst");
        wait_for(WAIT, "the burst's deliveries", || async {
            let p: ProducerStats = get(&app, "/api/producer").await;
            (p.delivered + p.failed >= before.delivered + before.failed + 500 * burst).then_some(())
        })
        .await;
    }
    let p: ProducerStats = get(&app, "/api/producer").await;
    let delivered = p.delivered - before.delivered;
    assert!(delivered >= 500, "the second burst got through: {p:?}");
    if matches!(broker, Broker::Managed) {
        assert!(
            p.replaced + p.reconfigured >= 1,
            "a new producer took over (made afresh when the re-creation was noticed, or after a fatal error): {p:?}"
        );
    }
    let records = read_topic(&app.brokers, &topic);
    assert_eq!(
        records.len() as u64,
        delivered,
        "the new topic holds only the new records"
    );
    let b = wait_applied(&app, delivered).await;
    assert_eq!(
        b.stats.applied, delivered,
        "nothing of the old topic, nothing skipped"
    );
    assert_eq!(by_account(&b), common::recompute(&records));
    assert_eq!(
        b.stats.mismatches, 0,
        "the producer's view started afresh too"
    );
    app.shutdown().await;

    let app = spawn_app_with(broker, &topic, tweak).await;
    restored(&app).await;
    let again: Balances = get(&app, "/api/balances").await;
    assert_eq!(by_account(&again), common::recompute(&records));
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

on_apache_kafka!(
    a_topic_recreated_while_running_starts_afresh_on_apache_kafka,
    a_topic_recreated_while_running_starts_afresh
);

/// Retention deleted records the calculator had not applied yet (here DeleteRecords, which
/// moves a partition's start the way retention does): the restart restores the snapshot, skips
/// the gap with a warning instead of waiting for records that no longer exist, and applies what
/// is left after it. On both brokers, since the embedded one has no transactions to test offset
/// gaps with.
async fn a_restart_skips_the_gaps_retention_leaves(broker: Broker) {
    let topic = unique("gaps");
    let dir = std::env::temp_dir().join(unique("cashflow-store"));
    let tweak = store_settings(dir.clone());
    // The calculator stops (a test-only stall) at its 2 000th record of 3 000.
    let stalled = {
        let tweak = tweak.clone();
        move |s: &mut Settings| {
            tweak(s);
            s.test_stall_calculator_after = Some(2_000);
        }
    };
    let app = spawn_app_with(broker, &topic, stalled).await;
    app.producer
        .send(Command::Burst { count: 3_000 })
        .await
        .expect("burst");
    wait_for(WAIT, "the burst delivered", || async {
        let p: ProducerStats = get(&app, "/api/producer").await;
        (p.delivered == 3_000).then_some(())
    })
    .await;
    let before = wait_applied(&app, 1_999).await;
    assert_eq!(before.stats.applied, 1_999, "the calculator stalled");
    // Every partition loses all but its last 20 records.
    let ends: BTreeMap<i32, i64> =
        read_topic(&app.brokers, &topic)
            .iter()
            .fold(BTreeMap::new(), |mut m, r| {
                let e = m.entry(r.partition).or_insert(0);
                *e = (*e).max(r.offset + 1);
                m
            });
    {
        use rdkafka::admin::{AdminClient, AdminOptions};
        use rdkafka::client::DefaultClientContext;
        use rdkafka::{Offset, TopicPartitionList};
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &app.brokers)
            .create()
            .expect("admin");
        let mut tpl = TopicPartitionList::new();
        for (p, end) in &ends {
            tpl.add_partition_offset(&topic, *p, Offset::Offset(end - 20))
                .expect("offset");
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let r = admin
            .delete_records(&tpl, &opts)
            .await
            .expect("delete records");
        assert!(
            r.elements().iter().all(|e| e.error().is_ok()),
            "{:?}",
            r.elements().iter().map(|e| e.error()).collect::<Vec<_>>()
        );
    }
    app.shutdown().await;

    let app = spawn_app_with(broker, &topic, tweak).await;
    restored(&app).await;
    let left = read_topic(&app.brokers, &topic);
    assert!(
        left.len() <= 6 * 20,
        "the records were deleted: {} left",
        left.len()
    );
    // What the restart applies: the records left after the snapshot's offsets.
    let tail: Vec<_> = left
        .into_iter()
        .filter(|r| r.offset >= before.next_offsets.get(&r.partition).copied().unwrap_or(0))
        .collect();
    let total = before.stats.applied + tail.len() as u64;
    let after = wait_applied(&app, total).await;
    assert_eq!(after.stats.applied, total);
    let mut expected = by_account(&before);
    let opening = before.opening_balance.minor();
    for (a, (balance, count)) in common::recompute(&tail) {
        let e = expected.entry(a).or_insert((opening, 0));
        e.0 += balance - opening;
        e.1 += count;
    }
    assert_eq!(
        by_account(&after),
        expected,
        "the snapshot plus what is left after the gap"
    );
    assert_eq!(after.next_offsets, ends, "every partition read to its end");
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

on_apache_kafka!(
    a_restart_skips_the_gaps_retention_leaves_on_apache_kafka,
    a_restart_skips_the_gaps_retention_leaves
);

/// SIGTERM in the middle of a long restore (a topic of many records and no snapshot yet):
/// `/health` says "restoring" with its progress meanwhile, and the server exits, cleanly, within
/// 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_restore_exits_promptly() {
    let brokers = apache_kafka();
    let topic = unique("long");
    let n = 600_000u32;
    // Created by hand (6 partitions): cashflow then finds a topic without snapshots.
    {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("admin");
        admin
            .create_topics(
                [&NewTopic::new(&topic, 6, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("create");
    }
    common::write_records(
        &brokers,
        &topic,
        (0..n).map(|i| {
            let key = (1 + i % 50).to_string();
            (
                key,
                tx_json(1 + i % 50, &format!("bulk-{i}"), 1).into_bytes(),
            )
        }),
    );

    let args = common::server_args(&brokers, &topic, &["--listen", "127.0.0.1:0", "--paused"]);
    let server = common::Binary::start(&args);
    let url = server.url.clone();
    let (code, h) = wait_for(WAIT, "a restore under way", || async {
        let r = reqwest::get(format!("{url}/health")).await.ok()?;
        let code = r.status().as_u16();
        let h: Health = r.json().await.ok()?;
        let progress = h.store.restore.clone()?;
        (h.status == "restoring" && progress.source_records > 0).then_some((code, h))
    })
    .await;
    assert_eq!(code, 503);
    let progress = h.store.restore.expect("progress");
    assert!(
        progress.percent > 0.0 && progress.percent < 100.0,
        "{progress:?}"
    );
    assert_eq!(progress.source_total, u64::from(n));
    let sent = Instant::now();
    server.sigterm();
    let mut child = server.child;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 5 s after SIGTERM during restore");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "SIGTERM during restore at {:.0}%: exited in {:?}",
        progress.percent,
        sent.elapsed()
    );
    assert!(status.success(), "{status:?}");
}
