//! Kafka client configuration, the client context (errors → health), topic creation and the
//! broker watch that keeps `/health` true.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::state::Shared;

/// Property names whose values are secrets: never logged. Besides passwords, secrets and
/// tokens: key passphrases, inline PEM keys and certificates (`ssl.key.pem`,
/// `ssl.certificate.pem`, …), `*.key` values and the OAUTHBEARER configuration.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passphrase",
        "secret",
        "token",
        "sasl.oauthbearer.config",
        "key.pem",
    ]
    .iter()
    .any(|s| k.contains(s))
        || k.ends_with(".pem")
        || k.ends_with(".key")
}

/// `-X` properties as they may be logged.
pub fn describe_properties(props: &[(String, String)]) -> String {
    props
        .iter()
        .map(|(k, v)| {
            if is_secret(k) {
                format!("{k}=***")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks `-X` properties with librdkafka itself, so a typo fails at start with its name: each
/// one alone for unknown names and bad values, then all together, since some only make sense
/// together (`security.protocol=sasl_ssl` needs its `sasl.mechanism`).
pub fn validate_properties(props: &[(String, String)]) -> Result<(), String> {
    let mut all = ClientConfig::new();
    all.set("group.id", "cashflow-validate");
    for (k, v) in props {
        let mut cfg = ClientConfig::new();
        cfg.set("group.id", "cashflow-validate").set(k, v);
        if let Err(e @ KafkaError::ClientConfig(..)) = cfg.create::<BaseConsumer>() {
            let shown = if is_secret(k) { "***" } else { v.as_str() };
            return Err(format!("-X {k}={shown}: {}", kafka_reason(&e)));
        }
        all.set(k, v);
    }
    match all.create::<BaseConsumer>() {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "-X {}: {}",
            describe_properties(props),
            kafka_reason(&e)
        )),
    }
}

fn kafka_reason(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, desc, _, _) => desc.clone(),
        other => other.to_string(),
    }
}

/// Base configuration for every client: bootstrap servers plus the `-X` passthrough.
pub fn base_config(brokers: &str, extra: &[(String, String)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("client.id", "cashflow")
        // Topics are created explicitly (with the right partition count), never by a
        // metadata request.
        .set("allow.auto.create.topics", "false")
        // Reconnect quickly in a demo, but do not hammer an absent broker.
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "5000")
        .set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in extra {
        cfg.set(k, v);
    }
    cfg
}

/// The role of the client the broker watch uses.
pub const ADMIN_ROLE: &str = "admin";
/// The role of the balance calculator's consumer (its assignment is shown on the page).
pub const BALANCE_ROLE: &str = "balance calculator";

/// Routes librdkafka's errors and logs into `tracing` and the shared broker health.
#[derive(Clone)]
pub struct Context {
    pub shared: Arc<Shared>,
    pub role: &'static str,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // Connection failures are reported once by the broker watch; keep these at debug.
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                warn!(client = self.role, fac, "{log_message}")
            }
            _ => debug!(client = self.role, fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        debug!(client = self.role, %error, "{reason}");
        let all_down = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown)
        );
        // "All brokers down" is the consequence; keep the cause for the broker watch.
        if !all_down {
            self.shared.set_client_error(reason.to_owned());
        }
        let mut b = self.shared.broker();
        if !all_down {
            b.last_error = Some(reason.to_owned());
        }
        // Only the broker watch's own client decides reachability: the others (consumers
        // still in reconnect back-off after the broker is back) would report stale outages and
        // make the page's badge flicker.
        if self.role == ADMIN_ROLE && all_down {
            b.reachable = false;
        }
    }
}

