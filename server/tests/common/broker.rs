//! The Apache Kafka the tests use: the shared test broker (scripts/kafka.sh, started once per
//! test binary if it is not running) and its other listeners, or the managed broker an app
//! starts for itself.

use std::path::PathBuf;
use std::sync::OnceLock;

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
