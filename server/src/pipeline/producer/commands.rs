//! The producer's commands: what each does to the generator and the rate, and the status it
//! answers with.

use cashflow_shared::command::{MAX_BURST, ProducerCommand as C};
use cashflow_shared::generator::GeneratorSettings;
use cashflow_shared::protocol::GeneratorStatus;

use super::{Done, ProducerError, ProducerTask, now_ms};

impl ProducerTask {
    /// Makes the current settings visible to the API and the hub.
    pub(super) fn publish_status(&self) {
        self.shared
            .producer()
            .set_running(self.running, self.rate.as_option());
        self.shared.producer().set_generator(self.status());
    }

    fn status(&self) -> GeneratorStatus {
        GeneratorStatus {
            running: self.running,
            rate: self.rate.as_option(),
            settings: self.generator.settings().clone(),
            keys: self.keys,
            max_lag: self.max_lag,
            held_by_lag: self.held_by_lag,
            linger_ms: self.batching.0,
            batch_size: self.batching.1,
        }
    }

    /// Carries out a producer command (valid on its own: routed from a validated wire
    /// command, or made by the server); the settings are checked again together.
    pub(super) fn handle(&mut self, cmd: C) -> Result<Done, ProducerError> {
        let mut manual = None;
        let settings = self.generator.settings().clone();
        let mut set = |s: GeneratorSettings| -> Result<(), ProducerError> {
            self.generator
                .set_settings(s)
                .map_err(|e| ProducerError::Invalid(e.into()))
        };
        match cmd {
            C::Start => self.running = true,
            C::Pause => {
                self.running = false;
                self.credit = 0.0;
            }
            C::SetRate(rate) => self.rate = rate,
            C::SetAccounts(accounts) => set(GeneratorSettings {
                accounts,
                ..settings
            })?,
            C::SetMix { credit_percent } => set(GeneratorSettings {
                credit_percent,
                ..settings
            })?,
            C::SetAmounts { min, max } => set(GeneratorSettings {
                min_amount: min,
                max_amount: max,
                ..settings
            })?,
            C::SetKeys(keys) => self.keys = keys,
            C::Inject(poison) => self.inject(poison)?,
            C::SetMaxLag(max_lag) => {
                self.max_lag = max_lag;
                self.held_by_lag = false;
            }
            C::SetBatching {
                linger_ms,
                batch_size,
            } => {
                // Taken up by the send loop, which flushes the current producer first.
                self.batching = (linger_ms, batch_size);
            }
            C::Burst(count) => {
                self.burst = self.burst.saturating_add(count).min(MAX_BURST);
            }
            C::Manual {
                account,
                transaction_type,
                amount,
            } => {
                let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
                let tx = self
                    .generator
                    .make(account, transaction_type, amount, id, now_ms());
                if !self.publish(tx.clone()) {
                    return Err(ProducerError::QueueFull);
                }
                manual = Some(tx);
            }
        }
        self.publish_status();
        Ok((self.status(), manual))
    }
}