impl ConsumerContext for Context {
    /// Before partitions go to another member, commit what was handled: records are handled one
    /// at a time between polls (and this runs inside a poll), so every handled record's offset
    /// is stored and none is half-done. The new owner resumes exactly after them.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        use rdkafka::consumer::{CommitMode, Consumer};
        if let Rebalance::Revoke(tpl) = rebalance
            && tpl.count() > 0
        {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => info!(consumer = self.role, "committed offsets before revocation"),
                // NoOffset: nothing handled since the last commit.
                Err(e) => debug!(consumer = self.role, %e, "commit before revocation"),
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            // Cooperative rebalancing reports many empty steps; only changes are worth a line.
            Rebalance::Assign(tpl) | Rebalance::Revoke(tpl) if tpl.count() == 0 => {}
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(consumer = self.role, partitions = ?parts, "partitions assigned");
                if self.role == BALANCE_ROLE {
                    self.shared.set_assigned(parts, true);
                }
            }
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(consumer = self.role, partitions = ?parts, "partitions revoked");
                if self.role == BALANCE_ROLE {
                    self.shared.set_assigned(parts, false);
                }
            }
            Rebalance::Error(e) => warn!(consumer = self.role, %e, "rebalance failed"),
        }
    }
}

pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Topic configuration when cashflow creates it (retention, cleanup policy).
    pub config: Vec<(&'static str, String)>,
}

impl TopicSpec {
    /// The transactions topic: records kept for `retention_ms` and up to `retention_bytes` per
    /// partition (-1: no limit). Balances do not need old records (they are restored from the
    /// state store's snapshots).
    pub fn source(settings: &crate::config::Settings) -> TopicSpec {
        TopicSpec {
            name: settings.topic.clone(),
            partitions: settings.partitions,
            replication: settings.replication_factor,
            config: vec![
                ("retention.ms", settings.retention_ms.to_string()),
                ("retention.bytes", settings.retention_bytes().to_string()),
            ],
        }
    }
}

/// The dead-letter topic of `topic`: malformed records go there, with the reason in headers.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Checks (and creates) the topic, then its dead-letter topic and the state store's changelog
/// (compacted, one partition per partition of the topic); the main topic's partitions.
async fn check_topics(
    admin: &Arc<AdminClient<Context>>,
    topic: &TopicSpec,
) -> Result<usize, CheckError> {
    let n = check_once(admin, topic).await?;
    let dlq = TopicSpec {
        name: dlq_topic(&topic.name),
        config: topic.config.clone(),
        ..*topic
    };
    check_once(admin, &dlq).await?;
    let changelog = TopicSpec {
        name: crate::state_store::changelog_topic(&topic.name),
        partitions: n as i32,
        replication: topic.replication,
        config: vec![
            ("cleanup.policy", "compact".into()),
            // Compaction works on closed segments: roll them often enough that old snapshots
            // go within minutes.
            ("segment.ms", "600000".into()),
            ("min.cleanable.dirty.ratio", "0.1".into()),
        ],
    };
    let m = check_once(admin, &changelog).await?;
    if m != n {
        return Err(CheckError::Topic(format!(
            "{} has {m} partitions, {} has {n}: delete the changelog so it is made again",
            changelog.name, topic.name
        )));
    }
    Ok(n)
}

