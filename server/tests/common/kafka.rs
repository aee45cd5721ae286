//! Kafka seen from outside the app: plain clients that read a topic whole, write raw records,
//! and ask for a group's committed offsets or a topic's configuration.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::app::unique;

pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Every record of `topic`, read with a plain assigned consumer (no group), in partition order.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let parts: Vec<i32> = meta.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    let mut ends = std::collections::HashMap::new();
    for p in &parts {
        let (lo, hi) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(*p, hi);
        remaining += (hi - lo) as usize;
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(remaining);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while out.len() < remaining {
        assert!(
            std::time::Instant::now() < deadline,
            "read only {} of {remaining} records",
            out.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = match m {
                Ok(m) => m,
                // A broker of a cluster down (the replication test): the client goes on with
                // the others.
                Err(rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure
                    | rdkafka::types::RDKafkaErrorCode::AllBrokersDown,
                )) => continue,
                Err(e) => panic!("record: {e}"),
            };
            if m.offset() < ends[&m.partition()] {
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| k.to_vec()),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

/// A plain producer for writing records by hand.
pub fn raw_producer(brokers: &str) -> rdkafka::producer::FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

/// Per account (balance in minor units from an opening 100.00, count) recomputed from the
/// topic's records, each transaction id counted once.
pub fn recompute(records: &[Record]) -> std::collections::BTreeMap<u32, (i64, u64)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = std::collections::BTreeMap::new();
    for r in records {
        let tx = cashflow_shared::Transaction::parse(&r.payload)
            .expect("the producer writes valid records");
        if seen.insert(tx.transaction_id.clone()) {
            let e = out.entry(tx.account).or_insert((10_000, 0));
            e.0 += tx.delta().minor();
            e.1 += 1;
        }
    }
    out
}

/// One configuration value of `topic`, as the broker describes it.
pub async fn topic_config(brokers: &str, topic: &str, name: &str) -> Option<String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let described = admin
        .describe_configs(
            [&ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("describe configs");
    let resource = described.into_iter().next()?.ok()?;
    resource.get(name)?.value.clone()
}

/// Writes `(key, payload)` records to `topic` with a plain producer as fast as it takes them
/// (waiting while its queue is full), and waits until all are acknowledged.
pub fn write_records(
    brokers: &str,
    topic: &str,
    records: impl IntoIterator<Item = (String, Vec<u8>)>,
) {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    let p: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "10")
        .set("message.max.bytes", "2000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for (k, v) in records {
        let mut r = BaseRecord::<String, Vec<u8>>::to(topic).key(&k).payload(&v);
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
}

/// `group`'s committed offsets on partitions `0..partitions` of `topic` (those committed).
pub fn committed_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> std::collections::BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("offsets client");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .filter_map(|e| Some((e.partition(), e.offset().to_raw().filter(|o| *o >= 0)?)))
        .collect()
}
