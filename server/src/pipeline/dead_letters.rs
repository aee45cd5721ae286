//! The dead-letter topic, `<topic>.dlq`: records the balance calculator cannot apply go there
//! untouched, with headers `cashflow.reason`, `cashflow.source.topic`,
//! `cashflow.source.partition` and `cashflow.source.offset`.
//!
//! Sends are pipelined: [`DeadLetters::send`] queues a letter and returns at once, and the
//! consume loop [settles](DeadLetters::settle) letters in order, storing each source offset only
//! once its letter is acknowledged, so a flood of bad records costs one round trip per batch,
//! not per record. Transient errors are retried for a bounded time; a letter the topic refuses
//! as too large is sent again truncated (with the original size in a header); one that cannot
//! be written at all (not authorised, still too large, retries exhausted) is reported as failed
//! and the calculator goes on: the record itself stays in the source topic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tracing::warn;

use crate::kafka::polled::{Delivery, Futures, Polled};
use crate::kafka::topics::dlq_topic;
use crate::kafka::{Context, reliable_producer};
use crate::state::Shared;

/// Bytes of a payload kept when the whole record is too large for the dead-letter topic.
pub const TRUNCATED_BYTES: usize = 1024;
/// How long a letter is retried on transient errors before it counts as failed.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// A dead letter on its way.
pub struct Letter {
    pub partition: i32,
    pub offset: i64,
    reason: String,
    source_topic: String,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    /// `None` while it waits to be queued again (after an error, or a full queue).
    delivery: Option<Delivery>,
    error: Option<KafkaError>,
    truncated: bool,
    since: Instant,
    backoff: Duration,
}

impl Letter {
    /// Memory it holds until settled.
    pub fn bytes(&self) -> usize {
        self.payload.as_ref().map_or(0, Vec::len) + self.key.as_ref().map_or(0, Vec::len)
    }
}

pub struct DeadLetters {
    producer: Polled<Futures<Context>>,
    topic: String,
}

fn headers(reason: &str, topic: &str, partition: i32, offset: i64) -> OwnedHeaders {
    let (partition, offset) = (partition.to_string(), offset.to_string());
    OwnedHeaders::new()
        .insert(Header {
            key: "cashflow.reason",
            value: Some(reason),
        })
        .insert(Header {
            key: "cashflow.source.topic",
            value: Some(topic),
        })
        .insert(Header {
            key: "cashflow.source.partition",
            value: Some(&partition),
        })
        .insert(Header {
            key: "cashflow.source.offset",
            value: Some(&offset),
        })
}

/// Errors that no retry will cure.
fn is_permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRequiredAcks
                | RDKafkaErrorCode::Fatal
        )
    )
}

impl DeadLetters {
    pub fn new(
        settings: &crate::config::Settings,
        brokers: &str,
        shared: &Arc<Shared>,
    ) -> anyhow::Result<DeadLetters> {
        // Each attempt is bounded; `settle` decides whether to try again.
        let producer = reliable_producer(
            brokers,
            &settings.kafka,
            Duration::from_secs(15),
            Context::new(shared, "dead-letter producer"),
        )?;
        Ok(DeadLetters {
            producer,
            topic: dlq_topic(&settings.topic),
        })
    }

    fn enqueue(
        &self,
        letter: &Letter,
        payload: Option<&[u8]>,
        extra: Option<(usize, &str)>,
    ) -> Result<Delivery, KafkaError> {
        let mut h = headers(
            &letter.reason,
            &letter.source_topic,
            letter.partition,
            letter.offset,
        );
        let size;
        if let Some((original, why)) = extra {
            size = original.to_string();
            h = h
                .insert(Header {
                    key: "cashflow.truncated",
                    value: Some(why),
                })
                .insert(Header {
                    key: "cashflow.original.size",
                    value: Some(&size),
                });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(h);
        if let Some(k) = &letter.key {
            record = record.key(k.as_slice());
        }
        if let Some(p) = payload {
            record = record.payload(p);
        }
        self.producer.send_result(record)
    }

    /// Queues a dead letter for `msg`. Fails only when librdkafka's queue is full: settle some
    /// letters, then try again.
    pub fn send(&self, msg: &BorrowedMessage<'_>, reason: String) -> Result<Letter, KafkaError> {
        let mut letter = Letter {
            partition: msg.partition(),
            offset: msg.offset(),
            reason,
            source_topic: msg.topic().to_owned(),
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec),
            delivery: None,
            error: None,
            truncated: false,
            since: Instant::now(),
            backoff: Duration::from_millis(100),
        };
        match self.enqueue(&letter, letter.payload.as_deref(), None) {
            Ok(d) => letter.delivery = Some(d),
            Err(e @ KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => return Err(e),
            // Refused before it left (e.g. over the producer's size limit): `settle` decides.
            Err(e) => letter.error = Some(e),
        }
        Ok(letter)
    }

    /// Waits until `letter` is written (`Some(true)`) or cannot be (`Some(false)`, logged);
    /// `None` if the producer is gone (shutdown). Cancel-safe: dropped and called again, it
    /// carries on where it was.
    pub async fn settle(&self, letter: &mut Letter) -> Option<bool> {
        loop {
            if let Some(delivery) = letter.delivery.as_mut() {
                let result = delivery.await;
                letter.delivery = None;
                match result {
                    Ok(Ok(_)) => return Some(true),
                    Ok(Err(e)) => letter.error = Some(e),
                    Err(_) => return None,
                }
            }
            let error = letter
                .error
                .take()
                .unwrap_or(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull));
            let (p, o) = (letter.partition, letter.offset);
            let too_large =
                error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge);
            let next = if too_large && !letter.truncated {
                letter.truncated = true;
                let size = letter.payload.as_ref().map_or(0, Vec::len);
                let keep = letter
                    .payload
                    .as_deref()
                    .map(|b| &b[..b.len().min(TRUNCATED_BYTES)]);
                warn!(
                    partition = p,
                    offset = o,
                    size,
                    "dead letter too large for {}: sent truncated",
                    self.topic
                );
                self.enqueue(
                    letter,
                    keep,
                    Some((size, "too large for the dead-letter topic")),
                )
            } else if is_permanent(&error) || letter.since.elapsed() > RETRY_FOR {
                warn!(partition = p, offset = o, %error,
                      "dead letter could not be written to {}; the record stays only in {}",
                      self.topic, letter.source_topic);
                return Some(false);
            } else {
                tokio::time::sleep(letter.backoff).await;
                letter.backoff = (letter.backoff * 2).min(Duration::from_secs(5));
                if letter.truncated {
                    let size = letter.payload.as_ref().map_or(0, Vec::len);
                    let keep = letter
                        .payload
                        .as_deref()
                        .map(|b| &b[..b.len().min(TRUNCATED_BYTES)]);
                    self.enqueue(
                        letter,
                        keep,
                        Some((size, "too large for the dead-letter topic")),
                    )
                } else {
                    self.enqueue(letter, letter.payload.as_deref(), None)
                }
            };
            match next {
                Ok(d) => letter.delivery = Some(d),
                Err(e) => letter.error = Some(e),
            }
        }
    }
}
