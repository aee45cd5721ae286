//! Reads the dead-letter topic back for the page's dead-letter panel: the newest letters with
//! their reason, source position and a bounded preview. A plain assigned consumer that never
//! joins a group nor commits, starting a few letters before each partition's end, so the
//! panel shows real records of `<topic>.dlq` (what any other client of the topic would see),
//! not what the calculator meant to write.

use std::sync::Arc;
use std::time::Duration;

use cashflow_shared::poison::{DEAD_LETTERS_SHOWN, DeadLetterView, preview};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::kafka::Context;
use crate::kafka::consumer_config;
use crate::kafka::topics::dlq_topic;
use crate::state::Shared;
use crate::state::feed::DeadLetterWriter;

/// One record of the dead-letter topic as the panel shows it.
fn view(m: &impl Message) -> DeadLetterView {
    let mut v = DeadLetterView {
        dlq_partition: m.partition(),
        dlq_offset: m.offset(),
        partition: -1,
        offset: -1,
        bytes: m.payload().map_or(0, <[u8]>::len) as u64,
        preview: preview(m.payload().unwrap_or_default()),
        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
        ..DeadLetterView::default()
    };
    if let Some(headers) = m.headers() {
        for h in headers.iter() {
            let value = String::from_utf8_lossy(h.value.unwrap_or_default());
            match h.key {
                "cashflow.reason" => v.reason = value.chars().take(300).collect(),
                "cashflow.source.partition" => v.partition = value.parse().unwrap_or(-1),
                "cashflow.source.offset" => v.offset = value.parse().unwrap_or(-1),
                "cashflow.original.size" => v.bytes = value.parse().unwrap_or(v.bytes),
                _ => {}
            }
        }
    }
    v
}

pub async fn run(
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    letters: Arc<DeadLetterWriter>,
    mut ready: watch::Receiver<bool>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    // Letters of a topic deleted and created again go with it, also while this task was down.
    let mut recreations = shared.recreations();
    letters.topic_recreated(*recreations.borrow_and_update());
    if !crate::kafka::topics::until_ready(&mut ready, &token).await {
        return Ok(());
    }
    let topic = dlq_topic(&settings.topic);
    let mut cfg = consumer_config(
        &brokers,
        &settings.kafka,
        &format!("{}-dead-letter-view", settings.group_prefix),
    );
    cfg.set("enable.auto.commit", "false");
    // Apache Kafka answers a waiting fetch as soon as a letter arrives: a long wait costs no
    // latency, and an idle page's fetches become rare.
    crate::kafka::set_unless_given(&mut cfg, &settings.kafka, "fetch.wait.max.ms", "2000");
    let consumer: Arc<StreamConsumer<Context>> =
        Arc::new(cfg.create_with_context(Context::new(&shared, "dead-letter view"))?);
    // Where to start: a few letters before each partition's end (blocking calls, off the
    // runtime's threads).
    let (c, t) = (consumer.clone(), topic.clone());
    let start = tokio::task::spawn_blocking(move || -> anyhow::Result<TopicPartitionList> {
        let timeout = Duration::from_secs(10);
        let meta = c.fetch_metadata(Some(&t), timeout)?;
        let mut tpl = TopicPartitionList::new();
        for p in meta.topics().iter().flat_map(|t| t.partitions()) {
            let (lo, hi) = c.fetch_watermarks(&t, p.id(), timeout)?;
            let from = hi.saturating_sub(DEAD_LETTERS_SHOWN as i64).max(lo);
            tpl.add_partition_offset(&t, p.id(), Offset::Offset(from))?;
        }
        Ok(tpl)
    })
    .await??;
    if start.count() == 0 {
        anyhow::bail!("the dead-letter topic {topic} has no partitions yet");
    }
    consumer.assign(&start)?;
    loop {
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            Ok(()) = recreations.changed() => {
                letters.topic_recreated(*recreations.borrow_and_update());
            }
            m = consumer.recv() => match m {
                Ok(m) => letters.read(view(&m)),
                // Reported through the client context; the consumer goes on by itself.
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            },
        }
    }
}
