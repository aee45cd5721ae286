//! The transaction producer: random transactions at a set rate, bursts and manual ones on
//! command, published keyed by account with an idempotent producer (`acks=all`) and the
//! Java clients' murmur2 partitioner, so every account stays on one partition, in order.
//!
//! Every record's delivery report is counted: delivered ones per account (so tests and the page
//! can reconcile balances against what Kafka acknowledged), failed ones with their reason.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cashflow_shared::generator::{Generator, GeneratorSettings, MAX_ACCOUNTS};
use cashflow_shared::ledger::AccountState;
use cashflow_shared::protocol::GeneratorStatus;
use cashflow_shared::transaction::MAX_AMOUNT;
use cashflow_shared::{AccountId, Money, Transaction, TxType};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Rate, Settings};
use crate::kafka::{Context, base_config};
use crate::state::Shared;

/// Most records sent per 10 ms tick at "max" rate or in a burst, so commands and shutdown
/// are handled between batches.
const BATCH: u64 = 5_000;
/// Largest burst one command may ask for.
pub const MAX_BURST: u64 = 1_000_000;

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Start,
    Pause,
    SetRate(Rate),
    SetSettings(GeneratorSettings),
    SetAccounts(u32),
    SetMix {
        credit_percent: u8,
    },
    SetAmounts {
        min: Money,
        max: Money,
    },
    /// Send N random transactions as fast as possible, whether running or paused.
    Burst(u64),
    Manual {
        account: AccountId,
        transaction_type: TxType,
        amount: Money,
    },
}

/// The producer's settings after a command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub running: bool,
    pub rate: Option<f64>,
    pub settings: GeneratorSettings,
    pub pending_burst: u64,
    /// The transaction a `Manual` command produced.
    pub manual: Option<Transaction>,
}

type Reply = oneshot::Sender<Result<Status, String>>;
/// Commands as the producer task receives them.
pub type Commands = mpsc::Receiver<(Command, Reply)>;

/// Sends commands to the running producer.
#[derive(Clone)]
pub struct ProducerHandle {
    tx: mpsc::Sender<(Command, Reply)>,
}

impl ProducerHandle {
    pub async fn send(&self, cmd: Command) -> Result<Status, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((cmd, reply))
            .await
            .map_err(|_| "the producer has stopped".to_string())?;
        rx.await
            .map_err(|_| "the producer has stopped".to_string())?
    }
}

/// What a delivery report needs to know about its record.
struct Sent {
    account: AccountId,
    delta: Money,
    /// The producer's view it was recorded in (see [`ProducerTask::epoch`]).
    epoch: u64,
}

/// A transaction whose delivery failed: account, amount, the view's epoch.
type Failed = (AccountId, Money, u64);

struct DeliveryContext {
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
        match result {
            Ok(_) => shared.with_producer(|p| {
                p.delivered += 1;
                let t = p.delivered_by_account.entry(sent.account).or_default();
                t.net = t.net.checked_add(sent.delta).unwrap_or(t.net);
                t.count += 1;
            }),
            Err((e, msg)) => {
                shared.with_producer(|p| {
                    p.failed += 1;
                    p.last_error = Some(e.to_string());
                });
                let _ = self.failed.send((sent.account, sent.delta, sent.epoch));
                let key = msg.key().map(String::from_utf8_lossy).unwrap_or_default();
                error!(account = sent.account, key = %key, error = %e, "delivery failed: transaction lost");
            }
        }
    }
}

fn new_producer(
    cfg: &ClientConfig,
    shared: &Arc<Shared>,
    failed: &mpsc::UnboundedSender<Failed>,
) -> Result<ThreadedProducer<DeliveryContext>, KafkaError> {
    cfg.create_with_context(DeliveryContext {
        inner: Context {
            shared: shared.clone(),
            role: "producer",
        },
        failed: failed.clone(),
    })
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct ProducerTask {
    producer: ThreadedProducer<DeliveryContext>,
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
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "100000");
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
        burst: 0,
        credit: 0.0,
    };
    task.publish_status();
    Ok((task, ProducerHandle { tx }, rx))
}

impl ProducerTask {
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
            if !matches!(cmd, Command::Manual { .. }) {
                let result = self.handle(cmd);
                let _ = reply.send(result);
            } else if self.shared.broker().topic_ready {
                // The restore follows the topic closely: answer once it is done.
                pending = Some((cmd, reply));
            } else {
                let _ = reply.send(Err("not connected to Kafka yet: a manual transaction has \
                                        to wait until the balances are restored"
                    .to_string()));
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
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        loop {
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
                now = tick.tick(), if self.running || self.burst > 0 => {
                    let dt = now.duration_since(last).as_secs_f64();
                    last = now;
                    // While the broker is unreachable generation is held (what is already in
                    // librdkafka's bounded queue waits there and is delivered on reconnection),
                    // so an outage does not pile up transactions nobody can see.
                    let reachable = self.shared.broker().reachable;
                    let was_held = self.shared.with_producer(|p| std::mem::replace(&mut p.held, !reachable));
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

    /// Makes the current settings visible to the API and the hub.
    fn publish_status(&self) {
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

    fn status(&self, manual: Option<Transaction>) -> Status {
        Status {
            running: self.running,
            rate: self.rate.as_option(),
            settings: self.generator.settings().clone(),
            pending_burst: self.burst,
            manual,
        }
    }

    fn handle(&mut self, cmd: Command) -> Result<Status, String> {
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

    /// Enqueues one record without waiting: false when librdkafka's queue is full (the
    /// transaction is taken back from the producer's view; the caller tries later or says so).
    /// Other errors are counted as failed deliveries.
    fn publish(&mut self, tx: Transaction) -> bool {
        let key = tx.account.to_string();
        let payload = tx.to_json();
        let sent = Box::new(Sent {
            account: tx.account,
            delta: tx.delta(),
            epoch: self.epoch,
        });
        let record = BaseRecord::with_opaque_to(&self.topic, sent)
            .key(&key)
            .payload(&payload)
            .timestamp(tx.timestamp_ms.unwrap_or_else(now_ms));
        match self.producer.send(record) {
            Ok(()) => {
                self.shared.with_producer(|p| p.sent += 1);
                true
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                self.generator.unrecord(tx.account, tx.delta());
                false
            }
            Err((e, _)) => {
                self.generator.unrecord(tx.account, tx.delta());
                self.shared.with_producer(|p| {
                    p.failed += 1;
                    p.last_error = Some(e.to_string());
                });
                error!(id = %tx.transaction_id, error = %e, "could not enqueue transaction");
                true
            }
        }
    }

    /// After a fatal error (e.g. the idempotent producer's sequence refused by a broker that
    /// lost the partition's producer state when the topic was re-created) librdkafka's producer
    /// refuses everything: a new one takes over, and the old one's queue fails (each failure
    /// taken back from the view, as any failed delivery).
    async fn replace_if_fatal(&mut self) {
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
        self.shared.with_producer(|p| {
            p.replaced += 1;
            p.last_error = Some(format!("fatal producer error, producer replaced: {reason}"));
        });
        let old = std::mem::replace(&mut self.producer, fresh);
        // Dropping purges its queue and waits briefly for the reports: off the async thread.
        let _ = tokio::task::spawn_blocking(move || drop(old)).await;
    }

    async fn finish(self) {
        let shared = self.shared.clone();
        let producer = self.producer;
        let flushed = tokio::task::spawn_blocking(move || {
            let r = producer.flush(Duration::from_secs(10));
            (r, producer.in_flight_count())
        })
        .await;
        let p = shared.producer();
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
        shared.record_stop("producer flushed");
    }
}
