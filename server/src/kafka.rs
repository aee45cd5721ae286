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

/// Property names whose values are secrets: never logged.
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "sasl.oauthbearer.config",
        "key.pem",
        "token",
    ]
    .iter()
    .any(|s| k.contains(s))
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
}

/// The dead-letter topic of `topic`: malformed records go there, with the reason in headers.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Checks (and creates) the topic, then its dead-letter topic; the main topic's partitions.
async fn check_topics(
    admin: &Arc<AdminClient<Context>>,
    topic: &TopicSpec,
) -> Result<usize, CheckError> {
    let n = check_once(admin, topic).await?;
    let dlq = TopicSpec {
        name: dlq_topic(&topic.name),
        partitions: topic.partitions,
        replication: topic.replication,
    };
    check_once(admin, &dlq).await?;
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
                if !*ready.borrow() {
                    warn_if_records_expire(&admin, &topic.name).await;
                }
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

/// A topic created elsewhere (or by an older version) may delete old records; balances rebuilt
/// from it at the next start would then silently omit them. Say so once, at start.
async fn warn_if_records_expire(admin: &AdminClient<Context>, topic: &str) {
    use rdkafka::admin::ResourceSpecifier;
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &opts)
        .await;
    let retention = match described.as_deref() {
        Ok([Ok(resource)]) => resource
            .get("retention.ms")
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.trim().parse::<i64>().ok()),
        _ => None,
    };
    match retention {
        Some(ms) if ms >= 0 => warn!(
            topic,
            retention_ms = ms,
            "the topic deletes records older than its retention; balances are rebuilt from the \
             topic at start, so a restart after that long omits them (set retention.ms=-1)"
        ),
        Some(_) => {}
        None => debug!(topic, "retention.ms not known"),
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
    // Kept forever: the topic is the bank's journal, and balances are rebuilt from it at start.
    let new = NewTopic::new(
        &topic.name,
        topic.partitions,
        TopicReplication::Fixed(topic.replication),
    )
    .set("retention.ms", "-1")
    .set("retention.bytes", "-1");
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

/// Whether a consumer error means "try again", not "give up".
pub fn is_transient(e: &KafkaError) -> bool {
    !matches!(
        e,
        KafkaError::MessageConsumption(RDKafkaErrorCode::Fatal) | KafkaError::ClientCreation(_)
    ) && !matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal))
}

/// Configuration of a consumer in `group` that stores offsets only when told to
/// (`store_offset_from_message` after processing) and auto-commits what was stored.
pub fn consumer_config(brokers: &str, extra: &[(String, String)], group: &str) -> ClientConfig {
    let mut cfg = base_config(brokers, extra);
    cfg.set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("partition.assignment.strategy", "cooperative-sticky");
    cfg
}

/// Logs at most `per_second` events a second, then how many were held back.
pub struct RateLimitedLog {
    per_second: u32,
    window_start: std::time::Instant,
    in_window: u32,
    suppressed: u64,
}

impl RateLimitedLog {
    pub fn new(per_second: u32) -> Self {
        RateLimitedLog {
            per_second,
            window_start: std::time::Instant::now(),
            in_window: 0,
            suppressed: 0,
        }
    }

    /// Whether to log this event; `Some(n)` as the second value when `n` were held back
    /// in the window that just ended.
    pub fn admit(&mut self) -> (bool, Option<u64>) {
        let mut held = None;
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                held = Some(self.suppressed);
            }
            self.window_start = std::time::Instant::now();
            self.in_window = 0;
            self.suppressed = 0;
        }
        if self.in_window < self.per_second {
            self.in_window += 1;
            (true, held)
        } else {
            self.suppressed += 1;
            (false, held)
        }
    }
}

/// Final synchronous commit of the stored offsets, then close (leaving the group). Both block
/// on the broker, so they run on the blocking pool, never on a runtime worker.
pub async fn close_consumer(
    consumer: rdkafka::consumer::StreamConsumer<Context>,
    role: &'static str,
) {
    use rdkafka::consumer::{CommitMode, Consumer};
    let done = tokio::task::spawn_blocking(move || {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => info!(consumer = role, "committed offsets"),
            // NoOffset: nothing consumed since the last commit.
            Err(e) => debug!(consumer = role, %e, "final commit"),
        }
        drop(consumer);
    });
    if let Err(e) = done.await {
        warn!(consumer = role, %e, "closing failed");
    }
}

/// What a [`consume`] handler makes of a record.
pub enum Verdict {
    /// Handled: its offset is stored.
    Done,
    /// Refused: it goes to the dead-letter topic, then its offset is stored.
    DeadLetter(DeadLetter),
    /// Not yet: this blocking work (catching up records handled elsewhere) runs on the blocking
    /// pool, retried with back-off until it succeeds, and then the same record is handed over
    /// again.
    CatchUp(Box<dyn FnOnce() -> anyhow::Result<()> + Send>),
}

/// A record the handler refuses: why, and what to do once it is safely in the dead-letter topic.
pub struct DeadLetter {
    pub reason: String,
    pub on_written: Box<dyn FnOnce() + Send>,
}

/// Writes records that are not transactions to the dead-letter topic, untouched, with headers
/// `cashflow.reason`, `cashflow.source.topic`, `cashflow.source.partition` and
/// `cashflow.source.offset`.
pub struct DeadLetters {
    producer: rdkafka::producer::FutureProducer<Context>,
    topic: String,
}

