//! The real binary killed with SIGKILL at random moments while producing, restarted each time,
//! over a run of at least 50 000 transactions; every third incarnation instead aborts itself in
//! the middle of writing a snapshot (a test-only fault point). Each restart restores at least
//! what the previous incarnation showed before it died, and at the end the balances equal an
//! independent recomputation from the topic (deduplicated by transaction id): nothing lost,
//! nothing applied twice, and the producer's restored view never disagreed. Against Apache
//! Kafka.

mod common;

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

use cashflow_shared::api::TopicView;
use cashflow_shared::api::{Balances, Health};
use cashflow_shared::invariant::InvariantState;
use common::{apache_kafka, read_topic, unique};
use rand::Rng;

const KILLS: usize = 10;
/// The run goes on (through the kills) until the topic holds at least this many transactions.
const MIN_RECORDS: i64 = 50_000;

/// Starts the binary; it, its address and its Kafka bootstrap servers.
fn start_with_kafka(args: &[String]) -> (Child, String, String) {
    let b = common::Binary::start(args);
    (b.child, b.url, b.kafka)
}

fn start(args: &[String]) -> (Child, String) {
    let (child, url, _) = start_with_kafka(args);
    (child, url)
}

async fn balances(url: &str) -> Option<Balances> {
    reqwest::get(format!("{url}/api/balances"))
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Waits until the server at `url` has handled every record of `topic`; its balances, the
/// records, and per account (balance in minor units, count).
async fn settle(
    url: &str,
    brokers: &str,
    topic: &str,
) -> (Balances, Vec<common::Record>, BTreeMap<u32, (i64, u64)>) {
    let records = read_topic(brokers, topic);
    let ends: BTreeMap<i32, i64> = records.iter().fold(BTreeMap::new(), |mut m, r| {
        m.insert(r.partition, r.offset + 1);
        m
    });
    let b = common::wait_for(
        Duration::from_secs(120),
        "the calculator to reach the end of the topic",
        || async { balances(url).await.filter(|b| b.next_offsets == ends) },
    )
    .await;
    let got = b
        .accounts
        .iter()
        .map(|a| (a.account, (a.balance.minor(), a.count)))
        .collect();
    (b, records, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_repeated_kill_9() {
    let brokers = apache_kafka();
    let topic = unique("crash");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a = common::server_args(&brokers, &topic, &["--accounts", "20"]);
        a.extend(["--listen".to_string(), format!("127.0.0.1:{port}")]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let mut rng = rand::rng();
    let mut restarts = Vec::new();
    let mut last_seen: Option<Balances> = None;
    let mut aborted_mid_snapshot = 0;
    for kill in 0..KILLS {
        let t0 = Instant::now();
        // Every third incarnation snapshots in many small records and aborts itself after the
        // first record of a snapshot (a test-only fault point): a crash in the middle of
        // writing one.
        let fault = kill % 3 == 2;
        let mut extra = vec!["--rate", "6000"];
        if fault {
            extra.extend([
                "--snapshot-records",
                "3000",
                "--snapshot-chunk-accounts",
                "1",
                "--test-abort-snapshot-after",
                "1",
            ]);
        }
        let (mut child, url) = start(&args(&extra));
        // Wait until this incarnation serves its restored balances (never fewer than the last
        // incarnation showed before it died) and applies something, then kill it at a random
        // moment.
        let mut last_health = None;
        let deadline = Instant::now() + Duration::from_secs(120);
        // A faulty incarnation may reach its fault point (the snapshot taken right after a
        // restore that read a tail) before it is seen healthy: then it has died by itself.
        let mut died = None;
        let restored = loop {
            let h: Option<Health> = match reqwest::get(format!("{url}/health")).await {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            };
            if h.as_ref().is_some_and(|h| h.status == "ok")
                && let Some(b) = balances(&url).await
            {
                break Some(b);
            }
            if fault && let Some(s) = child.try_wait().expect("wait") {
                died = Some(s);
                break None;
            }
            last_health = h.or(last_health);
            assert!(
                Instant::now() < deadline,
                "incarnation {kill} not restored within 120 s; last /health: {last_health:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if let Some(restored) = &restored
            && let Some(before) = &last_seen
        {
            let now: BTreeMap<u32, u64> = restored
                .accounts
                .iter()
                .map(|a| (a.account, a.count))
                .collect();
            for a in &before.accounts {
                assert!(
                    now.get(&a.account).copied().unwrap_or(0) >= a.count,
                    "incarnation {kill}: account {} restored with fewer transactions than seen before the crash",
                    a.account
                );
            }
        }
        // A faulty incarnation may reach its fault point (its first snapshot of more than
        // one record) before it applies anything live.
        if let (false, Some(restored)) = (fault, &restored) {
            let before = restored.stats.applied;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if balances(&url)
                    .await
                    .is_some_and(|b| b.stats.applied > before)
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "incarnation {kill} applied nothing in 60 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            restarts.push(t0.elapsed());
        }
        if fault {
            // It dies by itself, mid-snapshot.
            let deadline = Instant::now() + Duration::from_secs(60);
            let status = loop {
                if let Some(s) = died {
                    break s;
                }
                if let Some(b) = balances(&url).await {
                    last_seen = Some(b);
                }
                if let Some(s) = child.try_wait().expect("wait") {
                    break s;
                }
                assert!(
                    Instant::now() < deadline,
                    "incarnation {kill} did not reach its fault point"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(libc::SIGABRT),
                "aborted at the fault point: {status:?}"
            );
            aborted_mid_snapshot += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..2000))).await;
            last_seen = balances(&url).await;
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }
    assert_eq!(aborted_mid_snapshot, KILLS / 3);

    // The run goes on until the topic holds at least MIN_RECORDS, and that incarnation is
    // killed too.
    let (mut child, url) = start(&args(&["--rate", "6000"]));
    let total = common::wait_for(
        Duration::from_secs(180),
        "the topic to hold enough records",
        || async {
            let handled: i64 = balances(&url).await?.next_offsets.values().sum();
            (handled >= MIN_RECORDS).then_some(handled)
        },
    )
    .await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    println!(
        "{} kills, {total} records when the last producing incarnation was killed",
        KILLS + 1
    );

    // A last incarnation, paused, reads everything.
    let (mut child, url) = start(&args(&["--paused"]));
    let (b, records, got) = settle(&url, &brokers, &topic).await;
    let expected = common::recompute(&records);
    let unique_ids: u64 = expected.values().map(|(_, n)| n).sum();
    assert_eq!(
        got, expected,
        "balances and counts equal the recomputation from the topic"
    );
    assert_eq!(
        b.stats.applied, unique_ids,
        "each transaction applied exactly once"
    );
    assert!(
        unique_ids >= MIN_RECORDS as u64,
        "only {unique_ids} transactions: the test exercised too little"
    );
    assert_eq!(
        b.stats.mismatches, 0,
        "the producer's restored view agrees with the calculator"
    );
    // The invariant, through every kill: the producer id the state store keeps is the last
    // record's, and what it acknowledged (delivery reports kept in the snapshots, plus its
    // records found after them) equals what the calculator applied from it, account by account.
    let last = records
        .iter()
        .max_by_key(|r| {
            cashflow_shared::Transaction::parse(&r.payload)
                .ok()
                .and_then(|t| t.timestamp_ms)
        })
        .and_then(|r| cashflow_shared::Transaction::parse(&r.payload).ok())
        .and_then(|t| t.producer_id)
        .expect("the producer's records carry its id");
    let own = records
        .iter()
        .filter(|r| {
            cashflow_shared::Transaction::parse(&r.payload)
                .is_ok_and(|t| t.producer_id.as_deref() == Some(last.as_str()))
        })
        .count() as u64;
    let view: TopicView =
        common::wait_for(Duration::from_secs(60), "the invariant to hold", || async {
            let v: TopicView = reqwest::get(format!("{url}/api/topic"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v.invariant.state == InvariantState::Holds).then_some(v)
        })
        .await;
    assert_eq!(
        (view.invariant.acked, view.invariant.applied),
        (own, own),
        "{:?}",
        view.invariant
    );
    assert!(
        own > unique_ids / 2,
        "{own} of {unique_ids} records carry the kept producer id"
    );
    println!(
        "invariant after the kills: {} records of producer {last} acknowledged and applied, {} foreign",
        own, view.invariant.foreign_records
    );
    println!(
        "{} kills, {} records, {} unique, producer mismatches {}, restart→applying: {:?}",
        KILLS + 1,
        records.len(),
        unique_ids,
        b.stats.mismatches,
        restarts
    );
    child.kill().expect("kill");
    child.wait().expect("reaped");
}

/// The default demo (the managed Apache Kafka broker, its log on disk) killed with SIGKILL
/// while producing: the relaunch, on the same data folder (its broker waits for the old JVM to
/// finish stopping), shows at least every balance seen before the kill and exactly the topic's
/// recomputation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_demo_survives_kill_9() {
    let dir = std::env::temp_dir().join(unique("cashflow-data"));
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["--listen", "127.0.0.1:0", "--kafka-listen", "127.0.0.1:0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(["--data-dir".to_string(), dir.display().to_string()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let (mut child, url, _) = start_with_kafka(&args(&["--rate", "1000", "--accounts", "20"]));
    let before = common::wait_for(
        Duration::from_secs(60),
        "2 000 applied before the kill",
        || async { balances(&url).await.filter(|b| b.stats.applied >= 2_000) },
    )
    .await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let t0 = Instant::now();
    let (mut child, url, kafka) = start_with_kafka(&args(&["--paused"]));
    let served = common::wait_for(Duration::from_secs(60), "balances served again", || async {
        balances(&url)
            .await
            .filter(|b| b.stats.applied >= before.stats.applied)
    })
    .await;
    let recovery = t0.elapsed();
    let (b, records, got) = settle(&url, &kafka, &served.topic).await;
    assert_eq!(got, common::recompute(&records));
    for a in &before.accounts {
        assert!(
            got[&a.account].1 >= a.count,
            "account {} had {} transactions before the kill, {} after",
            a.account,
            a.count,
            got[&a.account].1
        );
    }
    assert_eq!(b.stats.mismatches, 0);
    println!(
        "managed broker: {} applied before SIGKILL, {} records after; balances served {recovery:?} after the relaunch",
        before.stats.applied,
        records.len()
    );
    child.kill().expect("kill");
    child.wait().expect("reaped");
    let _ = std::fs::remove_dir_all(&dir);
}
