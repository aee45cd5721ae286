//! Rebuilding the balance calculator's state from Kafka: every partition at start, and a
//! partition that arrives from another member of the group ("catch-up").
//!
//! Each partition starts from the best state at hand: the newest complete snapshot in the
//! changelog ([`state_store`](crate::store::changelog)) or the state this process already holds,
//! whichever reflects more. From a snapshot, the records of the id window just before its offset
//! are read again (ids only: duplicates are decided per partition within that window), then the
//! tail after it is applied, each record once by position. So a restart reads at most the window
//! plus the records since the last snapshot, whatever the topic's history.
//!
//! In the tail, records below the group's committed offset were handled by some member already
//! (applied, or dead-lettered and counted); above it the restore applies transactions up to the
//! first record the live consumer must still dead-letter, which it leaves to the live consumer.
//! The producer's view goes on to the end of the topic, so its next `new_balance` is right.
//!
//! At start the restore also recovers the invariant's two sides ([`cashflow_shared::invariant`]):
//! the producer id the newest snapshot names becomes this server's again, each partition's
//! applied side comes with its state, and its acknowledged side goes on from the snapshot's
//! `acked_next`, counting that producer's records found in the log after it (a record in the
//! log was acknowledged, or would have been had the last run not stopped first).
//!
//! A partition is finished at its end offset as the consumer reaches it (partition EOF), not
//! when a record at `end - 1` is seen: transaction markers and aborted records occupy offsets
//! that are never delivered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cashflow_shared::api::RestoreProgress;
use cashflow_shared::invariant::AckedPartition;
use cashflow_shared::ledger::{AccountState, PartitionLedger};
use cashflow_shared::{AccountId, Ledger, Money, Outcome, Transaction};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Settings;
use crate::kafka::reader::{ReadError, Reader, read_ranges, reader};
use crate::kafka::topics::changelog_topic;
use crate::state::Shared;
use crate::store::changelog::load_latest;
use cashflow_shared::generator::MAX_ACCOUNTS;

mod catch_up;
mod part;

pub use catch_up::catch_up;

use part::Part;

struct Restorer<'a> {
    settings: &'a Settings,
    shared: &'a Shared,
    consumer: Reader,
    token: &'a CancellationToken,
    progress: RestoreProgress,
    started: Instant,
}

