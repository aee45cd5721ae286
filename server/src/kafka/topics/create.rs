//! Checking the topics on the broker and creating the missing ones: one metadata round trip
//! each, and the id of every topic cashflow created kept, so a reset deletes only those.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::{info, warn};

use crate::kafka::Context;
use crate::kafka::created_topics::CreatedTopics;
use crate::kafka::ffi::TopicId;

use super::{TopicSpec, changelog_topic, dlq_topic};

/// Checks (and creates) the topic, then, with `all`, its dead-letter topic and the state
/// store's changelog (compacted, one partition per partition of the topic); the main topic's
/// partitions.
pub(super) async fn check_topics(
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
pub(super) enum CheckError {
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
