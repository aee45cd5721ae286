//! Kafka client configuration (with `-X` checked and secrets redacted) and the client context
//! that routes librdkafka's errors, logs and rebalances into `tracing` and the shared state.

use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::{debug, info, warn};

use crate::state::Shared;

pub mod created_topics;
pub mod ffi;
pub mod managed;
pub mod polled;
pub mod progress;
pub mod reader;
pub mod topic_view;
pub mod topics;

use polled::{Futures, Polled};

/// Base configuration for every client: bootstrap servers plus the `-X` passthrough.
pub fn base_config(brokers: &str, extra: &[(String, String)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("client.id", "cashflow")
        // Topics are created explicitly (with the right partition count), never by a
        // metadata request.
        .set("allow.auto.create.topics", "false")
        // Reconnect quickly in a demo, but do not hammer an absent broker. (1 s was tried for
        // the outage lesson: its recovery did not change, the consumers' session is what it
        // waits for, and the one CI run with it saw a record written twice after a broker
        // SIGKILL; see BENCHMARKS.md, "The managed Apache Kafka broker".)
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "5000")
        .set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in extra {
        cfg.set(k, v);
    }
    cfg
}

/// An idempotent producer (`acks=all`, so nothing is duplicated or reordered by retries) whose
/// deliveries each fail after `message_timeout`; the caller decides what a failure means.
/// Served by a task ([`polled`]); made inside a Tokio runtime.
pub fn reliable_producer<C: ClientContext + 'static>(
    brokers: &str,
    extra: &[(String, String)],
    message_timeout: std::time::Duration,
    context: C,
) -> Result<Polled<Futures<C>>, KafkaError> {
    base_config(brokers, extra)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            message_timeout.as_millis().to_string(),
        )
        .create_with_context(Futures(context))
        .map(Polled::new)
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
    /// Which member of the balance calculator's group this client is (0: none).
    pub member: u32,
    /// That member's rows of the group (its partitions), which its rebalances write.
    group: Option<crate::state::group::MemberWriter>,
    /// Partitions revoked since the consume loop last asked (see [`Context::take_revoked`]).
    revoked: Arc<std::sync::Mutex<Vec<i32>>>,
}

impl Context {
    /// A client that is not one of the balance calculator's members.
    pub fn new(shared: &Arc<Shared>, role: &'static str) -> Context {
        Context::member(shared, role, None)
    }

    /// A member of the balance calculator's group (`None`: another consumer).
    pub fn member(
        shared: &Arc<Shared>,
        role: &'static str,
        member: Option<crate::state::group::MemberWriter>,
    ) -> Context {
        Context {
            shared: shared.clone(),
            role,
            member: member.as_ref().map_or(0, |m| m.number()),
            group: member,
            revoked: Arc::default(),
        }
    }

    /// The partitions revoked since the last call. A revocation runs inside a poll; records the
    /// consume loop had already taken from the client for a batch are not handled if their
    /// partition went meanwhile (their offsets were committed for the new owner without them).
    pub fn take_revoked(&self) -> Vec<i32> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }
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
        // Only the broker watch's own client decides reachability: the others (consumers
        // still in reconnect back-off after the broker is back) would report stale outages
        // and make the page's badge flicker.
        self.shared
            .health()
            .client_error(reason, all_down, self.role == ADMIN_ROLE);
    }
}

impl ConsumerContext for Context {
    /// Before partitions go to another member, commit what was handled: this runs inside a
    /// poll, between batches or in the middle of gathering one; every handled record's offset is
    /// stored, and records of a revoked partition already gathered are dropped unhandled (see
    /// [`Context::take_revoked`]). The new owner resumes exactly after the handled ones.
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

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        use rdkafka::consumer::Consumer;
        match rebalance {
            // Cooperative rebalancing reports many empty steps; only changes are worth a line.
            Rebalance::Assign(tpl) | Rebalance::Revoke(tpl) if tpl.count() == 0 => {}
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(consumer = self.role, member = self.member, partitions = ?parts, "partitions assigned");
                if let Some(group) = &self.group {
                    // Paused by the presenter: what arrives stays paused too (fetching stops
                    // for the whole group, its members stay in it).
                    if group.is_paused()
                        && let Err(e) = consumer.pause(tpl)
                    {
                        warn!(member = self.member, %e, "cannot pause the assigned partitions");
                    }
                    let id = crate::kafka::ffi::member_id(consumer).unwrap_or_default();
                    group.assigned(id, &parts);
                }
            }
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                self.revoked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(&parts);
                info!(consumer = self.role, member = self.member, partitions = ?parts, "partitions revoked");
                if let Some(group) = &self.group {
                    group.revoked(&parts);
                }
            }
            Rebalance::Error(e) => warn!(consumer = self.role, %e, "rebalance failed"),
        }
    }
}