/// Watches the broker: creates the topic and its dead-letter topic once it is reachable, keeps
/// `/health` current, and warns once per outage. Sends `true` on `ready` once both exist.
pub async fn watch_broker(
    admin: Arc<AdminClient<Context>>,
    shared: Arc<Shared>,
    topic: TopicSpec,
    ready: watch::Sender<bool>,
    token: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    let mut warned = false;
    loop {
        let result = match check_topics(&admin, &topic).await {
            // A client's own error (refused, authentication failed, TLS) says why.
            Err(CheckError::Unreachable(e)) => Err(CheckError::Unreachable(
                shared.take_client_error().unwrap_or(e),
            )),
            other => other,
        };
        let ok = result.is_ok();
        {
            let mut b = shared.broker();
            b.reachable = ok || matches!(result, Err(CheckError::Topic(_)));
            match &result {
                Ok(partitions) => {
                    b.topic_ready = true;
                    b.partitions = *partitions as u32;
                    if !*ready.borrow() {
                        info!(topic = %topic.name, partitions, "topic ready");
                    }
                }
                Err(e) => b.last_error = Some(e.to_string()),
            }
        }
        match result {
            Ok(_) => {
                if warned {
                    info!(brokers = %shared.broker().bootstrap_servers, "broker reachable again");
                    warned = false;
                }
                ready.send_replace(true);
                backoff = Duration::from_secs(2);
            }
            Err(e) => {
                if !warned {
                    warn!(brokers = %shared.broker().bootstrap_servers, "{e}; retrying with back-off");
                    warned = true;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error("broker unreachable: {0}")]
    Unreachable(String),
    #[error("cannot create topic: {0}")]
    Topic(String),
}

fn topic_partitions(admin: &AdminClient<Context>, name: &str) -> Result<Option<usize>, KafkaError> {
    let m = admin
        .inner()
        .fetch_metadata(Some(name), Duration::from_secs(3))?;
    Ok(m.topics()
        .iter()
        .find(|t| t.name() == name)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len()))
}

async fn partitions_of(
    admin: &Arc<AdminClient<Context>>,
    name: &str,
) -> Result<Option<usize>, CheckError> {
    let (a, n) = (admin.clone(), name.to_owned());
    tokio::task::spawn_blocking(move || topic_partitions(&a, &n))
        .await
        .map_err(|e| CheckError::Unreachable(e.to_string()))?
        .map_err(|e| CheckError::Unreachable(e.to_string()))
}

/// One metadata round trip; creates the topic when it is missing. Returns its partition count.
async fn check_once(
    admin: &Arc<AdminClient<Context>>,
    topic: &TopicSpec,
) -> Result<usize, CheckError> {
    if let Some(n) = partitions_of(admin, &topic.name).await? {
        return Ok(n);
    }
    let mut new = NewTopic::new(
        &topic.name,
        topic.partitions,
        TopicReplication::Fixed(topic.replication),
    );
    for (k, v) in &topic.config {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    let res = admin
        .create_topics([&new], &opts)
        .await
        .map_err(|e| CheckError::Unreachable(e.to_string()))?;
    for r in res {
        match r {
            Ok(_) => info!(topic = %topic.name, partitions = topic.partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(CheckError::Topic(format!("{name}: {code}"))),
        }
    }
    // A new topic reaches the metadata a moment after its creation is acknowledged.
    for _ in 0..20 {
        if let Some(n) = partitions_of(admin, &topic.name).await? {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(CheckError::Topic(
        "created, but not in the metadata after 2 s".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secrets_are_redacted() {
        let shown = describe_properties(&props(&[
            ("sasl.username", "teacher"),
            ("sasl.password", "p1"),
            ("ssl.key.password", "p2"),
            ("ssl.keystore.password", "p3"),
            ("sasl.oauthbearer.client.secret", "p4"),
            ("sasl.oauthbearer.config", "principal=x p5"),
            ("ssl.key.pem", "p6"),
            ("SASL.PASSWORD", "p7"),
            ("ssl.key.passphrase", "p8"),
            ("ssl.certificate.pem", "p9"),
            ("ssl_engine.key", "p10"),
            ("linger.ms", "5"),
        ]));
        for n in 1..=10 {
            assert!(!shown.contains(&format!("p{n}")), "p{n} shown in {shown}");
        }
        assert!(shown.contains("sasl.username=teacher"));
        assert!(shown.contains("sasl.password=***"));
        assert!(shown.contains("linger.ms=5"));
    }

    #[test]
    fn properties_are_checked_alone_and_together() {
        assert!(validate_properties(&props(&[("linger.ms", "5")])).is_ok());
        let e = validate_properties(&props(&[("linger.ms", "soon")])).unwrap_err();
        assert!(e.contains("linger.ms"), "{e}");
        let sasl = props(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "u"),
            ("sasl.password", "secret-value"),
        ]);
        assert!(validate_properties(&sasl).is_ok());
        // TLS and SCRAM are built in (librdkafka with OpenSSL).
        let tls = props(&[
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ]);
        assert_eq!(validate_properties(&tls), Ok(()));
        let e = validate_properties(
            &sasl[..1]
                .iter()
                .chain(&sasl[3..])
                .cloned()
                .collect::<Vec<_>>(),
        )
        .unwrap_err();
        assert!(!e.contains("secret-value"), "{e}");
    }
}