impl Restorer<'_> {
    /// Chooses where each partition starts: its newest snapshot or the state held, whichever
    /// reflects more, or nothing. `wanted`: partition → (stop before, committed offset).
    fn plan(
        &mut self,
        wanted: &BTreeMap<i32, (Option<i64>, i64)>,
    ) -> Result<BTreeMap<i32, Part>, ReadError> {
        let topic = &self.settings.topic;
        let width = self.shared.ledger().window_width();
        let partitions: Vec<i32> = wanted.keys().copied().collect();
        let (mut loaded, read) = load_latest(
            &self.consumer,
            &changelog_topic(topic),
            &partitions,
            width,
            self.token,
        )?;
        self.progress.changelog_records += read;
        // The producer the newest snapshot counted as this server's is this server's again.
        let found = loaded
            .values()
            .flatten()
            .filter_map(|(h, _)| Some((h.taken_ms, h.producer.as_ref()?.id.clone())))
            .max()
            .map(|(_, id)| id);
        let producer: std::sync::Arc<str> = self.shared.adopt_producer_id(found).into();
        let mut parts = BTreeMap::new();
        let recreated = std::cell::Cell::new(false);
        for (p, (until, commit)) in wanted {
            let (lo, hi) = self
                .consumer
                .fetch_watermarks(topic, *p, Duration::from_secs(10))?;
            let snapshot = loaded.remove(p).flatten();
            if let Some((h, _)) = &snapshot {
                self.shared.store().set_mark(*p, h.slot, h.next_offset);
            }
            // A state ahead of the topic's end belongs to an earlier topic of the same name,
            // deleted and created again: the new topic starts afresh.
            let current = |next: i64, what: &str| {
                let ahead = next > hi;
                if ahead {
                    recreated.set(true);
                    warn!(
                        partition = p,
                        state_offset = next,
                        end = hi,
                        "the topic was re-created: {what} is ahead of its end; starting this partition afresh"
                    );
                }
                !ahead
            };
            let held = self
                .shared
                .ledger()
                .partition(*p)
                .filter(|s| current(s.next_offset(), "the state held"));
            let snapshot = snapshot
                .map(|(h, s)| {
                    let mine = h.producer.as_ref().is_some_and(|m| *m.id == *producer);
                    (s.state, s.acked.filter(|_| mine))
                })
                .filter(|(s, _)| current(s.next_offset(), "the newest snapshot"));
            // The acknowledged side is recovered at start only: later, this process's own
            // delivery reports are it.
            let at_start = until.is_none();
            let (mut state, from, mut acked) = match (held, snapshot) {
                (held, Some((s, acked)))
                    if held
                        .as_ref()
                        .is_none_or(|h| s.next_offset() > h.next_offset()) =>
                {
                    self.progress.from_snapshot += 1;
                    // Without its counts (an earlier build's snapshot, or another producer's)
                    // both sides start at the snapshot's offset.
                    let acked = acked.unwrap_or_else(|| AckedPartition {
                        next: s.next_offset(),
                        ..AckedPartition::default()
                    });
                    // At start the producer's records after the acknowledged cut are read too.
                    let from = if at_start {
                        s.window_start().min(acked.next)
                    } else {
                        s.window_start()
                    };
                    (s, from, at_start.then_some(acked))
                }
                (Some(h), _) => {
                    let from = h.next_offset();
                    (h, from, None)
                }
                (None, _) => {
                    if hi - lo > 2 * self.settings.store.every_records {
                        warn!(
                            partition = p,
                            records = hi - lo,
                            "no snapshot of this partition: replaying it"
                        );
                    }
                    (
                        PartitionLedger::new(width),
                        lo,
                        at_start.then(AckedPartition::default),
                    )
                }
            };
            // Counted as this server's from the state's offset on (a snapshot naming this
            // producer keeps its counts).
            state.count_as_own(&producer);
            if state.next_offset() < lo {
                warn!(
                    partition = p,
                    from = state.next_offset(),
                    to = lo,
                    "records deleted by the topic's retention before they were applied; balances omit them"
                );
                state.skip_to(lo);
            }
            let from = from.max(lo);
            let end = until.map_or(hi, |u| u.min(hi));
            self.progress.source_total += (end - from).max(0) as u64;
            self.progress.partitions += 1;
            parts.insert(
                *p,
                Part {
                    // The generator's accounts only: a topic may hold a million others.
                    view: until
                        .is_none()
                        .then(|| state.copy_with_accounts(|a| (1..=MAX_ACCOUNTS).contains(&a))),
                    acked: acked.take().map(|a| (producer.clone(), a)),
                    end,
                    state,
                    from,
                    until: *until,
                    commit: (*commit).max(lo),
                    stopped: false,
                },
            );
        }
        if recreated.get() {
            self.shared.store().partitions_recreated();
        }
        Ok(parts)
    }

    /// Reads every part to its end (or its `until`).
    fn read(&mut self, parts: &mut BTreeMap<i32, Part>) -> Result<(), ReadError> {
        let ranges: BTreeMap<i32, (i64, i64)> = parts
            .iter()
            .map(|(p, part)| (*p, (part.from, part.until.unwrap_or(i64::MAX))))
            .collect();
        let opening = self.shared.ledger().opening_balance();
        let mut reported = Instant::now();
        let (shared, progress, started) = (self.shared, &mut self.progress, self.started);
        read_ranges(
            &self.consumer,
            &self.settings.topic,
            &ranges,
            self.token,
            |m| {
                let Some(part) = parts.get_mut(&m.partition()) else {
                    return;
                };
                progress.source_records += 1;
                *progress
                    .source_records_by_partition
                    .entry(m.partition())
                    .or_default() += 1;
                part.handle(m.offset(), m.payload().unwrap_or_default(), opening);
                if reported.elapsed() > Duration::from_millis(250) {
                    publish(shared, progress, started, false);
                    reported = Instant::now();
                }
            },
        )
    }

    fn report(&mut self, done: bool) {
        publish(self.shared, &mut self.progress, self.started, done);
    }
}

