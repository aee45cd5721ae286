//! One run of the lesson: the naive calculator's consumer, started again from its file and its
//! committed offsets after each crash, until the presenter stops it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cashflow_shared::Transaction;
use cashflow_shared::naive::{Coverage, Crash, Delivery, NaiveState, NaiveStatus, PartitionDiff};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::config::Settings;
use crate::kafka::Context;
use crate::kafka::consumer_config;
use crate::pipeline::consume::RateLimitedLog;
use crate::state::Shared;
use crate::state::lessons::Writer;

use super::book_file::BookFile;
use super::{BATCH, Control, MAX_BATCH, ROLE};

/// One run of the lesson, across the naive calculator's crashes.
pub(super) struct Lesson {
    pub(super) settings: Settings,
    pub(super) brokers: String,
    pub(super) shared: Arc<Shared>,
    /// The lesson's status (see [`NaiveCalculator`](super::NaiveCalculator)).
    pub(super) status: Arc<Writer<NaiveStatus>>,
    pub(super) group: String,
    /// Its folder; the file is `<group>.jsonl` inside.
    pub(super) path: PathBuf,
}

/// How one incarnation of the naive calculator ended.
pub(super) enum Exit {
    Stopped,
    /// Killed between its two steps with this many records in the batch.
    Crashed(u64),
}

impl Lesson {
    /// Its file: `<group>.jsonl` in its folder.
    pub(super) fn file(&self) -> BookFile {
        BookFile::new(&self.path, &self.group)
    }

