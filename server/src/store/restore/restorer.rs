//! One restore's reader and progress: where each partition starts (a snapshot or the state
//! held), and reading every partition's window and tail up to where the restore stops.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cashflow_shared::api::RestoreProgress;
use cashflow_shared::invariant::AckedPartition;
use cashflow_shared::ledger::PartitionLedger;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::Settings;
use crate::kafka::reader::{ReadError, Reader, read_ranges, reader};
use crate::kafka::topics::changelog_topic;
use crate::state::Shared;
use crate::store::changelog::load_latest;
use cashflow_shared::generator::MAX_ACCOUNTS;

use super::part::Part;
use super::publish;

pub(super) struct Restorer<'a> {
    pub(super) settings: &'a Settings,
    pub(super) shared: &'a Shared,
    pub(super) consumer: Reader,
    pub(super) token: &'a CancellationToken,
    pub(super) progress: RestoreProgress,
    pub(super) started: Instant,
}

impl Restorer<'_> {
    /// Chooses where each partition starts: its newest snapshot or the state held, whichever
    /// reflects more, or nothing. `wanted`: partition → (stop before, committed offset).
    pub(super) fn plan(
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
    pub(super) fn read(&mut self, parts: &mut BTreeMap<i32, Part>) -> Result<(), ReadError> {
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

    pub(super) fn report(&mut self, done: bool) {
        publish(self.shared, &mut self.progress, self.started, done);
    }
}

pub(super) fn restorer<'a>(
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