impl DeadLetters {
    pub fn new(
        settings: &crate::config::Settings,
        brokers: &str,
        shared: &Arc<Shared>,
    ) -> anyhow::Result<DeadLetters> {
        let mut cfg = base_config(brokers, &settings.kafka);
        cfg.set("enable.idempotence", "true").set("acks", "all");
        let producer = cfg.create_with_context(Context {
            shared: shared.clone(),
            role: "dead-letter producer",
        })?;
        Ok(DeadLetters {
            producer,
            topic: dlq_topic(&settings.topic),
        })
    }

    /// Sends one dead letter and waits for Kafka to acknowledge it, retrying until it does.
    /// False if shutdown came first.
    async fn send(
        &self,
        msg: &rdkafka::message::BorrowedMessage<'_>,
        reason: &str,
        token: &CancellationToken,
    ) -> bool {
        use rdkafka::message::{Header, Message, OwnedHeaders};
        use rdkafka::producer::FutureRecord;
        let (partition, offset) = (msg.partition().to_string(), msg.offset().to_string());
        let mut backoff = Duration::from_millis(200);
        loop {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "cashflow.reason",
                    value: Some(reason),
                })
                .insert(Header {
                    key: "cashflow.source.topic",
                    value: Some(msg.topic()),
                })
                .insert(Header {
                    key: "cashflow.source.partition",
                    value: Some(&partition),
                })
                .insert(Header {
                    key: "cashflow.source.offset",
                    value: Some(&offset),
                });
            let mut record = FutureRecord::to(&self.topic).headers(headers);
            if let Some(k) = msg.key() {
                record = record.key(k);
            }
            if let Some(p) = msg.payload() {
                record = record.payload(p);
            }
            tokio::select! {
                _ = token.cancelled() => return false,
                r = self.producer.send(record, Duration::from_secs(10)) => match r {
                    Ok(_) => return true,
                    Err((e, _)) => warn!(%e, topic = %self.topic, "dead letter not written yet; retrying"),
                }
            }
            tokio::select! {
                _ = token.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// Runs a consumer in group `<prefix>-<suffix>` on the topic once it is `ready`: `handle` sees
/// each record (see [`Verdict`]: a dead letter is sent to `dead_letters` and acknowledged, a
/// catch-up runs first), and only then is the record's offset stored (auto-commit commits stored
/// offsets only), so a crash re-delivers rather than loses. At shutdown the stored offsets are
/// committed and the consumer leaves its group.
#[allow(clippy::too_many_arguments)] // each is a distinct input; a struct would only rename them
pub async fn consume(
    settings: &crate::config::Settings,
    brokers: &str,
    shared: &Arc<Shared>,
    mut ready: watch::Receiver<bool>,
    token: CancellationToken,
    (suffix, role): (&str, &'static str),
    dead_letters: Option<DeadLetters>,
    mut handle: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> Verdict,
) -> anyhow::Result<()> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let group = format!("{}-{suffix}", settings.group_prefix);
    let consumer: StreamConsumer<Context> = consumer_config(brokers, &settings.kafka, &group)
        .create_with_context(Context {
            shared: shared.clone(),
            role,
        })?;
    let ready = tokio::select! {
        _ = token.cancelled() => false,
        r = ready.wait_for(|r| *r) => r.is_ok(),
    };
    if !ready {
        return Ok(());
    }
    consumer.subscribe(&[&settings.topic])?;
    info!(%group, topic = %settings.topic, "{role} started");
    let mut errors = RateLimitedLog::new(1);
    loop {
        let msg = tokio::select! {
            _ = token.cancelled() => break,
            m = consumer.recv() => m,
        };
        match msg {
            Ok(msg) => {
                let mut backoff = Duration::from_millis(200);
                let verdict = loop {
                    let work = match handle(&msg) {
                        Verdict::CatchUp(work) => work,
                        other => break Some(other),
                    };
                    let result = tokio::select! {
                        _ = token.cancelled() => break None,
                        r = tokio::task::spawn_blocking(work) => r,
                    };
                    match result.map_err(anyhow::Error::from).and_then(|r| r) {
                        Ok(()) => backoff = Duration::from_millis(200),
                        Err(e) => {
                            warn!("{role}: catching up failed: {e:#}; retrying");
                            tokio::select! {
                                _ = token.cancelled() => break None,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                // Shutting down mid catch-up: the offset is not stored; read again next start.
                let Some(verdict) = verdict else { break };
                if let Verdict::DeadLetter(letter) = verdict {
                    if let Some(dl) = &dead_letters
                        && !dl.send(&msg, &letter.reason, &token).await
                    {
                        // Shutting down before the dead letter was written: its offset is not
                        // stored, so the record is read again at the next start.
                        break;
                    }
                    (letter.on_written)();
                }
                if let Err(e) = consumer.store_offset_from_message(&msg) {
                    warn!(%e, "{role} could not store its offset");
                }
            }
            Err(e) if is_transient(&e) => {
                if errors.admit().0 {
                    warn!(%e, "{role}: receive failed; retrying");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    close_consumer(consumer, role).await;
    Ok(())
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
            ("linger.ms", "5"),
        ]));
        for n in 1..=7 {
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
