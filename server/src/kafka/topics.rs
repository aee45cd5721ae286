//! The topics cashflow uses and the broker watch: creates the topic, its dead-letter topic and
//! the state store's changelog once the broker is reachable, and keeps `/health` current.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::error::KafkaError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::kafka::Context;
use crate::kafka::created_topics::CreatedTopics;
use crate::kafka::progress::Stall;
use crate::state::{RestoredView, Shared};

mod create;

use create::{CheckError, check_topics};

/// The dead-letter topic of `topic`: records that are not transactions go there, with the reason
/// in headers.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// The state store's changelog topic of `topic` (see `state_store`).
pub fn changelog_topic(topic: &str) -> String {
    format!("{topic}.balances")
}

#[derive(Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Topic configuration when cashflow creates it (retention, cleanup policy).
    pub config: Vec<(&'static str, String)>,
    /// The balance calculator is "stuck" after this long without progress on records it has
    /// to read.
    pub stuck_after: Duration,
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
            stuck_after: settings.stuck_after,
        }
    }
}

/// Whether the balance calculator handles the records it has to read; `/health` names it as
/// stuck otherwise (under `tasks_down`, key [`STUCK_KEY`]).
async fn check_progress(
    admin: &Arc<AdminClient<Context>>,
    shared: &Arc<Shared>,
    restored: &RestoredView,
    topic: &str,
    partitions: usize,
    stall: &mut Stall,
) {
    if shared.store().health().restoring {
        shared.health().set_task_down(STUCK_KEY, None);
        return;
    }
    // Read before the ends: an offset applied now is below the end now, and ends only grow,
    // so an end below it means the topic's offsets started over.
    let applied = shared.ledger().next_offsets();
    let (a, t) = (admin.clone(), topic.to_owned());
    let ends = tokio::task::spawn_blocking(move || {
        let ends = crate::kafka::ffi::list_offsets(
            a.inner().native_client(),
            &t,
            partitions as i32,
            rdkafka::Offset::End,
            Duration::from_secs(3),
        )?;
        // Every partition answered, or the check waits for the next round.
        if ends.len() == partitions {
            Ok(ends)
        } else {
            Err(KafkaError::MetadataFetch(
                rdkafka::error::RDKafkaErrorCode::UnknownPartition,
            ))
        }
    })
    .await;
    let Ok(Ok(ends)) = ends else {
        return; // the broker watch reports an unreachable broker itself
    };
    let behind: Vec<String> = applied
        .iter()
        .filter(|(p, n)| ends.get(p).is_none_or(|end| end < *n))
        .map(|(p, n)| match ends.get(p) {
            Some(end) => format!("partition {p} ends at {end}, below {n} already applied"),
            None => format!("partition {p} is gone"),
        })
        .collect();
    if !behind.is_empty() {
        shared.start_afresh(restored, &behind.join("; "));
        return;
    }
    let next = shared.ledger().next_offsets();
    // Paused by the presenter, the calculator is meant to stand still while lag grows.
    let why = if shared.group().is_paused() {
        None
    } else {
        stall.check(Instant::now(), &ends, &next, &shared.group().assigned())
    };
    if let Some(why) = &why {
        warn!(topic, "balance calculator {why}");
    }
    shared.health().set_task_down(STUCK_KEY, why);
}

/// The `tasks_down` entry of a stuck balance calculator.
pub const STUCK_KEY: &str = "balance calculator progress";

/// Watches the broker: creates the topic and its dead-letter topic once it is reachable, keeps
/// `/health` current, and warns once per outage. Sends `true` on `ready` once both exist.
pub async fn watch_broker(
    admin: Arc<AdminClient<Context>>,
    shared: Arc<Shared>,
    topic: TopicSpec,
    ready: watch::Sender<bool>,
    restored: RestoredView,
    token: CancellationToken,
    created: Arc<CreatedTopics>,
) {
    let mut backoff = Duration::from_millis(200);
    let mut warned = false;
    let mut stall = Stall::new(topic.stuck_after);
    // The topic is checked every time (reachability, its partitions); the dead-letter topic
    // and the changelog, which only a deliberate deletion removes, every fifth time and after
    // any failure: one metadata request per check instead of three at idle.
    let mut checks = 0u64;
    let mut all = true;
    loop {
        let result =
            match check_topics(&admin, &topic, &created, all || checks.is_multiple_of(5)).await {
                // A client's own error (refused, authentication failed, TLS) says why.
                Err(CheckError::Unreachable(e)) => Err(CheckError::Unreachable(
                    shared.health().take_client_error().unwrap_or(e),
                )),
                other => other,
            };
        let ok = result.is_ok();
        checks += 1;
        all = !ok;
        shared.health().checked(
            ok || matches!(result, Err(CheckError::Topic(_))),
            result.as_ref().map(|p| *p as u32),
        );
        if let Ok(partitions) = &result
            && !*ready.borrow()
        {
            info!(topic = %topic.name, partitions, "topic ready");
        }
        match result {
            Ok(partitions) => {
                if warned {
                    info!(brokers = %shared.health().broker().bootstrap_servers, "broker reachable again");
                    warned = false;
                }
                ready.send_replace(true);
                backoff = Duration::from_secs(2);
                check_progress(
                    &admin,
                    &shared,
                    &restored,
                    &topic.name,
                    partitions,
                    &mut stall,
                )
                .await;
            }
            Err(e) => {
                if !warned {
                    warn!(brokers = %shared.health().broker().bootstrap_servers, "{e}; retrying with back-off");
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

/// Waits until the topic is ready; false if `token` was cancelled first (or the app is gone).
pub async fn until_ready(ready: &mut watch::Receiver<bool>, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        r = ready.wait_for(|r| *r) => r.is_ok(),
    }
}
