//! The producer's librdkafka context: every delivery report is counted (delivered ones per
//! account, so tests and the page can reconcile balances with what Kafka acknowledged), and a
//! failed one is handed back to the producer task to take out of its view.

use std::sync::Arc;

use cashflow_shared::flow::FlowDot;
use cashflow_shared::{AccountId, Money};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::mpsc;
use tracing::error;

#[allow(unused_imports)] // named in the docs
use super::ProducerTask;
use crate::kafka::Context;
use crate::kafka::polled::Polled;
use crate::state::Shared;

/// What a delivery report needs to know about its record.
pub(super) struct Sent {
    pub(super) account: AccountId,
    pub(super) delta: Money,
    /// The producer's view it was recorded in (see [`ProducerTask::epoch`]).
    pub(super) epoch: u64,
    /// A transaction of the producer's (false: a record a lesson injected, which counts in no
    /// statistic and in neither side of the invariant).
    pub(super) counted: bool,
}

/// A transaction whose delivery failed: account, amount, the view's epoch.
pub(super) type Failed = (AccountId, Money, u64);

pub(super) struct DeliveryContext {
    inner: Context,
    /// Transactions whose delivery failed, for the producer task to take back from its view.
    /// Unbounded, but never longer than librdkafka's queue (each message fails at most once).
    failed: mpsc::UnboundedSender<Failed>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.inner.log(level, fac, log_message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.inner.error(error, reason)
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        let shared = &self.inner.shared;
        if !sent.counted {
            match result {
                // Not counted, but it may sit inside a run of made-up offsets.
                Ok(msg) => {
                    shared.acks().position(msg.partition(), msg.offset());
                }
                Err((e, _)) => error!(error = %e, "an injected record was not delivered"),
            }
            return;
        }
        match result {
            Ok(msg) => {
                shared.producer().delivered(sent.account, sent.delta);
                let Some(offset) =
                    shared
                        .acks()
                        .acked(msg.partition(), msg.offset(), sent.account, sent.delta)
                else {
                    // A retry the broker had written already (after an outage): counted, but
                    // where it lies is unknown, so the page cannot follow it.
                    tracing::debug!(
                        partition = msg.partition(),
                        reported = msg.offset(),
                        "acknowledged as a duplicate, without its offset"
                    );
                    return;
                };
                shared.flow_acked(FlowDot {
                    partition: msg.partition(),
                    offset,
                    account: sent.account,
                    delta: sent.delta.minor(),
                    acked_ms: crate::state::now_ms(),
                    applied_ms: None,
                    member: None,
                });
            }
            Err((e, msg)) => {
                shared.acks().not_sent();
                shared.producer().failed(e.to_string());
                let _ = self.failed.send((sent.account, sent.delta, sent.epoch));
                let key = msg.key().map(String::from_utf8_lossy).unwrap_or_default();
                error!(account = sent.account, key = %key, error = %e, "delivery failed: transaction lost");
            }
        }
    }
}

pub(super) fn new_producer(
    cfg: &ClientConfig,
    shared: &Arc<Shared>,
    failed: &mpsc::UnboundedSender<Failed>,
) -> Result<Polled<DeliveryContext>, KafkaError> {
    cfg.create_with_context::<_, BaseProducer<_>>(DeliveryContext {
        inner: Context::new(shared, "producer"),
        failed: failed.clone(),
    })
    .map(Polled::new)
}
