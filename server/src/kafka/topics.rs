//! The topics cashflow uses and the broker watch: creates the topic, its dead-letter topic and
//! the state store's changelog once the broker is reachable, and keeps `/health` current.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::kafka::Context;
use crate::kafka::created_topics::CreatedTopics;
use crate::kafka::ffi::TopicId;
use crate::kafka::progress::Stall;
use crate::state::{RestoredView, Shared};

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

/// Checks (and creates) the topic, then, with `all`, its dead-letter topic and the state
/// store's changelog (compacted, one partition per partition of the topic); the main topic's
/// partitions.
async fn check_topics(
    admin: &Arc<AdminClient<Context>>,
    topic: &TopicSpec,
    created: &Arc<CreatedTopics>,
    all: bool,
) -> Result<usize, CheckError> {
    let (n, made) = check_once(admin, topic, created).await?;
    // A topic made again (a reset, someone's deletion): its companions are likely gone too.
    if !all && !made {
        return Ok(n);
    }
    let dlq = TopicSpec {
        name: dlq_topic(&topic.name),
        config: topic.config.clone(),
        ..*topic
    };
    check_once(admin, &dlq, created).await?;
    let changelog = TopicSpec {
        name: changelog_topic(&topic.name),
        partitions: n as i32,
        replication: topic.replication,
        config: vec![
            ("cleanup.policy", "compact".into()),
            // Compaction works on closed segments: roll them often enough that old snapshots
            // go within minutes.
            ("segment.ms", "600000".into()),
            ("min.cleanable.dirty.ratio", "0.1".into()),
        ],
        stuck_after: topic.stuck_after,
    };
    let (m, _) = check_once(admin, &changelog, created).await?;
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
            result
                .as_ref()
                .map(|p| *p as u32)
                .map_err(|e| e.to_string()),
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

/// Keeps the id of a topic cashflow created (see [`CreatedTopics::pending`]), so a reset may
/// delete it (and only it). The broker that answers may not know the new topic yet: asked a
/// few times here, and again at the broker watch's next checks until it answers.
async fn record_created(admin: &Arc<AdminClient<Context>>, name: &str, created: &CreatedTopics) {
    if !created.is_pending(name) {
        return;
    }
    let mut last = String::new();
    for _ in 0..5 {
        let (a, n) = (admin.clone(), name.to_owned());
        let ids = tokio::task::spawn_blocking(move || {
            crate::kafka::ffi::topic_ids(a.inner().native_client(), &[&n], Duration::from_secs(2))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match ids.as_deref() {
            Ok([(_, TopicId::Id(id))]) => {
                if let Err(e) = created.record(name, id) {
                    warn!(topic = name, "{e}: a reset will not delete this topic");
                }
                return;
            }
            Ok(other) => last = format!("described as {other:?}"),
            Err(e) => last = e.clone(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    warn!(
        topic = name,
        "created, but its id is not known yet ({last}); asking again at the next check"
    );
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

/// One metadata round trip; creates the topic when it is missing. Returns its partition count,
/// and whether it was created now.
async fn check_once(
    admin: &Arc<AdminClient<Context>>,
    topic: &TopicSpec,
    created: &CreatedTopics,
) -> Result<(usize, bool), CheckError> {
    if let Some(n) = partitions_of(admin, &topic.name).await? {
        if created.is_pending(&topic.name) {
            record_created(admin, &topic.name, created).await;
        }
        return Ok((n, false));
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
            Ok(_) => {
                info!(topic = %topic.name, partitions = topic.partitions, "created topic");
                // Its id is recorded once the metadata shows it, on this check or a later one.
                created.pending(&topic.name);
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(CheckError::Topic(format!("{name}: {code}"))),
        }
    }
    // A new topic reaches the metadata a moment after its creation is acknowledged.
    for _ in 0..20 {
        if let Some(n) = partitions_of(admin, &topic.name).await? {
            record_created(admin, &topic.name, created).await;
            return Ok((n, true));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(CheckError::Topic(
        "created, but not in the metadata after 2 s".into(),
    ))
}

/// Waits until the topic is ready; false if `token` was cancelled first (or the app is gone).
pub async fn until_ready(ready: &mut watch::Receiver<bool>, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        r = ready.wait_for(|r| *r) => r.is_ok(),
    }
}
