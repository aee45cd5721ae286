//! The balance calculator against Kafka's own consumer, on one pre-filled topic, in one run.
//!
//! 1. A topic of N cashflow transactions (6 partitions, keyed by account, 1 000 accounts) is
//!    filled once with a plain producer and kept for the next run (its name carries N); the
//!    expected balances are recomputed from the same seeded generator.
//! 2. `kafka-consumer-perf-test` (Kafka's `ConsumerPerformance`, through `scripts/kafka.sh
//!    tool`) reads the N records in a fresh group: its `fetch.nMsg.sec` (from its first fetch),
//!    the median of three runs (it varies by up to 2× from run to run here).
//! 3. A Python confluent-kafka consumer doing the same arithmetic (`scripts/bench/py_consumer.py`),
//!    if `python3` has `confluent_kafka`.
//! 4. The shipped release binary (`--paused`, snapshots on, as by default) in a fresh group,
//!    started with its calculator paused: from the resume (its first fetch; the group join is
//!    left out, as the perf tool's `fetch.nMsg.sec` leaves it out) until the group's committed
//!    offsets reach the end; then every balance is compared with the recomputation.
//! 5. The client library's own ceiling here: a rust-rdkafka `StreamConsumer` (the one cashflow
//!    consumes through, with cashflow's `fetch.queue.backoff.ms`) that only counts the records
//!    and their bytes, in this process (`BENCH_COUNT_ONLY=0` leaves it out).
//!
//! All of them read with the same fetch settings (librdkafka's and the Java client's defaults,
//! set explicitly: fetch.max.bytes 50 MiB, max.partition.fetch.bytes 1 MiB, wait 500 ms).
//! Prints `ROW calculator | …` lines for `scripts/bench.sh`.
//!
//!     cargo bench -p cashflow --bench calculator                 (N = 10 000 000, Apache Kafka)
//!     BENCH_RECORDS=1000000 BENCH_BROKERS=127.0.0.1:9092 BENCH_LABEL=managed cargo bench …

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cashflow_shared::api::Balances;
use cashflow_shared::generator::{Generator, GeneratorSettings};
use cashflow_shared::{AccountId, Money};
use futures_util::SinkExt;
use rand::SeedableRng;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const PARTITIONS: i32 = 6;
const ACCOUNTS: u32 = 1_000;
const OPENING: Money = Money::from_major(100);
/// The fetch settings every reader gets (librdkafka's and the Java client's defaults).
const FETCH: [(&str, &str); 3] = [
    ("fetch.max.bytes", "52428800"),
    ("max.partition.fetch.bytes", "1048576"),
    ("fetch.min.bytes", "1"),
];

/// The seeded generator's records, in order, handed to `each`; returns the expected balances.
fn generate(n: u64, mut each: impl FnMut(AccountId, String)) -> BTreeMap<AccountId, i64> {
    let settings = GeneratorSettings {
        accounts: ACCOUNTS,
        ..GeneratorSettings::default()
    };
    let mut g = Generator::new(settings, OPENING).expect("settings");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut expected = BTreeMap::new();
    for i in 0..n {
        let mut tx = g.next(&mut rng, 1_764_000_000_000 + i as i64);
        tx.producer_id = Some("bench-fill".into());
        *expected.entry(tx.account).or_insert(OPENING.minor()) += tx.delta().minor();
        each(tx.account, tx.to_json());
    }
    expected
}

/// The group's committed offsets, summed (a not-yet-committed partition counts 0).
fn committed(c: &BaseConsumer, topic: &str) -> i64 {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(5))
        .map(|t| {
            t.elements()
                .iter()
                .map(|e| e.offset().to_raw().unwrap_or(0).max(0))
                .sum()
        })
        .unwrap_or(0)
}

