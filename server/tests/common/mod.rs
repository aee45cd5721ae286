//! Test helpers: a real Kafka for every test, an app on free ports, bounded waits.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use cashflow::{App, Settings};
use cashflow_shared::api::{Balances, Health, ProducerStats};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

pub mod ws;

/// Which broker a test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Broker {
    /// Apache Kafka 4.x in KRaft mode, started by scripts/kafka.sh (once per test binary).
    Apache,
    /// The local Apache Kafka broker each app starts and supervises for itself (no
    /// `--brokers`): only the tests of the managed broker itself use it.
    Managed,
}

/// The repository's root. Cargo sets `CARGO_MANIFEST_DIR` when it runs a test or a bench too;
/// that one wins over the path compiled in, because a build from another checkout of the same
/// tree in a shared target folder (a clean-clone CI run) can be reused here as fresh, with that
/// checkout's path inside (then gone).
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("..")
}

/// Bootstrap servers of the Apache Kafka the tests use, started if it is not running.
pub fn apache_kafka() -> String {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS
        .get_or_init(|| {
            if let Ok(b) = std::env::var("CASHFLOW_TEST_BROKERS") {
                return b;
            }
            let status = std::process::Command::new("bash")
                .arg(repo_root().join("scripts/kafka.sh"))
                .arg("start")
                .status()
                .expect("run scripts/kafka.sh");
            assert!(status.success(), "scripts/kafka.sh start failed");
            format!(
                "127.0.0.1:{}",
                std::env::var("KAFKA_PORT").unwrap_or_else(|_| "19092".into())
            )
        })
        .clone()
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        uuid::Uuid::from_bytes(rand::random()).simple()
    )
}

/// An app started by a test, zero2prod style: the app itself (through `Deref`: `producer`,
/// `shared`, `brokers`, …) and one method per endpoint, so tests do not each grow their own
/// HTTP helpers.
pub struct TestApp {
    pub app: App,
    pub url: String,
}

impl std::ops::Deref for TestApp {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl From<App> for TestApp {
    fn from(app: App) -> TestApp {
        let url = format!("http://{}", app.http_addr);
        TestApp { app, url }
    }
}

impl TestApp {
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        reqwest::get(format!("{}{path}", self.url))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: not the JSON expected: {e}"))
    }

    /// `/api/balances`, every page of it.
    pub async fn balances(&self) -> Balances {
        let mut b: Balances = self.get("/api/balances?limit=10000").await;
        while let Some(after) = b.next_after {
            let next: Balances = self
                .get(&format!("/api/balances?after={after}&limit=10000"))
                .await;
            b.accounts.extend(next.accounts);
            b.next_after = next.next_after;
        }
        b
    }

    pub async fn health(&self) -> Health {
        self.get("/health").await
    }

    pub async fn producer_stats(&self) -> ProducerStats {
        self.get("/api/producer").await
    }

    /// Waits until the balance calculator has applied at least `n`; its balances then.
    pub async fn wait_applied(&self, n: u64, limit: Duration) -> Balances {
        wait_for(limit, &format!("{n} applied"), || async {
            let b = self.balances().await;
            (b.stats.applied >= n).then_some(b)
        })
        .await
    }

    pub async fn shutdown(self) {
        self.app.shutdown().await
    }
}

pub async fn spawn_app(broker: Broker, topic: &str) -> TestApp {
    spawn_app_with(broker, topic, |_| {}).await
}

pub async fn spawn_app_with(
    broker: Broker,
    topic: &str,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let _ = tracing_subscriber_init();
    let brokers = match broker {
        Broker::Apache => Some(apache_kafka()),
        Broker::Managed => None,
    };
    let mut settings = Settings::for_tests(brokers, topic);
    tweak(&mut settings);
    let app = App::start(settings).await.expect("app starts");
    assert!(
        tokio::time::timeout(Duration::from_secs(60), app.wait_ready())
            .await
            .unwrap_or(false),
        "topic not ready within 60 s"
    );
    TestApp::from(app)
}