/// Deletes a lesson's consumer group once it is empty, so it does not linger in the groups
/// panel. Failures are logged: a leftover group is harmless.
pub async fn delete_group(
    brokers: &str,
    extra: &[(String, String)],
    shared: &Arc<Shared>,
    group: &str,
) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let admin: AdminClient<Context> =
        match base_config(brokers, extra).create_with_context(Context::new(shared, ADMIN_ROLE)) {
            Ok(a) => a,
            Err(e) => {
                warn!(%group, %e, "cannot delete the group");
                return;
            }
        };
    let opts = AdminOptions::new().request_timeout(Some(std::time::Duration::from_secs(10)));
    match admin.delete_groups(&[group], &opts).await {
        Ok(r) if r.iter().all(|r| r.is_ok()) => info!(%group, "group deleted"),
        Ok(r) => warn!(%group, ?r, "the group was not deleted"),
        Err(e) => warn!(%group, %e, "the group was not deleted"),
    }
}

/// Configuration of a consumer in `group` that stores offsets only when told to
/// (`store_offset_from_message` after processing) and auto-commits what was stored. What the
/// at-least-once design depends on is fixed; the timings are defaults a user's `-X` overrides.
pub fn consumer_config(brokers: &str, extra: &[(String, String)], group: &str) -> ClientConfig {
    let mut cfg = base_config(brokers, extra);
    cfg.set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky");
    for (key, value) in CONSUMER_TIMINGS {
        set_unless_given(&mut cfg, extra, key, value);
    }
    cfg
}

/// Consumer timings cashflow chooses, unless the user sets them with `-X`.
const CONSUMER_TIMINGS: [(&str, &str); 4] = [
    // Commits only what changed since the last one (none while idle); once a second, as often
    // as the page's topic view asks for them (4 a second were a sixth of an idle demo's broker
    // work: BENCHMARKS.md, "The managed broker at idle").
    ("auto.commit.interval.ms", "1000"),
    // A killed member's partitions move after 10 s, not librdkafka's 45.
    ("session.timeout.ms", "10000"),
    // A member learns of a rebalance (a member added in the ordering lesson) at its next
    // heartbeat: within 2 s. Each heartbeat is a request to the broker, idle or not.
    ("heartbeat.interval.ms", "2000"),
    // librdkafka postpones a partition's next fetch by this much once its local queue is full
    // (default 1 s): a consumer that drains the queue quickly then sits idle for most of every
    // second. Measured (scripts/bench.sh's calculator): 246 k records/s with the default, 1.9 M
    // with 10 ms for a client that only counts.
    ("fetch.queue.backoff.ms", "10"),
    // librdkafka's fetch.wait.max.ms (500 ms) stays: 2 000 ms saved little at idle and the small
    // latency bench then saw single records wait 0.7–1.8 s at 1 and 10 tx/s (BENCHMARKS.md,
    // "The managed Apache Kafka broker").
];

/// Sets `key` unless the user's `-X` did.
pub fn set_unless_given(
    cfg: &mut ClientConfig,
    extra: &[(String, String)],
    key: &str,
    value: &str,
) {
    if !extra.iter().any(|(k, _)| k == key) {
        cfg.set(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_timings_win_and_the_design_does_not_give_way() {
        let extra: Vec<(String, String)> = [
            ("session.timeout.ms", "30000"),
            ("auto.commit.interval.ms", "5000"),
            ("group.id", "someone-else"),
            ("enable.auto.offset.store", "true"),
            ("auto.offset.reset", "latest"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = consumer_config("127.0.0.1:9092", &extra, "cashflow-balance");
        assert_eq!(cfg.get("session.timeout.ms"), Some("30000"));
        assert_eq!(cfg.get("auto.commit.interval.ms"), Some("5000"));
        assert_eq!(cfg.get("group.id"), Some("cashflow-balance"));
        assert_eq!(cfg.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(cfg.get("auto.offset.reset"), Some("earliest"));
        // Not set by the user: cashflow's.
        assert_eq!(cfg.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(cfg.get("heartbeat.interval.ms"), Some("2000"));
    }
}
