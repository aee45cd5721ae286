//! The producer's commands: what each does to the generator and the rate, and the status it
//! answers with.

use cashflow_shared::command::{Command, MAX_BURST, Rate};
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

    /// Carries out a producer command. Validated here too, not only by the handle: nothing out
    /// of range reaches Kafka, whoever sent it; the settings are checked again together.
    pub(super) fn handle(&mut self, cmd: Command) -> Result<Done, ProducerError> {
        cmd.validate()?;
        let mut manual = None;
        let settings = self.generator.settings().clone();
        let mut set = |s: GeneratorSettings| -> Result<(), ProducerError> {
            self.generator
                .set_settings(s)
                .map_err(|e| ProducerError::Invalid(e.into()))
        };
        match cmd {
            Command::Start => self.running = true,
            Command::Pause => {
                self.running = false;
                self.credit = 0.0;
            }
            Command::SetRate { rate } => self.rate = Rate::from_option(rate)?,
            Command::SetAccounts { accounts } => set(GeneratorSettings {
                accounts,
                ..settings
            })?,
            Command::SetMix { credit_percent } => set(GeneratorSettings {
                credit_percent,
                ..settings
            })?,
            Command::SetAmounts { min, max } => set(GeneratorSettings {
                min_amount: min,
                max_amount: max,
                ..settings
            })?,
            Command::SetKeys { keys } => self.keys = keys,
            Command::Inject { poison } => self.inject(poison)?,
            Command::SetMaxLag { max_lag } => {
                self.max_lag = max_lag;
                self.held_by_lag = false;
            }
            Command::SetBatching {
                linger_ms,
                batch_size,
            } => {
                // Taken up by the send loop, which flushes the current producer first.
                self.batching = (linger_ms, batch_size);
            }
            Command::Burst { count } => {
                self.burst = self.burst.saturating_add(count).min(MAX_BURST);
            }
            Command::Manual {
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
            Command::Hello { .. }
            | Command::Login { .. }
            | Command::AddMember
            | Command::RemoveMember
            | Command::PauseConsumption
            | Command::ResumeConsumption
            | Command::StartReplay
            | Command::StartNaive { .. }
            | Command::CrashNaive
            | Command::StopNaive
            | Command::StopBroker { .. }
            | Command::StopNode { .. }
            | Command::StartNode { .. }
            | Command::ResetDemo { .. }
            | Command::StopReplay => {
                return Err(ProducerError::NotForProducer(
                    "the producer carries out generation commands only",
                ));
            }
        }
        self.publish_status();
        Ok((self.status(), manual))
    }
}