fn fill(brokers: &str, topic: &str, n: u64) -> BTreeMap<AccountId, i64> {
    let t0 = Instant::now();
    let mut records = Vec::new();
    let expected = generate(n, |a, json| {
        records.push((a.to_string(), json.into_bytes()))
    });
    common::write_records(brokers, topic, records);
    println!(
        "filled {topic} with {n} records in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    expected
}

/// `kafka-consumer-perf-test` on the topic: records/s from its first fetch.
fn perf_tool(root: &Path, brokers: &str, topic: &str, n: u64) -> Option<f64> {
    let config = std::env::temp_dir().join(common::unique("perf-consumer.properties"));
    let props: String = FETCH
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .chain(["fetch.max.wait.ms=500\n".to_string()])
        .collect();
    std::fs::write(&config, props).ok()?;
    let (busy0, started) = (support::machine_busy_seconds(), Instant::now());
    let out = Command::new(root.join("scripts/kafka.sh"))
        .args(["tool", "org.apache.kafka.tools.ConsumerPerformance"])
        .args(["--bootstrap-server", brokers, "--topic", topic])
        .args(["--messages", &n.to_string(), "--timeout", "60000"])
        .args(["--group", &common::unique("bench-perf")])
        .arg("--consumer.config")
        .arg(&config)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Header "start.time, end.time, …, fetch.nMsg.sec", then one line of values.
    let mut lines = text.lines().filter(|l| l.contains(','));
    let (Some(header), Some(values)) = (lines.next(), lines.next()) else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        eprintln!(
            "perf tool printed no figures ({}):\n{text}{tail:#?}",
            out.status
        );
        return None;
    };
    let header: Vec<&str> = header.split(',').map(str::trim).collect();
    let values: Vec<&str> = values.split(',').map(str::trim).collect();
    let at = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| values.get(i)?.parse::<f64>().ok())
    };
    println!(
        "perf tool: the machine's cores busy {:.2} on average over the whole run (JVM start and group join included)",
        (support::machine_busy_seconds() - busy0) / started.elapsed().as_secs_f64()
    );
    let consumed = at("data.consumed.in.nMsg")?;
    if consumed < n as f64 {
        eprintln!("perf tool read {consumed} of {n}:\n{text}");
        return None;
    }
    at("fetch.nMsg.sec")
}

/// The Python peer: (records/s, checksum).
fn python(root: &Path, brokers: &str, topic: &str, n: u64) -> Option<(f64, i128)> {
    let args = [brokers, topic, &n.to_string(), &OPENING.minor().to_string()].map(String::from);
    let v = support::python_peer(&root.join("scripts/bench/py_consumer.py"), &args)?;
    if v["records"].as_u64() != Some(n) {
        return None;
    }
    let checksum = v["checksum"].as_str().map_or_else(
        || v["checksum"].as_i64().map(i128::from),
        |s| s.parse().ok(),
    )?;
    Some((v["rate"].as_f64()?, checksum))
}

fn checksum(balances: &BTreeMap<AccountId, i64>) -> i128 {
    balances
        .iter()
        .map(|(a, b)| i128::from(*a) * i128::from(*b))
        .sum()
}

struct Calculator {
    /// From the resume (its first fetch) until the committed offsets reach the end.
    committed: Duration,
    /// From the resume until the last record is applied.
    applied: Duration,
    exact: bool,
    /// Cores busy meanwhile: the server's, the whole machine's.
    cores: (f64, f64),
}

async fn get<T: serde::de::DeserializeOwned>(url: &str) -> Option<T> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

