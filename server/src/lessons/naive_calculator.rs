//! The delivery-semantics lesson ([`cashflow_shared::naive`]): a deliberately naive balance
//! calculator runs beside the exact one, in a consumer group of its own. Per batch it saves its
//! balances to a file and commits its offsets to Kafka as two separate steps, in the order the
//! presenter chose (at-most-once: commit first; at-least-once: save first). "Crash" kills it
//! between the two steps of its next batch with records, as a killed process dies: no commit,
//! no LeaveGroup ([`kafka_ffi::kill`](crate::kafka::ffi::kill)). It then restarts from its file
//! and its committed offsets, and the page shows what that cost.
//!
//! It starts from a copy of the exact calculator's balances at the offsets they cover, so it
//! agrees with the exact one until it crashes. What it read is tracked by offset
//! ([`Coverage`]): records skipped and read twice are counted exactly at any rate. Its
//! balances are compared with the exact ones partition by partition whenever both have read a
//! partition to the same offset.

use cashflow_shared::command::Command;
use cashflow_shared::protocol::{Delta, ServerMsg, Snapshot};
use futures_util::future::BoxFuture;

use crate::lessons::LessonError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cashflow_shared::Transaction;
use cashflow_shared::naive::{
    Coverage, Crash, Delivery, NaiveBook, NaiveState, NaiveStatus, PartitionDiff,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Settings;
use crate::kafka::Context;
use crate::kafka::consumer_config;
use crate::pipeline::consume::RateLimitedLog;
use crate::state::Shared;

mod book_file;
use book_file::BookFile;

const ROLE: &str = "naive calculator";
/// A batch is what arrives within this long (or [`MAX_BATCH`] records): long enough that a
/// crash at classroom rates catches a few records between the two steps.
const BATCH: Duration = Duration::from_secs(1);
const MAX_BATCH: usize = 5_000;

/// What the presenter's commands reach while the lesson runs.
struct Control {
    token: CancellationToken,
    crash: AtomicBool,
    delivery: AtomicU8,
}

impl Control {
    fn delivery(&self) -> Delivery {
        match self.delivery.load(Ordering::Relaxed) {
            0 => Delivery::AtLeastOnce,
            _ => Delivery::AtMostOnce,
        }
    }

    fn set_delivery(&self, d: Delivery) {
        let v = match d {
            Delivery::AtLeastOnce => 0,
            Delivery::AtMostOnce => 1,
        };
        self.delivery.store(v, Ordering::Relaxed);
    }
}

/// Starts, crashes and stops the naive calculator; at most one runs.
pub struct NaiveCalculator {
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    /// Cancelled at shutdown.
    app: CancellationToken,
    running: Mutex<Option<Arc<Control>>>,
}

impl NaiveCalculator {
    pub fn new(
        settings: Settings,
        brokers: String,
        shared: Arc<Shared>,
        tracker: TaskTracker,
        app: CancellationToken,
    ) -> Self {
        NaiveCalculator {
            settings,
            brokers,
            shared,
            tracker,
            app,
            running: Mutex::new(None),
        }
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Option<Arc<Control>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts it with `delivery`, or switches the running one to it.
    pub fn start(&self, delivery: Delivery) -> Result<NaiveStatus, LessonError> {
        let mut running = self.control();
        if let Some(c) = running.as_ref().filter(|c| !c.token.is_cancelled()) {
            c.set_delivery(delivery);
            return Ok(self.shared.lessons().naive().update(|n| {
                n.delivery = delivery;
                n.clone()
            }));
        }
        if self.shared.store().health().restoring {
            return Err(LessonError::Restoring);
        }
        let control = Arc::new(Control {
            token: self.app.child_token(),
            crash: AtomicBool::new(false),
            delivery: AtomicU8::new(0),
        });
        control.set_delivery(delivery);
        *running = Some(control.clone());
        let group = format!(
            "{}-naive-{}",
            self.settings.group_prefix,
            crate::state::now_ms()
        );
        let status = NaiveStatus {
            state: NaiveState::Starting,
            delivery,
            group: group.clone(),
            ..NaiveStatus::default()
        };
        self.shared
            .lessons()
            .naive()
            .update(|n| *n = status.clone());
        let lesson = Lesson {
            settings: self.settings.clone(),
            brokers: self.brokers.clone(),
            shared: self.shared.clone(),
            group,
            path: state_dir(&self.settings),
        };
        self.tracker.spawn(lesson.run(control));
        Ok(status)
    }

    /// Arms a crash between the two steps of its next batch with records.
    pub fn crash(&self) -> Result<NaiveStatus, LessonError> {
        match self.control().as_ref().filter(|c| !c.token.is_cancelled()) {
            Some(c) => {
                c.crash.store(true, Ordering::Relaxed);
                Ok(self.shared.lessons().naive().update(|n| {
                    n.crash_armed = true;
                    n.clone()
                }))
            }
            None => Err(LessonError::NaiveNotRunning),
        }
    }

    /// Stops it; its group and its file are deleted.
    pub fn stop(&self) -> NaiveStatus {
        if let Some(c) = self.control().take() {
            c.token.cancel();
        }
        self.shared.lessons().naive().get()
    }
}

impl Drop for NaiveCalculator {
    /// Dropped without a shutdown (a test that panicked): its blocking thread must not poll on
    /// for good, or the runtime's blocking pool never shuts down.
    fn drop(&mut self) {
        if let Some(c) = self.control().take() {
            c.token.cancel();
        }
    }
}

/// Where the naive calculator keeps its file: in the data folder, or in the
/// system's temporary folder when nothing is kept.
fn state_dir(settings: &Settings) -> PathBuf {
    settings.data_dir.clone().map_or_else(
        || std::env::temp_dir().join(format!("cashflow-naive-{}", std::process::id())),
        |d| d.join("naive"),
    )
}

/// One run of the lesson, across the naive calculator's crashes.
struct Lesson {
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    group: String,
    /// Its folder; the file is `<group>.jsonl` inside.
    path: PathBuf,
}

/// How one incarnation of the naive calculator ended.
enum Exit {
    Stopped,
    /// Killed between its two steps with this many records in the batch.
    Crashed(u64),
}

impl Lesson {
    /// Its file: `<group>.jsonl` in its folder.
    fn file(&self) -> BookFile {
        BookFile::new(&self.path, &self.group)
    }

    async fn run(self, control: Arc<Control>) {
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
            this.shared
                .lessons()
                .naive()
                .update(|n| n.state = NaiveState::Starting);
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
                    this.shared.lessons().naive().update(|n| {
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
        this.shared.lessons().naive().update(|n| {
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
                self.shared.lessons().naive().update(|s| {
                    s.batches += 1;
                    s.applied += n;
                });
            }
            self.publish(&book, &positions, &mut diffs, coverage, control);
        }
    }

    /// The offsets each newly assigned partition starts from (its committed offset): a jump
    /// past what was read before is a loss.
    fn learn_starts(
        &self,
        consumer: &BaseConsumer<Context>,
        positions: &mut BTreeMap<i32, i64>,
        known: &mut BTreeSet<i32>,
        coverage: &mut Coverage,
    ) {
        let Ok(assigned) = consumer.assignment() else {
            return;
        };
        if assigned
            .elements()
            .iter()
            .all(|e| known.contains(&e.partition()))
        {
            return;
        }
        match consumer.committed(Duration::from_secs(2)) {
            Ok(committed) => {
                for e in committed.elements() {
                    if !known.insert(e.partition()) || positions.contains_key(&e.partition()) {
                        continue;
                    }
                    // Nothing committed: it starts wherever its first record is.
                    if let Offset::Offset(o) = e.offset() {
                        coverage.starts_at(e.partition(), o);
                        positions.insert(e.partition(), o);
                    }
                }
            }
            Err(e) => warn!(%e, "{ROLE}: cannot read its committed offsets"),
        }
    }

    fn apply(
        &self,
        batch: &[(i32, i64, Option<Transaction>)],
        book: &mut NaiveBook,
        positions: &mut BTreeMap<i32, i64>,
        coverage: &mut Coverage,
    ) {
        for (p, o, tx) in batch {
            coverage.read(*p, *o);
            if let Some(tx) = tx {
                // Naive: no duplicate check, no offsets; an overflow is just skipped.
                book.apply(*p, tx);
            }
            positions.insert(*p, o + 1);
        }
    }

    /// Commits synchronously; a failure (e.g. a rebalance under way) is logged and the batch
    /// goes on, as such a consumer would.
    fn commit(&self, consumer: &BaseConsumer<Context>, next: &TopicPartitionList) {
        if let Err(e) = consumer.commit(next, CommitMode::Sync) {
            warn!(%e, "{ROLE}: commit failed");
        }
    }

    /// Compares with the exact calculator where both stand at the same offset, and publishes.
    fn publish(
        &self,
        book: &NaiveBook,
        positions: &BTreeMap<i32, i64>,
        diffs: &mut BTreeMap<i32, PartitionDiff>,
        coverage: &Coverage,
        control: &Control,
    ) {
        let ledger = self.shared.ledger();
        for (p, next) in positions {
            if let Some(d) = ledger.compare_naive(*p, book.partition(*p), *next) {
                diffs.insert(*p, d);
            }
        }
        let opening = ledger.opening_balance();
        self.shared.lessons().naive().update(|s| {
            s.state = NaiveState::Running;
            s.delivery = control.delivery();
            s.crash_armed = control.crash.load(Ordering::Relaxed);
            s.lost = coverage.lost;
            s.doubled = coverage.doubled;
            s.partitions = positions.len() as u32;
            s.set_comparison(diffs, |a| {
                (ledger.account(a).balance, book.balance(a, opening))
            });
        });
    }
}

impl crate::lessons::Lesson for NaiveCalculator {
    fn id(&self) -> cashflow_shared::lessons::LessonId {
        cashflow_shared::lessons::LessonId::Delivery
    }

    fn takes(&self, command: &Command) -> bool {
        matches!(
            command,
            Command::StartNaive { .. } | Command::CrashNaive | Command::StopNaive
        )
    }

    fn command(&self, id: Option<u64>, command: Command) -> BoxFuture<'_, ServerMsg> {
        let done = match command {
            Command::StartNaive { delivery } => self.start(delivery),
            Command::CrashNaive => self.crash(),
            _ => Ok(NaiveCalculator::stop(self)),
        };
        let naive = |id, naive| ServerMsg::Naive { id, naive };
        Box::pin(std::future::ready(crate::lessons::reply(id, done, naive)))
    }

    fn show(&self, snapshot: &mut Snapshot) {
        snapshot.naive = self.shared.lessons().naive().get();
    }

    fn changes(&self, seen: &mut u64, delta: &mut Delta) {
        delta.naive = self.shared.lessons().naive().changed_since(seen);
    }

    fn stop(&self) {
        NaiveCalculator::stop(self);
    }

    fn forget(&self) {
        self.shared.lessons().naive().set(Default::default());
    }
}