    pub(super) async fn run(self, control: Arc<Control>) {
        let this = Arc::new(self);
        let (book, offsets) = this.shared.ledger().seed_naive();
        let mut coverage = Coverage::seeded(&offsets);
        let mut seed = Some(offsets);
        let saved = {
            let t = this.clone();
            tokio::task::spawn_blocking(move || t.file().rewrite(&book)).await
        };
        let mut failure = match saved {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) => Some(anyhow::anyhow!("{e}")),
        };
        info!(group = %this.group, "naive calculator started");
        while failure.is_none() {
            this.status.update(|n| n.state = NaiveState::Starting);
            let (t, c, s, mut cov) = (
                this.clone(),
                control.clone(),
                seed.take(),
                std::mem::take(&mut coverage),
            );
            let r = tokio::task::spawn_blocking(move || {
                let r = t.incarnation(&c, &mut cov, s.as_ref());
                (r, cov)
            })
            .await;
            let exit = match r {
                Ok((r, c)) => {
                    coverage = c;
                    r
                }
                Err(e) => Err(anyhow::anyhow!("the naive calculator panicked: {e}")),
            };
            match exit {
                Ok(Exit::Stopped) => break,
                Ok(Exit::Crashed(batch)) => {
                    warn!(group = %this.group, batch, "naive calculator crashed (on purpose); restarting");
                    this.status.update(|n| {
                        n.state = NaiveState::Crashed;
                        n.crash_armed = false;
                        n.crashes += 1;
                        n.last_crash = Some(Crash {
                            delivery: control.delivery(),
                            batch,
                            at_ms: crate::state::now_ms(),
                        });
                    });
                }
                Err(e) => failure = Some(e),
            }
        }
        control.token.cancel();
        if let Some(e) = &failure {
            warn!(group = %this.group, "naive calculator failed: {e:#}");
        }
        crate::kafka::delete_group(
            &this.brokers,
            &this.settings.kafka,
            &this.shared,
            &this.group,
        )
        .await;
        if let Err(e) = this.file().remove() {
            warn!(file = %this.file(), %e, "cannot remove the naive calculator's file");
        }
        // Only if empty (another server's lesson may use the folder).
        let _ = std::fs::remove_dir(&this.path);
        this.status.update(|n| {
            // A newer run may have started meanwhile: its status is its own.
            if n.group != this.group {
                return;
            }
            n.crash_armed = false;
            match failure {
                Some(e) => {
                    n.state = NaiveState::Failed;
                    n.note = format!("{e:#}");
                }
                None => n.state = NaiveState::Off,
            }
        });
        info!(group = %this.group, "naive calculator stopped");
    }

    /// One process's life: join the group, load the file, then batch after batch until it is
    /// stopped or crashed. Blocking (its own thread from the blocking pool).
    fn incarnation(
        &self,
        control: &Control,
        coverage: &mut Coverage,
        seed: Option<&BTreeMap<i32, i64>>,
    ) -> anyhow::Result<Exit> {
        let topic = self.settings.topic.as_str();
        let mut cfg = consumer_config(&self.brokers, &self.settings.kafka, &self.group);
        // It commits by itself, per batch (the flaw being where, not whether). The shortest
        // session the broker allows by default: after a crash the group waits that long for
        // the dead member before the restarted one gets the partitions.
        cfg.set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .set("max.poll.interval.ms", "30000");
        let consumer: BaseConsumer<Context> =
            cfg.create_with_context(Context::new(&self.shared, ROLE))?;
        if let Some(offsets) = seed {
            let mut tpl = TopicPartitionList::new();
            for (p, o) in offsets {
                tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
            }
            if tpl.count() > 0 {
                consumer
                    .commit(&tpl, CommitMode::Sync)
                    .context("committing the starting offsets")?;
            }
        }
        consumer.subscribe(&[topic])?;
        let (mut book, mut lines) = self.file().load()?;
        let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
        // Partitions whose committed offset was looked up since they were assigned.
        let mut known: BTreeSet<i32> = BTreeSet::new();
        let mut diffs: BTreeMap<i32, PartitionDiff> = BTreeMap::new();
        let mut errors = RateLimitedLog::new(1);
        let mut batch: Vec<(i32, i64, Option<Transaction>)> = Vec::new();
        loop {
            if control.token.is_cancelled() {
                // A polite stop: it leaves its group (nothing is left to commit).
                drop(consumer);
                return Ok(Exit::Stopped);
            }
            batch.clear();
            let deadline = Instant::now() + BATCH;
            while batch.len() < MAX_BATCH && !control.token.is_cancelled() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match consumer.poll(left.min(Duration::from_millis(100))) {
                    Some(Ok(m)) if m.topic() == topic => batch.push((
                        m.partition(),
                        m.offset(),
                        Transaction::parse(m.payload().unwrap_or_default()).ok(),
                    )),
                    Some(Ok(_)) | None => {}
                    Some(Err(e)) => {
                        if errors.admit().0 {
                            warn!(%e, "{ROLE}: poll failed");
                        }
                    }
                }
            }
            self.learn_starts(&consumer, &mut positions, &mut known, coverage);
            if !batch.is_empty() {
                let mut next = TopicPartitionList::new();
                let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
                for (p, o, _) in &batch {
                    let e = ends.entry(*p).or_insert(*o + 1);
                    *e = (*e).max(*o + 1);
                }
                for (p, e) in &ends {
                    next.add_partition_offset(topic, *p, Offset::Offset(*e))?;
                }
                let crash = control.crash.swap(false, Ordering::Relaxed);
                let n = batch.len() as u64;
                match control.delivery() {
                    Delivery::AtMostOnce => {
                        self.commit(&consumer, &next);
                        if crash {
                            crate::kafka::ffi::kill(consumer);
                            return Ok(Exit::Crashed(n));
                        }
                        self.apply(&batch, &mut book, &mut positions, coverage);
                        lines = self.file().append(&mut book, lines)?;
                    }
                    Delivery::AtLeastOnce => {
                        self.apply(&batch, &mut book, &mut positions, coverage);
                        lines = self.file().append(&mut book, lines)?;
                        if crash {
                            crate::kafka::ffi::kill(consumer);
                            return Ok(Exit::Crashed(n));
                        }
                        self.commit(&consumer, &next);
                    }
                }
                self.status.update(|s| {
                    s.batches += 1;
                    s.applied += n;
                });
            }
            self.publish(&book, &positions, &mut diffs, coverage, control);
        }
    }
}