/// Makes a restore's progress visible (`/health`, the page).
fn publish(shared: &Shared, p: &mut RestoreProgress, started: Instant, done: bool) {
    p.done = done;
    p.ms = started.elapsed().as_millis() as u64;
    p.percent = if p.source_total == 0 {
        100.0
    } else {
        (p.source_records as f64 * 100.0 / p.source_total as f64).min(100.0)
    };
    shared.store().restore_progress(p.clone());
}

fn restorer<'a>(
    settings: &'a Settings,
    brokers: &str,
    shared: &'a Shared,
    token: &'a CancellationToken,
) -> anyhow::Result<Restorer<'a>> {
    Ok(Restorer {
        settings,
        shared,
        consumer: reader(settings, brokers)?,
        token,
        progress: RestoreProgress::default(),
        started: Instant::now(),
    })
}

/// Commits, for the calculator's group, each partition's position after the restore where it
/// is past the group's commit: else the consumer starts at the old commit and skips, one by one,
/// every record the restore just applied (the whole topic, on a fresh group). Everything below
/// the position was handled: applied by the restore, or dead-lettered before the old commit
/// (the restore stops at the first record still to dead-letter). Kafka takes a commit from
/// outside only while the group has no members (another instance, or the last run's member
/// until its session ends); then the consumer skips as before.
fn commit_restored(consumer: &Reader, topic: &str, partitions: &[i32], shared: &Shared) {
    use rdkafka::consumer::CommitMode;
    // The group's commit now, not at the restore's start: a member that came and went meanwhile
    // may have committed further, and this must not move it back.
    let mut asked = TopicPartitionList::new();
    for p in partitions {
        asked.add_partition(topic, *p);
    }
    let now = match consumer.committed_offsets(asked, Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            info!(%e, "restored positions not committed: the group's commit is unknown");
            return;
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let commit = match now.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        };
        let next = shared.ledger().next_offset(*p);
        if next > commit
            && let Err(e) = tpl.add_partition_offset(topic, *p, Offset::Offset(next))
        {
            warn!(partition = p, %e, "cannot commit the restored position");
        }
    }
    if tpl.count() == 0 {
        return;
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => info!(partitions = tpl.count(), "committed the restored positions"),
        Err(e) => {
            info!(%e, "restored positions not committed (the group has members): the consumer skips what the restore applied")
        }
    }
}

/// Restores every partition of the topic before anything is consumed or produced. Returns the
/// producer's view of every account, or `None` if cancelled.
pub fn restore_all(
    settings: &Settings,
    brokers: &str,
    shared: &Shared,
    token: &CancellationToken,
) -> anyhow::Result<Option<BTreeMap<AccountId, AccountState>>> {
    let mut r = restorer(settings, brokers, shared, token)?;
    let timeout = Duration::from_secs(10);
    let meta = r.consumer.fetch_metadata(Some(&settings.topic), timeout)?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition(&settings.topic, *p);
    }
    let committed = r.consumer.committed_offsets(wanted, timeout)?;
    let wanted: BTreeMap<i32, (Option<i64>, i64)> = partitions
        .iter()
        .map(|p| {
            let commit = match committed
                .find_partition(&settings.topic, *p)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            };
            (*p, (None, commit))
        })
        .collect();
    let mut parts = match r.plan(&wanted) {
        Ok(parts) => parts,
        Err(ReadError::Cancelled) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match r.read(&mut parts) {
        Ok(()) => {}
        Err(ReadError::Cancelled) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut view = Ledger::with_id_window(
        shared.ledger().opening_balance(),
        shared.ledger().window_width(),
    );
    let mut states = Vec::with_capacity(parts.len());
    for (p, part) in parts {
        if let Some(v) = part.view {
            view.install(p, v);
        }
        if let Some((_, mut acked)) = part.acked {
            // Every one of the producer's records below the end was just counted: the next
            // restart need not read them again.
            acked.next = acked.next.max(part.end);
            shared.acks().restore(p, acked);
        }
        states.push((p, part.state));
    }
    shared.ledger().install(states);
    commit_restored(&r.consumer, &settings.topic, &partitions, shared);
    r.report(true);
    crate::store::changelog::log_restore(&r.progress);
    // The view applied the tail for every account; the producer keeps the generator's.
    Ok(Some(
        view.accounts()
            .range(1..=MAX_ACCOUNTS)
            .map(|(a, s)| (*a, *s))
            .collect(),
    ))
}
