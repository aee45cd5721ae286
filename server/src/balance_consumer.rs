//! The balance calculator (group `<prefix>-balance`): the authority for balances.
//!
//! It applies every record to the shared [`Ledger`](cashflow_shared::Ledger), which computes
//! balances itself and flags a producer whose `new_balance` disagrees. An offset is stored only
//! after its record is applied, and auto-commit commits only stored offsets, so a restart
//! resumes at or before the first unapplied record (at-least-once); the ledger skips what it
//! already applied (by partition offset and by transaction id), so nothing counts twice.
//! A final synchronous commit runs at shutdown, and another before partitions are revoked.
//!
//! Several instances may share the group. A partition that comes (back) from another member
//! resumes at that member's commit; before the first record is applied, the records in between
//! (which only the other member applied) are read from the topic and applied ("catch-up"), so
//! each instance's ledger holds its partitions' accounts exactly.

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
use crate::kafka::{DeadLetter, DeadLetters, RateLimitedLog, Verdict, consume, consumer_config};
use crate::state::Shared;

/// A plain assigned reader of the topic for restore and catch-up. It shares the calculator's
/// group id only to read the group's committed offsets; it never joins the group nor commits.
fn reader(settings: &Settings, brokers: &str) -> anyhow::Result<BaseConsumer> {
    let group = format!("{}-balance", settings.group_prefix);
    let mut cfg = consumer_config(brokers, &settings.kafka, &group);
    cfg.set("enable.auto.commit", "false");
    Ok(cfg.create()?)
}

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
    let reader = reader(settings, brokers)?;
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
        if lo > shared.ledger().next_offset(*p) {
            warn!(
                partition = *p,
                deleted_below = lo,
                "records deleted by the topic's retention; balances omit them"
            );
        }
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
        let tx = Transaction::parse(msg.payload().unwrap_or_default()).ok();
        if committed {
            apply_handled(shared, pos, tx.as_ref());
        } else if !stopped.contains(&pos.partition) {
            // Past the commit the ledger stops, per partition, at the first record the live
            // consumer must still dead-letter (not a transaction, or a duplicate id).
            match &tx {
                Some(tx) if !shared.ledger().knows_id(&tx.transaction_id) => {
                    shared.ledger_mut().apply(tx, Some(pos));
                }
                _ => {
                    stopped.insert(pos.partition);
                }
            }
        }
        if let Some(tx) = &tx {
            view.apply(tx, Some(pos));
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

/// Applies a record some consumer of the group has already handled (its offset is below a
/// commit): a transaction is applied; what that consumer dead-lettered is counted, never applied.
fn apply_handled(shared: &Shared, pos: Position, tx: Option<&Transaction>) {
    let mut ledger = shared.ledger_mut();
    let dead_lettered = match tx {
        Some(tx) => matches!(
            ledger.apply(tx, Some(pos)),
            Outcome::DuplicateId | Outcome::Overflow
        ),
        None => ledger.skip(pos),
    };
    if dead_lettered {
        shared.malformed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Brings the ledger's `partition` up to `until` (exclusive) before the record at `until` is
/// applied: the records in between were handled by another member of the group while it owned
/// the partition (they are below its commit, since a new owner starts at the committed offset).
/// Records already deleted by the topic's retention are skipped with a warning.
fn catch_up(
    settings: &Settings,
    brokers: &str,
    shared: &Shared,
    partition: i32,
    until: i64,
) -> anyhow::Result<()> {
    let from = shared.ledger().next_offset(partition);
    if from >= until {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let reader = reader(settings, brokers)?;
    let timeout = Duration::from_secs(10);
    let (lo, _) = reader.fetch_watermarks(&settings.topic, partition, timeout)?;
    if lo > from {
        warn!(
            partition,
            from,
            to = lo,
            "records deleted by the topic's retention before they were applied; balances omit them"
        );
    }
    let start = from.max(lo);
    let mut read = 0u64;
    if start < until {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&settings.topic, partition, Offset::Offset(start))?;
        reader.assign(&tpl)?;
        let mut next = start;
        while next < until {
            if started.elapsed() > Duration::from_secs(120) {
                anyhow::bail!(
                    "partition {partition}: caught up {read} of {} records in 120 s",
                    until - start
                );
            }
            match reader.poll(Duration::from_millis(500)) {
                Some(msg) => {
                    let msg = msg?;
                    next = msg.offset() + 1;
                    if msg.offset() < until {
                        let pos = Position {
                            partition,
                            offset: msg.offset(),
                        };
                        let tx = Transaction::parse(msg.payload().unwrap_or_default()).ok();
                        apply_handled(shared, pos, tx.as_ref());
                        read += 1;
                    }
                }
                // Offsets without a record (e.g. transaction markers) move the position only.
                None => {
                    if let Ok(p) = reader.position()
                        && let Some(Offset::Offset(o)) = p
                            .find_partition(&settings.topic, partition)
                            .map(|e| e.offset())
                    {
                        next = next.max(o);
                    }
                }
            }
        }
    }
    shared.ledger_mut().skip_to(partition, until);
    info!(
        partition,
        from,
        until,
        records = read,
        ms = started.elapsed().as_millis() as u64,
        "caught up records another member of the group handled"
    );
    Ok(())
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
    let role = ("balance", crate::kafka::BALANCE_ROLE);
    let dead_letters = DeadLetters::new(&settings, &brokers, &shared)?;
    let handler_shared = shared.clone();
    let (catch_settings, catch_brokers) = (settings.clone(), brokers.clone());
    consume(&settings, &brokers, &shared, ready, token, role, Some(dead_letters), move |msg| {
        let shared = &handler_shared;
        let pos = Position { partition: msg.partition(), offset: msg.offset() };
        if shared.ledger().has_seen(pos) {
            return Verdict::Done; // re-delivered after a restart: already applied or dead-lettered
        }
        if shared.ledger().next_offset(pos.partition) < pos.offset {
            // A partition back from another member: its accounts first, then this record.
            let (s, b, sh) = (catch_settings.clone(), catch_brokers.clone(), shared.clone());
            return Verdict::CatchUp(Box::new(move || catch_up(&s, &b, &sh, pos.partition, pos.offset)));
        }
        let reason = match Transaction::parse(msg.payload().unwrap_or_default()) {
            Ok(tx) => match shared.ledger_mut().apply(&tx, Some(pos)) {
                Outcome::Applied { balance, producer_agrees: Some(false), .. } => {
                    if mismatch_log.admit().0 {
                        warn!(account = tx.account, id = %tx.transaction_id, producer = ?tx.new_balance.map(|b| b.to_string()),
                              computed = %balance, "producer's new_balance disagrees with the ledger");
                    }
                    return Verdict::Done;
                }
                Outcome::Applied { .. } | Outcome::Replayed => return Verdict::Done,
                Outcome::DuplicateId => format!("duplicate transaction_id {:?}", tx.transaction_id),
                Outcome::Overflow => format!("balance of account {} would overflow", tx.account),
            },
            Err(e) => e.to_string(),
        };
        if malformed_log.admit().0 {
            warn!(partition = pos.partition, offset = pos.offset, "record sent to the dead-letter topic: {reason}");
        }
        let shared = shared.clone();
        Verdict::DeadLetter(DeadLetter {
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
