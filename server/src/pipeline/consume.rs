//! The consume loop both consumers share: at-least-once (an offset is stored only after its
//! record is handled, and auto-commit commits only stored offsets), with dead letters
//! pipelined (see [`dead_letters`](crate::pipeline::dead_letters)) and catch-ups run on the blocking
//! pool; a final commit at shutdown, as rust-rdkafka's `at_least_once` example and vector's
//! Kafka source do.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::kafka::topics::until_ready;
use crate::kafka::{Context, consumer_config};
use crate::pipeline::dead_letters::DeadLetters;
use crate::state::Shared;

mod client;
mod handler;
mod in_flight;
mod rate_limited_log;

pub use client::{close_consumer, is_transient};
use client::{rewind, set_paused};
pub use handler::{CatchUp, DeadLetter, Handler, MAX_BATCH, Role, TICK, Verdict};

use in_flight::{Entry, InFlight, Stored};
pub use rate_limited_log::RateLimitedLog;

/// Runs a consumer in group `<prefix>-<suffix>` on the topic once it is `ready`: `handler` sees
/// each record (see [`Verdict`]: a catch-up runs first; a dead letter is queued to
/// `dead_letters` and the records after it go on being handled while it travels), and a
/// record's offset is stored only once it and every dead letter before it are settled
/// (auto-commit commits stored offsets only), so a crash re-delivers rather than loses. At
/// shutdown the letters in flight get a few seconds, the stored offsets are committed and the
/// consumer leaves its group.
pub async fn consume(
    (settings, brokers, shared): (&crate::config::Settings, &str, &Arc<Shared>),
    Role {
        group_suffix,
        name: role,
        member,
    }: Role,
    mut ready: watch::Receiver<bool>,
    token: CancellationToken,
    dead_letters: Option<DeadLetters>,
    mut handler: impl Handler,
) -> anyhow::Result<()> {
    let group = format!("{}-{group_suffix}", settings.group_prefix);
    let catch_up = handler.catch_up();
    let topic = settings.topic.as_str();
    let cfg = consumer_config(brokers, &settings.kafka, &group);
    let consumer: StreamConsumer<Context> =
        cfg.create_with_context(Context::member(shared, role, member.clone()))?;
    if !until_ready(&mut ready, &token).await {
        return Ok(());
    }
    consumer.subscribe(&[topic])?;
    info!(%group, %topic, "{role} started");
    let mut recreated = shared.recreations();
    let mut paused = shared.group().paused();
    paused.mark_unchanged();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut errors = RateLimitedLog::new(1);
    let mut in_flight = InFlight::default();
    let mut stored = Stored::default();
    let mut failure = None;
    // One stream for the consumer's life: `recv()` makes (and registers) a new one per record.
    let mut stream = consumer.stream();
    let mut batch: Vec<BorrowedMessage<'_>> = Vec::with_capacity(MAX_BATCH);
    'records: loop {
        let first = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            r = async {
                match &dead_letters {
                    Some(dl) => in_flight.settle_front(dl, &consumer, topic).await,
                    None => Some(()),
                }
            }, if in_flight.letters > 0 => {
                if r.is_none() { break }
                continue;
            }
            _ = tick.tick() => {
                handler.tick();
                continue;
            }
            // Only the calculator's members are paused by the presenter.
            Ok(()) = paused.changed(), if member.is_some() => {
                set_paused(&consumer, *paused.borrow_and_update(), role);
                continue;
            }
            Ok(()) = recreated.changed() => {
                // The topic was deleted and created again: its new records start at the
                // beginning, whatever position the consumer had (a broker need not say the old
                // one is out of range).
                in_flight.forget_offsets();
                stored.forget();
                rewind(&consumer, topic, role);
                continue;
            }
            m = stream.next() => m,
        };
        // The first record woke the loop; the rest of the batch is what is ready now. (A
        // revocation before the first record purged that partition's queued records.)
        let mut error = None;
        match first {
            Some(Ok(m)) => batch.push(m),
            Some(Err(e)) => error = Some(e),
            None => break,
        }
        consumer.context().take_revoked();
        while error.is_none() && batch.len() < MAX_BATCH {
            match stream.next().now_or_never() {
                Some(Some(Ok(m))) => batch.push(m),
                Some(Some(Err(e))) => error = Some(e),
                // Empty, or a rebalance (or other event) served: the batch ends there.
                _ => break,
            }
        }
        // A revocation served while gathering ended the gathering; the records already taken
        // from the revoked partitions are not this member's to handle any more.
        let revoked = consumer.context().take_revoked();
        if !revoked.is_empty() {
            batch.retain(|m| !revoked.contains(&m.partition()));
        }
        if !batch.is_empty() {
            handler.batch(batch.len(), crate::state::now_ms());
            handler.prepare(&batch);
        }
        let size = batch.len();
        for (i, msg) in batch.drain(..).enumerate() {
            let mut backoff = Duration::from_millis(200);
            let verdict = loop {
                let (partition, until) = match handler.handle(&msg) {
                    Verdict::CatchUp { partition, until } => (partition, until),
                    other => break Some(other),
                };
                let Some(c) = catch_up.clone() else {
                    break Some(Verdict::Fail(anyhow::anyhow!(
                        "{role} asked for a catch-up it cannot do"
                    )));
                };
                let result = tokio::select! {
                    _ = token.cancelled() => break None,
                    r = tokio::task::spawn_blocking(move || c.catch_up(partition, until)) => r,
                };
                match result.map_err(anyhow::Error::from).and_then(|r| r) {
                    Ok(()) => {
                        backoff = Duration::from_millis(200);
                        // The catch-up took a while: the rest of the batch gets a fresh clock.
                        handler.batch(size - i, crate::state::now_ms());
                    }
                    Err(e) => {
                        warn!("{role}: catching up failed: {e:#}; retrying");
                        tokio::select! {
                            _ = token.cancelled() => break None,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            };
            // Shutting down mid catch-up: the offset is not stored; read again next start.
            let Some(verdict) = verdict else {
                break 'records;
            };
            let (p, o) = (msg.partition(), msg.offset());
            match (verdict, &dead_letters) {
                (Verdict::Fail(e), _) => {
                    failure = Some(e);
                    break 'records;
                }
                (Verdict::DeadLetter(letter), Some(dl)) => {
                    // What was handled before the letter is stored before anything after it.
                    stored.flush(&consumer, topic);
                    let queued = loop {
                        match dl.send(&msg, letter.reason.clone()) {
                            Ok(l) => break l,
                            // librdkafka's queue is full: wait for the oldest letter.
                            Err(_) if in_flight.letters > 0 => {
                                if in_flight.settle_front(dl, &consumer, topic).await.is_none() {
                                    break 'records;
                                }
                            }
                            Err(e) => {
                                warn!(%e, "{role}: dead letter not queued yet");
                                tokio::select! {
                                    _ = token.cancelled() => break 'records,
                                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                                }
                            }
                        }
                    };
                    in_flight.push(Entry::Letter(Box::new(queued), letter.on_settled));
                }
                (Verdict::DeadLetter(letter), None) => {
                    (letter.on_settled)(false);
                    stored.note(p, o);
                }
                _ if in_flight.queue.is_empty() => stored.note(p, o),
                _ => in_flight.push(Entry::Done(p, o)),
            }
            while in_flight.full() {
                let Some(dl) = &dead_letters else { break };
                stored.flush(&consumer, topic);
                if in_flight.settle_front(dl, &consumer, topic).await.is_none() {
                    break 'records;
                }
            }
        }
        // Offsets of handled records are stored once a batch (the highest per partition).
        stored.flush(&consumer, topic);
        if size > 0 {
            shared.changed();
        }
        match error {
            Some(e) if is_transient(&e) => {
                if errors.admit().0 {
                    warn!(%e, "{role}: receive failed; retrying");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some(e) => return Err(e.into()),
            None => {}
        }
    }
    // What was handled of an interrupted batch is stored; the rest is read again next time.
    stored.flush(&consumer, topic);
    drop((batch, stream));
    // Letters in flight get a moment to land, so their offsets can be committed.
    if let Some(dl) = &dead_letters {
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while in_flight.letters > 0 {
                if in_flight.settle_front(dl, &consumer, topic).await.is_none() {
                    break;
                }
            }
        })
        .await;
        if drained.is_err() || in_flight.letters > 0 {
            warn!(
                letters = in_flight.letters,
                "{role}: stopping with dead letters unacknowledged; their records are read again \
                 at the next start"
            );
        }
    }
    close_consumer(consumer, role).await;
    shared.health().record_stop(format!("{role} committed"));
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
