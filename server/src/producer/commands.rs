//! The producer's commands: what each does to the generator and the rate, and the status it
//! answers with.

use cashflow_shared::Transaction;
use cashflow_shared::generator::{GeneratorSettings, MAX_ACCOUNTS};
use cashflow_shared::protocol::GeneratorStatus;
use cashflow_shared::transaction::MAX_AMOUNT;

use super::{Command, MAX_BURST, ProducerTask, Status, now_ms};
use crate::config::Rate;

impl ProducerTask {
    /// Makes the current settings visible to the API and the hub.
    pub(super) fn publish_status(&self) {
        self.shared.with_producer(|p| {
            p.running = self.running;
            p.rate = self.rate.as_option();
        });
        self.shared.set_generator(GeneratorStatus {
            running: self.running,
            rate: self.rate.as_option(),
            settings: self.generator.settings().clone(),
        });
    }

    pub(super) fn status(&self, manual: Option<Transaction>) -> Status {
        Status {
            running: self.running,
            rate: self.rate.as_option(),
            settings: self.generator.settings().clone(),
            pending_burst: self.burst,
            manual,
        }
    }

    pub(super) fn handle(&mut self, cmd: Command) -> Result<Status, String> {
        let mut manual = None;
        match cmd {
            Command::Start => self.running = true,
            Command::Pause => {
                self.running = false;
                self.credit = 0.0;
            }
            Command::SetRate(r) => {
                if let Rate::PerSecond(v) = r {
                    Rate::per_second(v)?;
                }
                self.rate = r;
            }
            Command::SetSettings(s) => self.generator.set_settings(s).map_err(|e| e.to_string())?,
            Command::SetAccounts(accounts) => {
                let s = GeneratorSettings {
                    accounts,
                    ..self.generator.settings().clone()
                };
                self.generator.set_settings(s).map_err(|e| e.to_string())?
            }
            Command::SetMix { credit_percent } => {
                let s = GeneratorSettings {
                    credit_percent,
                    ..self.generator.settings().clone()
                };
                self.generator.set_settings(s).map_err(|e| e.to_string())?
            }
            Command::SetAmounts { min, max } => {
                let s = GeneratorSettings {
                    min_amount: min,
                    max_amount: max,
                    ..self.generator.settings().clone()
                };
                self.generator.set_settings(s).map_err(|e| e.to_string())?
            }
            Command::Burst(n) => {
                if n == 0 || n > MAX_BURST {
                    return Err(format!("burst must be between 1 and {MAX_BURST}, got {n}"));
                }
                self.burst = self.burst.saturating_add(n).min(MAX_BURST);
            }
            Command::Manual {
                account,
                transaction_type,
                amount,
            } => {
                if !(1..=MAX_ACCOUNTS).contains(&account) {
                    return Err(format!(
                        "account must be between 1 and {MAX_ACCOUNTS}, got {account}"
                    ));
                }
                if !amount.is_positive() || amount > MAX_AMOUNT {
                    return Err(format!(
                        "amount must be between 0.01 and {MAX_AMOUNT}, got {amount}"
                    ));
                }
                let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
                let tx = self
                    .generator
                    .make(account, transaction_type, amount, id, now_ms());
                if !self.publish(tx.clone()) {
                    return Err(
                        "Kafka's send queue is full (the broker is slow or unreachable): \
                                the transaction was not sent; try again in a moment"
                            .into(),
                    );
                }
                manual = Some(tx);
            }
        }
        self.publish_status();
        Ok(self.status(manual))
    }
}
