//! A plain assigned reader of the topic and the changelog, for restore and catch-up: reads
//! offset ranges of several partitions at once and knows where each ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::Settings;
use crate::kafka::consumer_config;

/// The reader's client context: reaching a partition's end is how a read finishes, not an
/// error worth a log line; other errors surface through `poll`.
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_)) {
            debug!(%error, "reader: {reason}");
        }
    }
}

impl ConsumerContext for ReaderContext {}

pub type Reader = BaseConsumer<ReaderContext>;

/// Why a read stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("no record arrived for 60 s")]
    Stalled,
    #[error("stopped")]
    Cancelled,
}

/// A reader sharing the calculator's group id to read the group's committed offsets (and, after
/// the start's restore, to commit the restored position: see `restore::commit_restored`); it
/// never joins the group.
pub fn reader(settings: &Settings, brokers: &str) -> anyhow::Result<Reader> {
    let group = format!("{}-balance", settings.group_prefix);
    let mut cfg = consumer_config(brokers, &settings.kafka, &group);
    cfg.set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "100");
    Ok(cfg.create_with_context(ReaderContext)?)
}

/// Reads `[from, to)` of each partition in `ranges` at once, handing each record to `f`. A
/// partition is finished at the first record at or past `to`, or at its end as the consumer
/// reaches it (partition EOF): an end reached through offsets that hold no record (transaction
/// markers, aborted or compacted records) is still the end.
pub fn read_ranges(
    consumer: &Reader,
    topic: &str,
    ranges: &BTreeMap<i32, (i64, i64)>,
    token: &CancellationToken,
    mut f: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), ReadError> {
    let mut open: BTreeMap<i32, i64> = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for (p, (from, to)) in ranges.iter().filter(|(_, (from, to))| from < to) {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*from))?;
        open.insert(*p, *to);
    }
    if open.is_empty() {
        return Ok(());
    }
    consumer.assign(&tpl)?;
    let mut idle = Instant::now();
    while !open.is_empty() {
        if token.is_cancelled() {
            return Err(ReadError::Cancelled);
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle = Instant::now();
                let Some(to) = open.get(&m.partition()).copied() else {
                    continue;
                };
                if m.offset() >= to {
                    open.remove(&m.partition());
                } else {
                    f(&m);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(e.into()),
            None if idle.elapsed() > Duration::from_secs(60) => return Err(ReadError::Stalled),
            None => {}
        }
    }
    consumer.unassign()?;
    Ok(())
}
