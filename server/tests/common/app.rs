//! The app in-process, zero2prod style: [`spawn_app`] on free ports, a [`TestApp`] with one
//! method per endpoint, bounded waits ([`wait_for`]), and the end-to-end check that a run
//! delivered and applied everything exactly once.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use cashflow::{App, Settings};
use std::collections::{BTreeMap, BTreeSet};

use cashflow_shared::AccountId;
use cashflow_shared::api::{Balances, Health, ProducerStats, StoreHealth};
use cashflow_shared::group::GroupStatus;
use cashflow_shared::invariant::{InvariantState, InvariantStatus};
use cashflow_shared::ledger::{AccountState, LedgerStats};
use cashflow_shared::lessons::LessonsStatus;
use cashflow_shared::naive::NaiveStatus;
use cashflow_shared::ordering::OrderingStats;
use cashflow_shared::outage::OutageStatus;
use cashflow_shared::protocol::{GeneratorStatus, PartitionView};
use cashflow_shared::replay::ReplayStatus;

use super::broker::{Broker, apache_kafka};
use super::kafka::{Record, read_topic, recompute};

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

    /// Waits until the invariant holds with exactly `n` of this app's records acknowledged by
    /// Kafka and applied by the calculator.
    pub async fn invariant_holds(&self, n: u64, limit: Duration) {
        wait_for(limit, &format!("the invariant to hold at {n}"), || async {
            let i = self.invariant();
            (i.state == InvariantState::Holds && i.acked == n && i.applied == n).then_some(())
        })
        .await;
    }

    pub async fn shutdown(self) {
        self.app.shutdown().await
    }

    /// Shuts the app down; what it recorded as it stopped, in order ("producer flushed", …).
    pub async fn shutdown_stops(self) -> Vec<String> {
        let shared = self.app.shared.clone();
        self.app.shutdown().await;
        shared.health().stops()
    }
}

/// What the app knows now, read in-process: the verbs tests use instead of reaching into its
/// state, so the state's shape can change behind them.
impl TestApp {
    pub fn topic(&self) -> &str {
        self.shared.topic()
    }

    /// The balance calculator's counters (applied, duplicates, mismatches, …).
    pub fn stats(&self) -> LedgerStats {
        self.shared.ledger().stats()
    }

    /// Per account and transaction type, how the records of each key arrived in order.
    pub fn ordering(&self) -> OrderingStats {
        self.shared.ledger().ordering()
    }

    /// The next offset to apply, per partition the calculator holds.
    pub fn next_offsets(&self) -> BTreeMap<i32, i64> {
        self.shared.ledger().next_offsets()
    }

    pub fn account(&self, account: AccountId) -> AccountState {
        self.shared.ledger().account(account)
    }

    /// A page of the calculator's balances, as `/api/balances` serves it.
    pub fn ledger_balances(&self, after: AccountId, limit: usize) -> Balances {
        self.shared.balances(after, limit)
    }

    /// The producer's counters (sent, delivered, failed, held, …), as `/api/producer` has them.
    pub fn producer_counts(&self) -> ProducerStats {
        self.shared.producer().stats()
    }

    pub fn producer_id(&self) -> &str {
        self.shared.producer_id()
    }

    pub fn generator(&self) -> Option<GeneratorStatus> {
        self.shared.producer().generator()
    }

    pub fn invariant(&self) -> InvariantStatus {
        self.shared.invariant()
    }

    /// This app's records acknowledged but not applied yet.
    pub fn own_lag(&self) -> i64 {
        self.shared.own_lag()
    }

    pub fn group(&self) -> GroupStatus {
        self.shared.group().status()
    }

    /// The page's partition lanes: each partition's ends, owner and what this app applied.
    pub fn partition_views(&self) -> Vec<PartitionView> {
        self.shared.partition_views()
    }

    /// The partitions the calculator's group gave this app.
    pub fn assigned(&self) -> BTreeSet<i32> {
        self.shared.group().assigned()
    }

    pub fn store(&self) -> StoreHealth {
        self.shared.store().health()
    }

    /// Pauses or resumes the consumers (what the page's pause of consumption does).
    pub fn set_paused(&self, paused: bool) {
        self.calculator.set_paused(paused)
    }

    pub fn naive(&self) -> NaiveStatus {
        self.shared.lessons().naive().get()
    }

    pub fn outage(&self) -> OutageStatus {
        self.shared.lessons().outage().get()
    }

    pub fn replay(&self) -> ReplayStatus {
        self.shared.lessons().replay().get()
    }

    pub fn lessons(&self) -> LessonsStatus {
        self.shared.lessons().checks().get()
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
        let p = app.producer_counts();
        (p.delivered + p.failed == p.sent).then_some(p)
    })
    .await;
    assert_eq!(
        p.failed, failed_before,
        "nothing failed: {:?}",
        p.last_error
    );
    let (brokers, topic) = (app.brokers.clone(), app.topic().to_owned());
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
        let b = app.ledger_balances(0, 10_000);
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
        let i = app.invariant();
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

/// Per account: (balance in minor units, transactions), as [`recompute`] gives them.
pub fn by_account(b: &Balances) -> std::collections::BTreeMap<u32, (i64, u64)> {
    b.accounts
        .iter()
        .map(|a| (a.account, (a.balance.minor(), a.count)))
        .collect()
}
