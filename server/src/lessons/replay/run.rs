//! One replay: a fresh consumer in a group of its own reads the topic from its log start into
//! a private ledger, compared with the live calculator partition by partition as it goes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cashflow_shared::ledger::PartitionLedger;
use cashflow_shared::replay::{ReplayState, ReplayStatus, differing};
use cashflow_shared::{Outcome, Transaction};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Settings;
use crate::kafka::{Context, consumer_config};
use crate::state::Shared;
use crate::state::lessons::Writer;

/// A replay gives up after this long (a topic growing faster than it reads).
const LIMIT: Duration = Duration::from_secs(600);
/// How often it compares with the live calculator and reports.
const EVERY: Duration = Duration::from_millis(250);

/// Applies one record to the replay's state of its partition, as the live calculator decides.
fn apply(state: &mut PartitionLedger, offset: i64, payload: &[u8]) {
    if offset > state.next_offset() {
        // Offsets without a record (transaction markers, compaction) are handled too.
        state.skip_to(offset);
    }
    match Transaction::parse(payload) {
        Ok(tx) => {
            if matches!(
                state.apply(&tx, offset, cashflow_shared::Money::ZERO),
                Outcome::DuplicateId | Outcome::Overflow
            ) {
                state.dead_letter(offset, Some(&tx));
            }
        }
        Err(_) => {
            state.dead_letter(offset, None);
        }
    }
}

pub(super) async fn run(
    settings: &Settings,
    brokers: &str,
    shared: &Arc<Shared>,
    status: &Writer<ReplayStatus>,
    group: &str,
    token: CancellationToken,
) -> anyhow::Result<ReplayState> {
    let started = Instant::now();
    let topic = settings.topic.clone();
    let mut cfg = consumer_config(brokers, &settings.kafka, group);
    // Its offsets are stored as records arrive and committed every second: its lag in the
    // groups panel is real, and nothing depends on it.
    cfg.set("enable.auto.offset.store", "true");
    let consumer: Arc<StreamConsumer<Context>> =
        Arc::new(cfg.create_with_context(Context::new(shared, "replay"))?);
    let (c, t) = (consumer.clone(), topic.clone());
    let marks =
        tokio::task::spawn_blocking(move || -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
            let timeout = Duration::from_secs(10);
            let meta = c.fetch_metadata(Some(&t), timeout)?;
            let mut marks = BTreeMap::new();
            for p in meta.topics().iter().flat_map(|t| t.partitions()) {
                marks.insert(p.id(), c.fetch_watermarks(&t, p.id(), timeout)?);
            }
            Ok(marks)
        })
        .await??;
    let width = shared.ledger().window_width();
    let mut parts: BTreeMap<i32, PartitionLedger> = marks
        .iter()
        .map(|(p, (lo, _))| {
            let mut s = PartitionLedger::new(width);
            s.skip_to(*lo);
            (*p, s)
        })
        .collect();
    status.update(|r| {
        r.total = marks.values().map(|(lo, hi)| (hi - lo).max(0) as u64).sum();
        r.from = marks.iter().map(|(p, (lo, _))| (*p, *lo)).collect();
        r.partitions = marks.len() as u32;
    });
    let trimmed: BTreeSet<i32> = marks
        .iter()
        .filter(|(_, (lo, _))| *lo > 0)
        .map(|(p, _)| *p)
        .collect();
    consumer.subscribe(&[&topic])?;
    info!(%group, %topic, "replay started from the log start");
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut read = 0u64;
    let mut matched = BTreeSet::new();
    let mut differ: BTreeMap<i32, u64> = BTreeMap::new();
    let state = loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break ReplayState::Stopped,
            _ = tick.tick() => {
                for (p, state) in &parts {
                    if shared.ledger().next_offset(*p) != state.next_offset() {
                        continue;
                    }
                    let live = shared
                        .ledger()
                        .partition(*p)
                        .unwrap_or_else(|| PartitionLedger::new(width));
                    if let Some(n) = differing(state, &live) {
                        differ.insert(*p, n);
                        if n == 0 {
                            matched.insert(*p);
                        } else {
                            matched.remove(p);
                        }
                    }
                }
                let reached = parts
                    .iter()
                    .all(|(p, s)| s.next_offset() >= marks.get(p).map_or(0, |m| m.1));
                let done = if matched.len() == parts.len() {
                    Some(ReplayState::Converged)
                } else if reached
                    && !trimmed.is_empty()
                    && trimmed.iter().all(|p| differ.get(p).is_some_and(|n| *n > 0))
                    && parts.keys().all(|p| trimmed.contains(p) || matched.contains(p))
                {
                    Some(ReplayState::Partial)
                } else if started.elapsed() > LIMIT {
                    Some(ReplayState::Stopped)
                } else {
                    None
                };
                status.update(|r| {
                    r.read = read;
                    r.ms = started.elapsed().as_millis() as u64;
                    r.matched = matched.len() as u32;
                    r.differing_accounts = differ.values().sum();
                });
                if let Some(s) = done {
                    break s;
                }
            }
            m = consumer.recv() => match m {
                Ok(m) => {
                    read += 1;
                    let state = parts
                        .entry(m.partition())
                        .or_insert_with(|| PartitionLedger::new(width));
                    apply(state, m.offset(), m.payload().unwrap_or_default());
                }
                // Reported through the client context; the consumer retries by itself.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
        }
    };
    status.update(|r| {
        r.state = state;
        r.read = read;
        r.ms = started.elapsed().as_millis() as u64;
        if state == ReplayState::Stopped && started.elapsed() > LIMIT {
            r.note = "gave up after 10 minutes".into();
        }
    });
    // Leave the group (a blocking close) so it can be deleted.
    tokio::task::spawn_blocking(move || drop(consumer)).await?;
    Ok(state)
}
