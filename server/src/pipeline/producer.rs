//! The transaction producer: random transactions at a set rate, bursts and manual ones on
//! command, published keyed by account with an idempotent producer (`acks=all`) and the
//! Java clients' murmur2 partitioner, so every account stays on one partition, in order.
//!
//! Every record's delivery report is counted: delivered ones per account (so tests and the page
//! can reconcile balances against what Kafka acknowledged), failed ones with their reason.

use std::sync::Arc;
use std::time::Duration;

use cashflow_shared::command::{ProducerCommand, Rate};
use cashflow_shared::generator::Generator;
use cashflow_shared::ledger::AccountState;
use cashflow_shared::ordering::KeyStrategy;
use cashflow_shared::poison::Poison;
use cashflow_shared::{AccountId, Money, Transaction};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};
use std::collections::BTreeMap;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Settings;
use crate::kafka::base_config;
use crate::kafka::polled::Polled;
use crate::state::Shared;

mod commands;
mod delivery;
mod handle;
mod send;

pub use handle::{Commands, Done, ForProducer, ProducerError, ProducerHandle};

use delivery::{DeliveryContext, Failed, Sent, new_producer};

/// Most records sent per 10 ms tick at "max" rate or in a burst, so commands and shutdown
/// are handled between batches.
const BATCH: u64 = 5_000;
/// `linger.ms` and `batch.size` unless the batching lesson changes them (librdkafka's default
/// batch size; a short linger so classroom rates are not held back).
pub const DEFAULT_BATCHING: (u32, u32) = (5, 1_000_000);

pub use crate::state::now_ms;

pub struct ProducerTask {
    producer: Polled<DeliveryContext>,
    /// To create the producer again after a fatal error.
    config: ClientConfig,
    failed_tx: mpsc::UnboundedSender<Failed>,
    failed: mpsc::UnboundedReceiver<Failed>,
    /// Bumped whenever the generator's view is replaced (a re-created topic): failures
    /// reported for records of an earlier view are not taken back from the new one.
    epoch: u64,
    shared: Arc<Shared>,
    topic: String,
    generator: Generator,
    rng: StdRng,
    running: bool,
    rate: Rate,
    /// How records are keyed (by account unless a lesson says otherwise).
    keys: KeyStrategy,
    /// The last transaction sent and its key (the poison-pill lesson sends it again).
    last_sent: Option<(Option<String>, Transaction)>,
    /// Back-pressure: hold generation while the calculator is this many records behind.
    max_lag: Option<u64>,
    held_by_lag: bool,
    /// `linger.ms` and `batch.size` wanted, and those the current producer was made with.
    batching: (u32, u32),
    made_with: (u32, u32),
    /// The topic was re-created (`Shared::recreations`): a broker forgets the idempotent
    /// producer's sequence numbers with it, so a new producer (a new producer id) takes over
    /// before the next send.
    renew: bool,
    burst: u64,
    credit: f64,
}

/// Creates the producer; `run` it once the topic is ready.
pub fn create(
    settings: &Settings,
    brokers: &str,
    shared: Arc<Shared>,
) -> anyhow::Result<(ProducerTask, ProducerHandle, Commands)> {
    let mut cfg = base_config(brokers, &settings.kafka);
    cfg.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", DEFAULT_BATCHING.0.to_string())
        .set("batch.size", DEFAULT_BATCHING.1.to_string());
    // The queue stays at librdkafka's 100 000 messages unless a user's -X sets it (a test
    // makes it small).
    let (failed_tx, failed) = mpsc::unbounded_channel();
    let producer = new_producer(&cfg, &shared, &failed_tx)?;
    let generator = Generator::new(settings.generator.clone(), settings.opening_balance)
        .map_err(|e| anyhow::anyhow!(e))?;
    let (tx, rx) = mpsc::channel(64);
    let task = ProducerTask {
        producer,
        config: cfg,
        failed_tx,
        failed,
        epoch: 0,
        shared,
        topic: settings.topic.clone(),
        generator,
        rng: StdRng::from_os_rng(),
        running: !settings.paused,
        rate: settings.rate,
        keys: KeyStrategy::default(),
        last_sent: None,
        max_lag: None,
        held_by_lag: false,
        batching: DEFAULT_BATCHING,
        made_with: DEFAULT_BATCHING,
        renew: false,
        burst: 0,
        credit: 0.0,
    };
    task.publish_status();
    Ok((task, ProducerHandle { tx }, rx))
}

impl ProducerTask {
    /// How long the generator sleeps before its next step: 10 ms at high rates, in a burst or
    /// at Max; at a low rate until the next transaction is due (at most a second, so an
    /// unreachable broker or a lag hold is noticed), not 100 empty wake-ups a second (half an
    /// idle demo's wake-ups of cashflow's threads).
    fn next_step(&self) -> Duration {
        const STEP: Duration = Duration::from_millis(10);
        match self.rate {
            Rate::PerSecond(r) if self.burst == 0 && r > 0.0 => {
                Duration::from_secs_f64(((1.0 - self.credit) / r).clamp(0.0, 1.0)).max(STEP)
            }
            _ => STEP,
        }
    }

