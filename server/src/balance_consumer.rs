//! The balance calculator (group `<prefix>-balance`): the authority for balances.
//!
//! It applies every record to the shared [`Ledger`](cashflow_shared::Ledger), which computes
//! balances itself and flags a producer whose `new_balance` disagrees. An offset is stored only
//! after its record is applied, and auto-commit commits only stored offsets, so a restart
//! resumes at or before the first unapplied record (at-least-once); the ledger skips what it
//! already applied (by partition offset and by transaction id), so nothing counts twice.
//! A final synchronous commit runs at shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cashflow_shared::AccountId;
use cashflow_shared::ledger::AccountState;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::Ordering;

use cashflow_shared::ledger::Position;
use cashflow_shared::{Outcome, Transaction};
use rdkafka::message::Message;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Settings;
use crate::kafka::{DeadLetter, DeadLetters, RateLimitedLog, consume, consumer_config};
use crate::state::Shared;

/// Rebuilds state from Kafka before consuming, since the topic is the source of truth:
/// - the ledger from every record up to the end of the topic, except that on each partition it
///   stops at the first record at or after the group's committed offset that is not a valid
///   transaction (the live consumer must still see that one, to dead-letter it). Below the
///   committed offsets that is exactly the state those offsets stand for; above them the live
///   consumer re-reads what the ledger already holds and skips it by position;
/// - the producer's view from every valid record up to the end of the topic, so the producer's
///   next `new_balance` continues from there.
///
/// Idempotent: records the ledger already holds (an in-process restart) are skipped by position.
fn restore(
    settings: &Settings,
    brokers: &str,
    shared: &Shared,
) -> anyhow::Result<BTreeMap<AccountId, AccountState>> {
    let group = format!("{}-balance", settings.group_prefix);
    let mut cfg = consumer_config(brokers, &settings.kafka, &group);
    cfg.set("enable.auto.commit", "false");
    // A plain assigned reader that shares the group id only to read its committed offsets; it
    // never joins the group nor commits.
    let reader: BaseConsumer = cfg.create()?;
    let timeout = Duration::from_secs(10);
    let meta = reader.fetch_metadata(Some(&settings.topic), timeout)?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition(&settings.topic, *p);
    }
    let committed = reader.committed_offsets(wanted, timeout)?;
    let mut assign = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    let mut commit_at = BTreeMap::new();
    for p in &partitions {
        let (lo, hi) = reader.fetch_watermarks(&settings.topic, *p, timeout)?;
        let c = match committed
            .find_partition(&settings.topic, *p)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) => o,
            _ => lo,
        };
        if hi > lo {
            assign.add_partition_offset(&settings.topic, *p, Offset::Offset(lo))?;
            ends.insert(*p, hi);
        }
        commit_at.insert(*p, c);
    }
    let mut view = shared.ledger().clone();
    if ends.is_empty() {
        return Ok(view.accounts().clone());
    }
    reader.assign(&assign)?;
    let started = std::time::Instant::now();
    let total: i64 = ends.values().sum();
    let mut remaining = ends.clone();
    let mut restored = 0u64;
    let mut stopped = std::collections::BTreeSet::<i32>::new();
    while !remaining.is_empty() {
        if started.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("restore read only {restored} of about {total} records in 300 s");
        }
        let Some(msg) = reader.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg?;
        let pos = Position {
            partition: msg.partition(),
            offset: msg.offset(),
        };
        let committed = pos.offset < commit_at.get(&pos.partition).copied().unwrap_or(0);
        match Transaction::parse(msg.payload().unwrap_or_default()) {
            Ok(tx) => {
                let mut ledger = shared.ledger_mut();
                // A duplicate past the commit is the live consumer's to dead-letter.
                if !committed && ledger.knows_id(&tx.transaction_id) {
                    stopped.insert(pos.partition);
                }
                if !stopped.contains(&pos.partition) {
                    ledger.apply(&tx, Some(pos));
                }
                drop(ledger);
                view.apply(&tx, Some(pos));
            }
            // Already dead-lettered before the commit: counted, never applied.
            Err(_) if committed => {
                if shared.ledger_mut().skip(pos) {
                    shared.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Past the commit: the live consumer dead-letters it; the ledger stops here.
            Err(_) => {
                stopped.insert(pos.partition);
            }
        }
        restored += 1;
        if remaining
            .get(&pos.partition)
            .is_some_and(|end| pos.offset + 1 >= *end)
        {
            remaining.remove(&pos.partition);
        }
    }
    info!(
        records = restored,
        accounts = view.accounts().len(),
        ms = started.elapsed().as_millis() as u64,
        "restored state from Kafka"
    );
    Ok(view.accounts().clone())
}

pub async fn run(
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    mut ready: watch::Receiver<bool>,
    token: CancellationToken,
    restored: watch::Sender<Option<BTreeMap<AccountId, AccountState>>>,
) -> anyhow::Result<()> {
    let is_ready = tokio::select! {
        _ = token.cancelled() => false,
        r = ready.wait_for(|r| *r) => r.is_ok(),
    };
    if !is_ready {
        return Ok(());
    }
    let mut backoff = Duration::from_millis(500);
    let view = loop {
        let (s, b, sh) = (settings.clone(), brokers.clone(), shared.clone());
        match tokio::task::spawn_blocking(move || restore(&s, &b, &sh)).await? {
            Ok(view) => break view,
            Err(e) => warn!("restoring from Kafka failed: {e:#}; retrying"),
        }
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    };
    restored.send_replace(Some(view));
    let mut mismatch_log = RateLimitedLog::new(5);
    let mut malformed_log = RateLimitedLog::new(5);
    let role = ("balance", "balance calculator");
    let dead_letters = DeadLetters::new(&settings, &brokers, &shared)?;
    let handler_shared = shared.clone();
    consume(&settings, &brokers, &shared, ready, token, role, Some(dead_letters), move |msg| {
        let shared = &handler_shared;
        let pos = Position { partition: msg.partition(), offset: msg.offset() };
        if shared.ledger().has_seen(pos) {
            return Ok(()); // re-delivered after a restart: already applied or dead-lettered
        }
        let reason = match Transaction::parse(msg.payload().unwrap_or_default()) {
            Ok(tx) => match shared.ledger_mut().apply(&tx, Some(pos)) {
                Outcome::Applied { balance, producer_agrees: Some(false), .. } => {
                    if mismatch_log.admit().0 {
                        warn!(account = tx.account, id = %tx.transaction_id, producer = ?tx.new_balance.map(|b| b.to_string()),
                              computed = %balance, "producer's new_balance disagrees with the ledger");
                    }
                    return Ok(());
                }
                Outcome::Applied { .. } | Outcome::Replayed => return Ok(()),
                Outcome::DuplicateId => format!("duplicate transaction_id {:?}", tx.transaction_id),
                Outcome::Overflow => format!("balance of account {} would overflow", tx.account),
            },
            Err(e) => e.to_string(),
        };
        if malformed_log.admit().0 {
            warn!(partition = pos.partition, offset = pos.offset, "record sent to the dead-letter topic: {reason}");
        }
        let shared = shared.clone();
        Err(DeadLetter {
            reason,
            on_written: Box::new(move || {
                // Counted, and its position marked handled, only once it is safely kept.
                if shared.ledger_mut().skip(pos) {
                    shared.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }),
        })
    })
    .await
}