async fn cashflow(brokers: &str, topic: &str, n: u64) -> (Calculator, BTreeMap<AccountId, i64>) {
    let prefix = common::unique("bench-calc");
    let mut args = common::server_args(
        brokers,
        topic,
        &[
            "--paused",
            "--calculator-paused",
            "--listen",
            "127.0.0.1:0",
            "--opening-balance",
            "100",
        ],
    );
    let at = args
        .iter()
        .position(|a| a == "--group-prefix")
        .expect("flag")
        + 1;
    args[at] = prefix.clone();
    for (k, v) in FETCH.iter().chain(&[("fetch.wait.max.ms", "500")]) {
        args.extend(["-X".to_string(), format!("{k}={v}")]);
    }
    let mut server = common::Binary::start(&args);
    let url = server.url.clone();
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{prefix}-balance"))
        .create()
        .expect("offsets client");
    let applied = |b: &Balances| b.stats.applied;
    // The server makes the topic; its calculator joins and holds every partition, paused. The
    // records are written meanwhile, and the clock starts with the resume, its first fetch
    // (the perf tool's `fetch.nMsg.sec` leaves its group join out too).
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/ws", url.replace("http://", "ws://")))
            .await
            .expect("ws");
    // BENCH_MEMBERS=N: the calculator's group gets N members in this process (the page's "add
    // a member"), each applying its partitions on its own task.
    let members: usize = support::env_or("BENCH_MEMBERS", 1);
    for _ in 1..members {
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            r#"{"cmd":"add_member"}"#.into(),
        ))
        .await
        .expect("add a member");
    }
    common::wait_for(Duration::from_secs(120), "partitions assigned", || async {
        get::<cashflow_shared::api::TopicView>(&format!("{url}/api/topic"))
            .await
            .filter(|v| {
                let m = &v.calculator.members;
                m.len() == members
                    && m.iter().all(|m| !m.partitions.is_empty())
                    && m.iter().map(|m| m.partitions.len()).sum::<usize>() == PARTITIONS as usize
            })
    })
    .await;
    // Closed while the topic fills: a viewer that reads nothing for 45 s is dropped, and 10 M
    // records take longer than that on a slow machine, so the resume goes over a fresh socket.
    drop(ws);
    let expected = {
        let (b, t) = (brokers.to_owned(), topic.to_owned());
        tokio::task::spawn_blocking(move || fill(&b, &t, n))
            .await
            .expect("filled")
    };
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/ws", url.replace("http://", "ws://")))
            .await
            .expect("ws");
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"cmd":"resume_consumption"}"#.into(),
    ))
    .await
    .expect("resume");
    let first = Instant::now();
    let (busy0, cpu0) = (
        support::machine_busy_seconds(),
        common::cpu_seconds(server.child.id()),
    );
    // BENCH_PERF=FILE: a profile of the server while it works (`perf report -i FILE`).
    let profiler = std::env::var("BENCH_PERF").ok().map(|out| {
        // BENCH_PERF_ARGS: what to record instead (e.g. "-e sched:sched_switch -g").
        let what = std::env::var("BENCH_PERF_ARGS").unwrap_or_else(|_| "-F 499 -g".into());
        Command::new("perf")
            .arg("record")
            .args(what.split_whitespace())
            .args(["-o", &out, "-p"])
            .arg(server.child.id().to_string())
            .args(["--", "sleep", "15"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("perf")
    });
    let mut all_applied = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    let committed_at = loop {
        if all_applied.is_none()
            && get::<Balances>(&format!("{url}/api/balances?limit=1"))
                .await
                .is_some_and(|b| applied(&b) >= n)
        {
            all_applied = Some(Instant::now());
        }
        if committed(&group, topic) >= n as i64 {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the committed offsets never reached the end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let all_applied = all_applied.unwrap_or(committed_at);
    let secs = (committed_at - first).as_secs_f64();
    let cores = (
        (common::cpu_seconds(server.child.id()) - cpu0) / secs,
        (support::machine_busy_seconds() - busy0) / secs,
    );
    let mut got = BTreeMap::new();
    let mut after = 0;
    loop {
        let b: Balances = get(&format!("{url}/api/balances?after={after}&limit=10000"))
            .await
            .expect("balances");
        got.extend(b.accounts.iter().map(|a| (a.account, a.balance.minor())));
        match b.next_after {
            Some(a) => after = a,
            None => break,
        }
    }
    server.sigterm();
    let _ = server.child.wait();
    if let Some(mut p) = profiler {
        let _ = p.wait();
    }
    let calc = Calculator {
        committed: committed_at - first,
        applied: all_applied - first,
        exact: got == expected,
        cores,
    };
    (calc, expected)
}

/// Reads the `n` records with rust-rdkafka's `StreamConsumer` in a fresh group, touching
/// each payload and doing nothing else: records/s from the first record to the last.
async fn count_only(brokers: &str, topic: &str, n: u64) -> Option<f64> {
    use futures_util::StreamExt;
    use rdkafka::Message;
    use rdkafka::consumer::StreamConsumer;
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("group.id", common::unique("bench-count-only"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "500")
        .set("fetch.queue.backoff.ms", "10");
    for (k, v) in FETCH {
        cfg.set(k, v);
    }
    let consumer: StreamConsumer = cfg.create().ok()?;
    consumer.subscribe(&[topic]).ok()?;
    let mut stream = consumer.stream();
    let (mut seen, mut bytes, mut first) = (0u64, 0usize, None);
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen < n {
        let m = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .ok()??;
        let m = m.ok()?;
        first.get_or_insert_with(Instant::now);
        bytes += m.payload().map_or(0, <[u8]>::len);
        seen += 1;
    }
    std::hint::black_box(bytes);
    Some(n as f64 / first?.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let n: u64 = support::env_or("BENCH_RECORDS", 10_000_000);
    // BENCH_BROKERS=managed: a release binary runs its managed broker (paused, its own
    // topic idle) and the calculator under test reads from it like any other client.
    let (brokers, label, _host) = support::broker();
    let label = match support::env_or("BENCH_MEMBERS", 1usize) {
        1 => label,
        m => format!("{label}, {m} members in one process"),
    };
    let root = common::repo_root();
    let topic = common::unique("bench-calculator");
    // Like the perf tool below, cashflow's figure is the median of three runs (each in a fresh
    // group, a fresh server): one member's rate varied by ±15 % from run to run here.
    let mut calcs = Vec::new();
    let mut expected = BTreeMap::new();
    for run in 0..support::env_or("BENCH_CASHFLOW_RUNS", 3usize).max(1) {
        // Each run fills a topic of its own (the same records): a server started on a full
        // topic restores it all before its calculator is resumed, and would have nothing to do.
        let t = match run {
            0 => topic.clone(),
            r => format!("{topic}-r{r}"),
        };
        let (c, e) = cashflow(&brokers, &t, n).await;
        calcs.push(c);
        expected = e;
    }
    let exact = calcs.iter().all(|c| c.exact);
    calcs.sort_by_key(|c| c.committed);
    println!(
        "cashflow runs: {:.0?} records/s (committed)",
        calcs
            .iter()
            .rev()
            .map(|c| n as f64 / c.committed.as_secs_f64())
            .collect::<Vec<_>>()
    );
    let mut calc = calcs.swap_remove(calcs.len() / 2);
    calc.exact = exact;
    // The perf tool's figure varies run to run (its JIT warming up, the broker's cache): the
    // median of three runs, each in a fresh group.
    let mut perfs: Vec<f64> = (0..support::env_or("BENCH_PERF_RUNS", 3))
        .filter_map(|_| perf_tool(&root, &brokers, &topic, n))
        .collect();
    perfs.sort_by(f64::total_cmp);
    println!("kafka-consumer-perf-test runs: {perfs:.0?} records/s");
    let perf = perfs.get(perfs.len() / 2).copied();
    let count_only_on = support::env_or("BENCH_COUNT_ONLY", 1) == 1;
    let ceiling = if count_only_on {
        count_only(&brokers, &topic, n).await
    } else {
        None
    };
    let py = if support::env_or("BENCH_PYTHON", 1) == 1 {
        python(&root, &brokers, &topic, n)
    } else {
        None
    };
    support::delete_topics(&brokers, &topic).await;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let (to_commit, to_apply) = (rate(calc.committed), rate(calc.applied));
    println!(
        "cashflow: applied in {:.2} s ({to_apply:.0}/s), committed at the end in {:.2} s ({to_commit:.0}/s), balances exact: {}; cores busy: server {:.2}, machine {:.2} of {}",
        calc.applied.as_secs_f64(),
        calc.committed.as_secs_f64(),
        calc.exact,
        calc.cores.0,
        calc.cores.1,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    if count_only_on {
        let c = ceiling.map_or("did not finish".into(), |c| format!("{c:.0}"));
        println!("rust-rdkafka StreamConsumer, counting only: {c} records/s");
        // The client library's ceiling: against the perf tool, and cashflow against it.
        let vs = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}×", a / b),
            _ => "–".into(),
        };
        println!(
            "ROW ceiling | {label} | {n} | {c} | {} | {to_commit:.0} | {} |",
            vs(ceiling, perf),
            vs(Some(to_commit), ceiling)
        );
    }
    let ratio = |peer: Option<f64>| {
        peer.map_or("– | –".into(), |p| {
            format!("{:.0} | {:.2}×", p, to_commit / p)
        })
    };
    println!(
        "ROW calculator | {label} | {n} | {to_commit:.0} ({to_apply:.0} applied) | {} | {} | {} |",
        ratio(perf),
        ratio(py.map(|p| p.0)),
        match (calc.exact, py.map(|p| p.1 == checksum(&expected))) {
            (true, Some(true)) => "yes, both",
            (true, _) => "yes",
            (false, _) => "NO",
        }
    );
    assert!(
        calc.exact,
        "the calculator's balances differ from the recomputation"
    );
}