pub fn tracing_subscriber_init() -> Option<()> {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn,cashflow=info".into()),
            )
            .with_test_writer()
            .try_init();
    });
    Some(())
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `limit` with `what`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Every record of `topic`, read with a plain assigned consumer (no group), in partition order.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let parts: Vec<i32> = meta.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    let mut ends = std::collections::HashMap::new();
    for p in &parts {
        let (lo, hi) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(*p, hi);
        remaining += (hi - lo) as usize;
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(remaining);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while out.len() < remaining {
        assert!(
            std::time::Instant::now() < deadline,
            "read only {} of {remaining} records",
            out.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = match m {
                Ok(m) => m,
                // A broker of a cluster down (the replication test): the client goes on with
                // the others.
                Err(rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure
                    | rdkafka::types::RDKafkaErrorCode::AllBrokersDown,
                )) => continue,
                Err(e) => panic!("record: {e}"),
            };
            if m.offset() < ends[&m.partition()] {
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| k.to_vec()),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

/// A plain producer for writing records by hand.
pub fn raw_producer(brokers: &str) -> rdkafka::producer::FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

/// Per account (balance in minor units from an opening 100.00, count) recomputed from the
/// topic's records, each transaction id counted once.
pub fn recompute(records: &[Record]) -> std::collections::BTreeMap<u32, (i64, u64)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = std::collections::BTreeMap::new();
    for r in records {
        let tx = cashflow_shared::Transaction::parse(&r.payload)
            .expect("the producer writes valid records");
        if seen.insert(tx.transaction_id.clone()) {
            let e = out.entry(tx.account).or_insert((10_000, 0));
            e.0 += tx.delta().minor();
            e.1 += 1;
        }
    }
    out
}

/// After pausing generation: every delivery report in, none failed since `failed_before`;
/// every transaction sent is in the topic once (no id twice), the balances equal the
/// recomputation from the topic, and the invariant holds over every record. The topic's records.
pub async fn settled_exactly_once(app: &TestApp, failed_before: u64) -> Vec<Record> {
    const WAIT: Duration = Duration::from_secs(120);
    app.producer
        .send(cashflow_shared::command::Command::Pause)
        .await
        .expect("pause");
    let p = wait_for(WAIT, "every delivery report", || async {
        let p = app.shared.producer();
        (p.delivered + p.failed == p.sent).then_some(p)
    })
    .await;
    assert_eq!(
        p.failed, failed_before,
        "nothing failed: {:?}",
        p.last_error
    );
    let (brokers, topic) = (app.brokers.clone(), app.shared.topic.clone());
    let records = tokio::task::spawn_blocking(move || read_topic(&brokers, &topic))
        .await
        .expect("read the topic");
    let ids: std::collections::HashSet<String> = records
        .iter()
        .map(|r| {
            cashflow_shared::Transaction::parse(&r.payload)
                .expect("valid")
                .transaction_id
        })
        .collect();
    assert_eq!(ids.len(), records.len(), "none written twice");
    let n = records.len() as u64;
    let b = wait_for(WAIT, "the calculator to apply every record", || async {
        let b = app.shared.balances(0, 10_000);
        (b.stats.applied == n).then_some(b)
    })
    .await;
    let got: std::collections::BTreeMap<u32, (i64, u64)> = b
        .accounts
        .iter()
        .map(|a| (a.account, (a.balance.minor(), a.count)))
        .collect();
    assert_eq!(got, recompute(&records), "the balances are exact");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let i = app.shared.invariant();
        if i.state == cashflow_shared::invariant::InvariantState::Holds && i.acked == n {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the invariant did not hold over the {n} records within {WAIT:?}: {i:?}; {}",
            i.describe()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    records
}

/// One configuration value of `topic`, as the broker describes it.
pub async fn topic_config(brokers: &str, topic: &str, name: &str) -> Option<String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let described = admin
        .describe_configs(
            [&ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("describe configs");
    let resource = described.into_iter().next()?.ok()?;
    resource.get(name)?.value.clone()
}

/// The test broker's host and PLAINTEXT port; its other listeners are on the next ports.
fn apache_kafka_host_port() -> (String, u16) {
    let plain = apache_kafka();
    let (host, port) = plain.rsplit_once(':').expect("host:port");
    (host.to_owned(), port.parse().expect("port"))
}

/// The test broker's SASL_PLAINTEXT listener (PLAIN; see scripts/kafka.sh for the credentials).
pub fn apache_kafka_sasl() -> String {
    let (host, port) = apache_kafka_host_port();
    format!("{host}:{}", port + 2)
}

/// The test broker's SSL listener and the CA file that verifies it (see scripts/kafka.sh).
pub fn apache_kafka_tls() -> (String, PathBuf) {
    let (host, port) = apache_kafka_host_port();
    let dir = std::env::var("KAFKA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME"))
                .join(format!(".cache/cashflow/kafka-{port}"))
        });
    (format!("{host}:{}", port + 3), dir.join("tls/ca.pem"))
}

