//! `/metrics` in the Prometheus text format, the convention Kafka tooling speaks.
//!
//! One collector reads the numbers at scrape time from where they already live (the producer's
//! counts, the ledger's, the broker's view of the topic, the hub), so nothing on the hot paths
//! counts twice. Counters go up for the life of the process (a "reset the demo" starts the
//! ledger's again, which Prometheus reads as a counter reset).

use std::fmt;
use std::sync::Arc;

use cashflow_shared::latency::TOTAL_BOUNDS_MS;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::http::hub::Hub;
use crate::kafka::topic_view::TopicViews;
use crate::state::Shared;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The registry `/metrics` renders.
#[derive(Clone)]
pub struct Metrics(Arc<Registry>);

impl Metrics {
    pub fn new(shared: Arc<Shared>, hub: Hub, topic_view: TopicViews) -> Metrics {
        let mut registry = Registry::with_prefix("cashflow");
        registry.register_collector(Box::new(Sources {
            shared,
            hub,
            topic_view,
        }));
        Metrics(Arc::new(registry))
    }

    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.0)?;
        Ok(text)
    }
}

struct Sources {
    shared: Arc<Shared>,
    hub: Hub,
    topic_view: TopicViews,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cashflow metrics")
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = &self.shared;
        let p = s.producer().counts();
        let (sent, delivered, failed) = (p.sent, p.delivered, p.failed);
        let mut m = enc.encode_descriptor(
            "produced_records",
            "Transactions of this server's producer: handed to librdkafka (sent), acknowledged by Kafka (delivered), or lost (failed).",
            None,
            MetricType::Counter,
        )?;
        for (result, v) in [("sent", sent), ("delivered", delivered), ("failed", failed)] {
            m.encode_family(&[("result", result)])?
                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
        let l = s.ledger().stats();
        counter(
            &mut enc,
            "applied_records",
            "Transactions the balance calculator applied.",
            l.applied,
        )?;
        counter(
            &mut enc,
            "dead_letters",
            "Records the balance calculator sent to the dead-letter topic (malformed or refused).",
            l.dead_lettered,
        )?;
        counter(
            &mut enc,
            "duplicate_transactions",
            "Records refused because their transaction id was applied already.",
            l.duplicate_ids,
        )?;
        counter(
            &mut enc,
            "balance_mismatches",
            "Transactions whose new_balance disagreed with the balance the calculator computed.",
            l.mismatches,
        )?;
        counter(
            &mut enc,
            "balance_unchecked",
            "Transactions whose new_balance could not be checked (their account spread over partitions by keys not by account).",
            l.unchecked,
        )?;
        counter(
            &mut enc,
            "dead_letters_failed",
            "Dead letters the dead-letter topic did not take.",
            l.dead_letter_failed,
        )?;

        let t = s.group().latency_totals();
        let unit = Unit::Seconds;
        // Not cumulative: the encoder adds them up.
        let buckets: Vec<(f64, u64)> = TOTAL_BOUNDS_MS
            .iter()
            .map(|ms| *ms as f64 / 1000.0)
            .chain([f64::INFINITY])
            .zip(t.buckets)
            .collect();
        enc.encode_descriptor(
            "apply_latency",
            "From a record's timestamp (its produce time) until the balance calculator applied it.",
            Some(&unit),
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            t.sum_ms as f64 / 1000.0,
            t.count,
            &buckets,
            None,
        )?;

        gauge(
            &mut enc,
            "viewers",
            "Open WebSocket connections (pages watching).",
            self.hub.viewers() as i64,
        )?;
        gauge(
            &mut enc,
            "broker_reachable",
            "1 if the broker answered the last check.",
            i64::from(s.health().reachable()),
        )?;

        // What the broker says (refreshed about once a second).
        let view = self.topic_view.borrow().clone();
        let mut m = enc.encode_descriptor(
            "partition_end_offset",
            "Each partition's high watermark, as the broker reports it.",
            None,
            MetricType::Gauge,
        )?;
        for p in &view.partitions {
            m.encode_family(&[
                ("topic", view.topic.as_str()),
                ("partition", &p.partition.to_string()),
            ])?
            .encode_gauge(&p.end)?;
        }
        let mut m = enc.encode_descriptor(
            "consumer_lag",
            "Records not yet committed by a consumer group reading the topic, per partition (end offset − committed offset).",
            None,
            MetricType::Gauge,
        )?;
        for g in &view.groups {
            for (p, lag) in &g.lag {
                m.encode_family(&[
                    ("topic", view.topic.as_str()),
                    ("group", g.group.as_str()),
                    ("partition", &p.to_string()),
                ])?
                .encode_gauge(lag)?;
            }
        }
        Ok(())
    }
}
