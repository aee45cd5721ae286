//! The local Apache Kafka broker cashflow runs itself when no `--brokers` is given
//! (`kafka::managed`): it serves clients, a broker killed with SIGKILL is started again with
//! every balance exact, and a cashflow killed with SIGKILL leaves no JVM behind.

mod common;

use std::time::{Duration, Instant};

use cashflow_shared::command::Command;
use common::{Broker, settled_exactly_once, spawn_app_with, unique, wait_for};

const WAIT: Duration = Duration::from_secs(120);

/// Whether process `pid` exists (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_is_started_again_and_balances_stay_exact() {
    let app = spawn_app_with(Broker::Managed, &unique("managed"), |s| {
        s.generator.accounts = 20;
        s.rate = cashflow::config::Rate::PerSecond(200.0);
    })
    .await;
    let broker = app.managed_broker().expect("cashflow runs the broker");
    assert_eq!(app.brokers, broker.addr().to_string());
    assert!(broker.addr().ip().is_loopback(), "{}", broker.addr());
    let first = broker.pid().expect("the JVM runs");
    app.producer.send(Command::Start).await.expect("start");
    app.wait_applied(300, WAIT).await;

    // SAFETY: kill(2) of the broker's JVM, a child of this test process.
    assert_eq!(unsafe { libc::kill(first as i32, libc::SIGKILL) }, 0);
    let second = wait_for(WAIT, "the broker started again", || async {
        broker.pid().filter(|p| *p != first)
    })
    .await;
    assert_eq!(broker.restarts(), 1);
    assert!(!alive(first), "the killed JVM was reaped");
    // It serves again: generation goes on, and afterwards every transaction is in the topic
    // once and applied once.
    let applied = app.balances().await.stats.applied;
    app.wait_applied(applied + 300, WAIT).await;
    let records = settled_exactly_once(&app, 0).await;
    println!(
        "managed broker: pid {first} killed, pid {second} took over; {} records, each applied once",
        records.len()
    );
    app.shutdown().await;
    assert!(!alive(second), "the broker stopped with cashflow");
}

/// `cashflow` killed with SIGKILL: its JVM gets SIGTERM (PR_SET_PDEATHSIG) and exits; the
/// next cashflow on the same data folder starts (waiting for it if needed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_jvm_outlives_a_killed_cashflow() {
    let dir = std::env::temp_dir().join(unique("cashflow-orphan"));
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--kafka-listen",
        "127.0.0.1:0",
        "--paused",
        "--data-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([dir.display().to_string()])
    .collect();
    let mut b = common::Binary::start(&args);
    let jvm: u32 = std::fs::read_to_string(dir.join("kafka/broker.pid"))
        .expect("the broker's pid file")
        .trim()
        .parse()
        .expect("a pid");
    assert!(alive(jvm));
    let cmdline = std::fs::read(format!("/proc/{jvm}/cmdline")).expect("cmdline");
    assert!(
        cmdline
            .split(|c| *c == 0)
            .next()
            .is_some_and(|a| a.ends_with(b"java")),
        "java exec'd directly, not through a shell"
    );
    b.child.kill().expect("SIGKILL");
    b.child.wait().expect("reaped");
    let t0 = Instant::now();
    while alive(jvm) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the JVM {jvm} outlived its cashflow by 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "the JVM exited {:?} after cashflow was killed",
        t0.elapsed()
    );
    // The same data folder serves a new cashflow.
    let mut again = common::Binary::start(&args);
    let h: cashflow_shared::api::Health = reqwest::get(format!("{}/health", again.url))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert!(h.broker.managed, "{h:?}");
    // SAFETY: SIGTERM to our own child: a graceful stop.
    unsafe { libc::kill(again.child.id() as i32, libc::SIGTERM) };
    let status = again.child.wait().expect("exit");
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