/// The real `cashflow` binary, started with `args` (`RUST_LOG=warn`, stderr discarded). Its
/// address and Kafka bootstrap servers come from its one stdout line, "cashflow is running at
/// http://… (Kafka: …)".
pub struct Binary {
    pub child: std::process::Child,
    pub url: String,
    pub kafka: String,
    /// The lines it printed after the first (read as they come, so it never writes to a
    /// closed pipe).
    pub more: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Binary {
    pub fn start(args: &[String]) -> Binary {
        use std::io::{BufRead, BufReader};
        // CASHFLOW_TEST_SERVER_LOG=FILE keeps the servers' logs (appended) for a failing test.
        let stderr = match std::env::var("CASHFLOW_TEST_SERVER_LOG") {
            Ok(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(std::process::Stdio::from)
                .unwrap_or_else(|_| std::process::Stdio::null()),
            Err(_) => std::process::Stdio::null(),
        };
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cashflow"));
        // CASHFLOW_TEST_SERVER_PRELOAD=LIB preloads LIB into the servers only, not into cargo or
        // the test: heaptrack's preload library, to profile the heap of the server a bench starts
        // (BENCHMARKS.md, "Memory per account, part 6").
        if let Ok(lib) = std::env::var("CASHFLOW_TEST_SERVER_PRELOAD") {
            command.env("LD_PRELOAD", lib);
        }
        let mut child = command
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("CASHFLOW_TEST_SERVER_RUST_LOG").unwrap_or("warn".into()),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn cashflow");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut line).expect("the running-at line");
        let more = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = more.clone();
        std::thread::spawn(move || {
            for l in out.lines() {
                let Ok(l) = l else { break };
                keep.lock().unwrap_or_else(|e| e.into_inner()).push(l);
            }
        });
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        let kafka = line
            .rsplit_once("(Kafka: ")
            .map(|(_, k)| k.trim().trim_end_matches(')').to_owned())
            .unwrap_or_else(|| panic!("no Kafka address in {line:?}"));
        Binary {
            child,
            url,
            kafka,
            more,
        }
    }

    /// The first line it printed after the running-at line that contains `what`, waiting up
    /// to 10 s for it.
    pub fn line_with(&self, what: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .more
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|l| l.contains(what))
            {
                return l.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no line with {what:?} in {:?}",
                self.more.lock().unwrap_or_else(|e| e.into_inner())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, as Ctrl-C or a service manager would stop it.
    pub fn sigterm(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }
}

/// Writes `(key, payload)` records to `topic` with a plain producer as fast as it takes them
/// (waiting while its queue is full), and waits until all are acknowledged.
pub fn write_records(
    brokers: &str,
    topic: &str,
    records: impl IntoIterator<Item = (String, Vec<u8>)>,
) {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    let p: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "10")
        .set("message.max.bytes", "2000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for (k, v) in records {
        let mut r = BaseRecord::<String, Vec<u8>>::to(topic).key(&k).payload(&v);
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
}

/// `group`'s committed offsets on partitions `0..partitions` of `topic` (those committed).
pub fn committed_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> std::collections::BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("offsets client");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .filter_map(|e| Some((e.partition(), e.offset().to_raw().filter(|o| *o >= 0)?)))
        .collect()
}

/// Arguments for the real binary on `brokers` and `topic` (its own group prefix), then `extra`.
pub fn server_args(brokers: &str, topic: &str, extra: &[&str]) -> Vec<String> {
    [
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--group-prefix",
        topic,
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

/// A test of a scenario `async fn(Broker)` on the shared Apache Kafka (the scenarios take the
/// broker so the managed and cluster tests can run them too).
#[macro_export]
macro_rules! on_apache_kafka {
    ($apache:ident, $scenario:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $apache() {
            $scenario(Broker::Apache).await;
        }
    };
}

/// A process's CPU time so far, in seconds (user + system).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let field = |i: usize| {
        after
            .split_whitespace()
            .nth(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let ticks = field(11) + field(12);
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Resident memory in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
