//! The consumer itself, around the loop: pause and resume, rewinding to the log start, which
//! errors are worth a retry, and the final commit and close.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::{debug, info, warn};

use crate::kafka::Context;

/// Whether a consumer error means "try again", not "give up".
pub fn is_transient(e: &KafkaError) -> bool {
    !matches!(
        e,
        KafkaError::MessageConsumption(RDKafkaErrorCode::Fatal) | KafkaError::ClientCreation(_)
    ) && !matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal))
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

/// Stops (or resumes) fetching every assigned partition; the consumer stays in its group and
/// goes on heartbeating, so the class sees lag grow without a rebalance. Partitions assigned
/// while paused are paused as they arrive ([`Context`]'s rebalance callback).
pub(super) fn set_paused(consumer: &StreamConsumer<Context>, paused: bool, role: &str) {
    let assigned = match consumer.assignment() {
        Ok(a) => a,
        Err(e) => {
            warn!(%e, "{role}: no assignment to pause or resume");
            return;
        }
    };
    let r = if paused {
        consumer.pause(&assigned)
    } else {
        consumer.resume(&assigned)
    };
    match r {
        Ok(()) => info!(
            paused,
            partitions = assigned.count(),
            "{role}: fetching {}",
            if paused { "paused" } else { "resumed" }
        ),
        Err(e) => warn!(%e, "{role}: cannot change pausing"),
    }
}

/// Moves every assigned partition of `topic` to its beginning.
pub(super) fn rewind(consumer: &StreamConsumer<Context>, topic: &str, role: &str) {
    use rdkafka::consumer::Consumer;
    let assigned: Vec<i32> = consumer
        .assignment()
        .map(|a| {
            a.elements_for_topic(topic)
                .iter()
                .map(|e| e.partition())
                .collect()
        })
        .unwrap_or_default();
    let mut start = rdkafka::TopicPartitionList::new();
    for p in assigned {
        if let Err(e) = consumer.seek(topic, p, rdkafka::Offset::Beginning, Duration::from_secs(1))
        {
            warn!(partition = p, %e, "{role}: cannot move to the new topic's beginning");
        }
        let _ = start.add_partition_offset(topic, p, rdkafka::Offset::Offset(0));
    }
    // librdkafka auto-commits a stored offset only above the one it last committed, and both
    // marks were the old topic's: the new topic's offsets stayed below them, so nothing was
    // committed and the broker's lag grew while every record was applied (issue 21). Storing
    // and committing the new beginning (nothing of the new topic is handled yet, so
    // at-least-once holds) moves both marks back.
    if start.count() > 0 {
        if let Err(e) = consumer.store_offsets(&start) {
            warn!(%e, "{role}: cannot store the re-created topic's beginning");
        }
        if let Err(e) = consumer.commit(&start, rdkafka::consumer::CommitMode::Async) {
            warn!(%e, "{role}: cannot commit the re-created topic's beginning");
        }
    }
    info!(%topic, "{role}: reading the re-created topic from its beginning");
}