    pub async fn run(
        mut self,
        mut commands: Commands,
        mut restored: watch::Receiver<Option<BTreeMap<AccountId, AccountState>>>,
        token: CancellationToken,
    ) {
        // Nothing is produced before the topic exists and the balance calculator has restored
        // the accounts from it (the broker may be unreachable for a long time). Meanwhile
        // settings commands take effect at once, so the page stays responsive. A manual
        // transaction needs the restored balances: once the topic exists it waits for them (the
        // restore follows closely); before that it is refused rather than left hanging.
        let mut pending = None;
        let view = loop {
            let cmd = tokio::select! {
                _ = token.cancelled() => break None,
                r = restored.wait_for(|r| r.is_some()) => break r.ok().and_then(|v| v.clone()),
                // With a manual transaction pending, the rest wait in the channel.
                cmd = commands.recv(), if pending.is_none() => cmd,
            };
            let Some((cmd, reply)) = cmd else { break None };
            if !matches!(cmd, ProducerCommand::Manual { .. }) {
                let result = self.handle(cmd);
                let _ = reply.send(result);
            } else if self.shared.health().broker().topic_ready {
                // The restore follows the topic closely: answer once it is done.
                pending = Some((cmd, reply));
            } else {
                let _ = reply.send(Err(ProducerError::NotRestored));
            }
        };
        let Some(view) = view else {
            return self.finish().await;
        };
        self.generator.restore(&view);
        if let Some((cmd, reply)) = pending {
            let result = self.handle(cmd);
            let _ = reply.send(result);
        }
        let mut last = tokio::time::Instant::now();
        let mut recreations = self.shared.recreations();
        loop {
            let next = last + self.next_step();
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                Ok(()) = restored.changed() => {
                    // The topic was re-created: the balances started afresh, so does the view.
                    if let Some(view) = restored.borrow_and_update().clone() {
                        self.generator.restore(&view);
                        self.epoch += 1;
                    }
                }
                // The topic was deleted and created again: the broker forgot this producer's
                // sequence numbers with it, so a new producer takes over before the next send.
                Ok(()) = recreations.changed() => self.renew = true,
                Some((account, delta, epoch)) = self.failed.recv() => {
                    // Never in Kafka, so never in the calculator's balance either.
                    if epoch == self.epoch {
                        self.generator.unrecord(account, delta);
                    }
                }
                cmd = commands.recv() => match cmd {
                    Some((cmd, reply)) => {
                        let result = self.handle(cmd);
                        let _ = reply.send(result);
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(next), if self.running || self.burst > 0 => {
                    let now = tokio::time::Instant::now();
                    let dt = now.duration_since(last).as_secs_f64();
                    last = now;
                    // While the broker is unreachable generation is held (what is already in
                    // librdkafka's bounded queue waits there and is delivered on reconnection),
                    // so an outage does not pile up transactions nobody can see.
                    let reachable = self.shared.health().reachable();
                    let was_held = self.shared.producer().set_held(!reachable);
                    if reachable == was_held {
                        if reachable {
                            info!("broker reachable: generation resumed");
                        } else {
                            warn!("broker unreachable: generation held");
                        }
                    }
                    if !reachable {
                        self.credit = 0.0;
                        continue;
                    }
                    self.replace_if_fatal().await;
                    let renew = std::mem::take(&mut self.renew);
                    if renew || self.batching != self.made_with {
                        self.rebatch().await;
                    }
                    if self.lag_holds() {
                        self.credit = 0.0;
                        continue;
                    }
                    let mut n = 0;
                    if self.running {
                        n = match self.rate {
                            Rate::Max => BATCH,
                            Rate::PerSecond(r) => {
                                // Token bucket holding at most one second's worth.
                                self.credit = (self.credit + r * dt).min(r.max(1.0));
                                let whole = self.credit.floor();
                                self.credit -= whole;
                                whole as u64
                            }
                        };
                    }
                    let from_burst = self.burst.min(BATCH);
                    self.burst -= from_burst;
                    let total = n + from_burst;
                    let mut sent = 0;
                    while sent < total {
                        let tx = self.generator.next(&mut self.rng, now_ms());
                        if !self.publish(tx) {
                            break;
                        }
                        sent += 1;
                    }
                    if sent < total {
                        // librdkafka's queue is full: the burst's rest waits for a later tick,
                        // the rate's share is dropped (the broker sets the pace), and commands
                        // are answered meanwhile.
                        self.burst += from_burst.min(total - sent);
                        self.credit = 0.0;
                    }
                }
            }
        }
        self.finish().await
    }
}
