//! The replication lesson on a 3-broker Apache Kafka cluster (replication factor 3,
//! min.insync.replicas=2), started for this test alone: under load, the broker leading
//! partition 0 is killed with SIGKILL. The topic view shows its partitions get new leaders from
//! the in-sync replicas, and nothing is lost or written twice: every transaction sent is in the
//! topic once, the balances equal the recomputation and the invariant holds. The broker is then
//! started again and rejoins every partition's in-sync replicas.

mod common;

use std::time::{Duration, Instant};

use cashflow_shared::api::TopicView;
use cashflow_shared::command::Command;
use common::{Broker, TestApp, repo_root, settled_exactly_once, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(120);

fn kafka(args: &[&str]) {
    let ok = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/kafka.sh"))
        .args(args)
        .status()
        .expect("scripts/kafka.sh")
        .success();
    assert!(ok, "scripts/kafka.sh {args:?} failed");
}

/// Stops the cluster when the test ends, passed or not.
struct Cluster;

impl Drop for Cluster {
    fn drop(&mut self) {
        kafka(&["cluster", "stop"]);
    }
}

async fn view(app: &TestApp) -> TopicView {
    app.get("/api/topic").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_run_moves_leaders_and_loses_nothing() {
    let cluster = tokio::task::spawn_blocking(|| {
        kafka(&["cluster", "fresh"]);
        Cluster
    })
    .await
    .expect("cluster");
    let app = spawn_app_with(Broker::Cluster, &unique("cluster"), |s| {
        s.replication_factor = 3;
        s.generator.accounts = 20;
        s.rate = cashflow::config::Rate::PerSecond(200.0);
    })
    .await;
    app.producer.send(Command::Start).await.expect("start");
    app.wait_applied(300, WAIT).await;
    let before = wait_for(
        WAIT,
        "three brokers, each partition fully in sync",
        || async {
            let v = view(&app).await;
            (v.brokers == [1, 2, 3]
                && v.partitions.len() == 6
                && v.partitions
                    .iter()
                    .all(|p| p.isr.len() == 3 && p.leader > 0))
            .then_some(v)
        },
    )
    .await;
    let victim = before.partitions[0].leader;
    let led: Vec<i32> = before
        .partitions
        .iter()
        .filter(|p| p.leader == victim)
        .map(|p| p.partition)
        .collect();
    let killed = Instant::now();
    let n = victim.to_string();
    tokio::task::spawn_blocking(move || kafka(&["kill", &n]))
        .await
        .expect("kill");
    let moved = wait_for(WAIT, "new leaders from the in-sync replicas", || async {
        let v = view(&app).await;
        (v.partitions.len() == 6
            && v.partitions
                .iter()
                .all(|p| p.leader > 0 && p.leader != victim)
            && v.partitions.iter().all(|p| !p.isr.contains(&victim)))
        .then_some(v)
    })
    .await;
    let moved_after = killed.elapsed();
    for p in &led {
        let now = &moved.partitions[*p as usize];
        assert!(
            before.partitions[*p as usize].isr.contains(&now.leader),
            "partition {p}'s new leader {} was in sync",
            now.leader
        );
    }
    // Producing goes on with two in-sync replicas (min.insync.replicas=2).
    let delivered_then = app.shared.producer().delivered;
    wait_for(WAIT, "deliveries to go on", || async {
        (app.shared.producer().delivered > delivered_then + 400).then_some(())
    })
    .await;
    let records = settled_exactly_once(&app, 0).await;
    let delivered = app.shared.producer().delivered;
    assert_eq!(records.len() as u64, delivered, "none lost");

    // Back: it catches up and rejoins every partition's in-sync replicas.
    let revived = Instant::now();
    let n = victim.to_string();
    tokio::task::spawn_blocking(move || kafka(&["revive", &n]))
        .await
        .expect("revive");
    wait_for(WAIT, "the broker back in every ISR", || async {
        let v = view(&app).await;
        v.partitions
            .iter()
            .all(|p| p.isr.contains(&victim))
            .then_some(())
    })
    .await;
    println!(
        "3-broker cluster: broker {victim} (leader of {led:?}) killed; leaders moved after {:.1} s; \
         {} transactions, 0 lost, 0 written twice; back in every ISR {:.1} s after its restart",
        moved_after.as_secs_f64(),
        delivered,
        revived.elapsed().as_secs_f64()
    );
    app.shutdown().await;
    drop(cluster);
}
