//! Sending: one record at a time without waiting, a new producer after a fatal error, and the
//! final flush.

use super::*;

impl ProducerTask {
    /// Enqueues one record without waiting: false when librdkafka's queue is full (the
    /// transaction is taken back from the producer's view; the caller tries later or says so).
    /// Other errors are counted as failed deliveries.
    pub(super) fn publish(&mut self, mut tx: Transaction) -> bool {
        tx.producer_id = Some(self.shared.producer_id().to_owned());
        let key = self.keys.key(tx.account, &mut self.rng);
        let payload = tx.to_json();
        let sent = Box::new(Sent {
            account: tx.account,
            delta: tx.delta(),
            epoch: self.epoch,
            counted: true,
        });
        let mut record = BaseRecord::with_opaque_to(&self.topic, sent)
            .payload(&payload)
            .timestamp(tx.timestamp_ms.unwrap_or_else(now_ms));
        if let Some(key) = &key {
            record = record.key(key);
        }
        // Counted as on its way before librdkafka has it: its delivery report may come first.
        self.shared.acks().sending();
        match self.producer.send(record) {
            Ok(()) => {
                self.shared.producer().sent();
                self.last_sent = Some((key, tx));
                true
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                self.shared.acks().not_sent();
                self.generator.unrecord(tx.account, tx.delta());
                false
            }
            Err((e, _)) => {
                self.shared.acks().not_sent();
                self.generator.unrecord(tx.account, tx.delta());
                self.shared.producer().failed(e.to_string());
                error!(id = %tx.transaction_id, error = %e, "could not enqueue transaction");
                true
            }
        }
    }

    /// Writes a record a lesson asks for (see [`Poison`]): not the producer's, so it counts in
    /// none of its statistics.
    pub(super) fn inject(&mut self, poison: Poison) -> Result<(), ProducerError> {
        let account = self
            .rng
            .random_range(1..=self.generator.settings().accounts);
        let last = self.last_sent.as_ref().map(|(k, tx)| (k.as_deref(), tx));
        let (key, value) = poison
            .record(account, last)
            .ok_or(ProducerError::NothingToRepeat)?;
        let sent = Box::new(Sent {
            account,
            delta: Money::ZERO,
            epoch: self.epoch,
            counted: false,
        });
        let mut record = BaseRecord::with_opaque_to(&self.topic, sent)
            .payload(&value)
            .timestamp(now_ms());
        if let Some(key) = &key {
            record = record.key(key);
        }
        match self.producer.send(record) {
            Ok(()) => Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Err(ProducerError::QueueFull)
            }
            Err((e, _)) => Err(ProducerError::Kafka(e.to_string())),
        }
    }

    /// After a fatal error (e.g. the idempotent producer's sequence refused by a broker that
    /// lost the partition's producer state when the topic was re-created) librdkafka's producer
    /// refuses everything: a new one takes over, and the old one's queue fails (each failure
    /// taken back from the view, as any failed delivery).
    pub(super) async fn replace_if_fatal(&mut self) {
        let Some((code, reason)) = self.producer.client().fatal_error() else {
            return;
        };
        let fresh = match new_producer(&self.config, &self.shared, &self.failed_tx) {
            Ok(p) => p,
            Err(e) => {
                warn!(%e, "the producer hit a fatal error and a new one cannot be created yet");
                return;
            }
        };
        warn!(%code, %reason, "the producer hit a fatal error: a new producer takes over");
        self.shared.producer().replaced(&reason);
        let old = std::mem::replace(&mut self.producer, fresh);
        // Dropping purges its queue and waits briefly for the reports: off the async thread.
        let _ = tokio::task::spawn_blocking(move || drop(old)).await;
    }

    /// Whether back-pressure holds generation now: the calculator is `max_lag` or more of this
    /// producer's acknowledged records behind. Said in the status when it changes.
    pub(super) fn lag_holds(&mut self) -> bool {
        // Records on their way count too: acknowledged later, they would take the lag past the
        // limit by as many as are in flight (hundreds at 1 000 tx/s while the broker is slow).
        let in_flight = self.shared.producer().counts().in_flight() as i64;
        let held = self.max_lag.is_some_and(|max| {
            self.shared
                .backpressure_lag()
                .is_some_and(|lag| lag + in_flight >= max as i64)
        });
        if held != self.held_by_lag {
            self.held_by_lag = held;
            info!(held, max_lag = ?self.max_lag, "back-pressure");
            self.publish_status();
        }
        held
    }

    /// A new producer with the batching asked for: the current one is flushed first, so no
    /// record is lost and each partition's order is kept across the two.
    pub(super) async fn rebatch(&mut self) {
        let (linger, batch) = self.batching;
        let mut config = self.config.clone();
        config
            .set("linger.ms", linger.to_string())
            .set("batch.size", batch.to_string());
        let fresh = match new_producer(&config, &self.shared, &self.failed_tx) {
            Ok(p) => p,
            Err(e) => {
                warn!(%e, "cannot create a producer with the new batching; keeping the old");
                self.batching = self.made_with;
                self.publish_status();
                return;
            }
        };
        let old = std::mem::replace(&mut self.producer, fresh);
        let _ = tokio::task::spawn_blocking(move || {
            let _ = old.flush(Duration::from_secs(30));
            drop(old);
        })
        .await;
        self.config = config;
        self.made_with = self.batching;
        self.shared.producer().reconfigured();
        info!(
            linger_ms = linger,
            batch_size = batch,
            "producer created again with new batching"
        );
    }

    pub(super) async fn finish(self) {
        let shared = self.shared.clone();
        let producer = self.producer;
        let flushed = tokio::task::spawn_blocking(move || {
            let r = producer.flush(Duration::from_secs(10));
            (r, producer.in_flight_count())
        })
        .await;
        let p = shared.producer().stats();
        match flushed {
            Ok((Ok(()), _)) => info!(
                sent = p.sent,
                delivered = p.delivered,
                failed = p.failed,
                "producer flushed"
            ),
            Ok((Err(e), left)) => warn!(%e, undelivered = left, "producer flush incomplete"),
            Err(e) => warn!(%e, "producer flush task failed"),
        }
        shared.health().record_stop("producer flushed");
    }
}
