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
//! ([`Coverage`](cashflow_shared::naive::Coverage)): records skipped and read twice are counted exactly at any rate. Its
//! balances are compared with the exact ones partition by partition whenever both have read a
//! partition to the same offset.

use cashflow_shared::command::{LessonCommand, NaiveCommand};
use cashflow_shared::protocol::{Delta, ServerMsg, Snapshot};
use futures_util::future::BoxFuture;

use crate::lessons::LessonError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cashflow_shared::naive::{Delivery, NaiveState, NaiveStatus};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::state::Shared;
use crate::state::lessons::Writer;

mod batch;
mod book_file;
mod run;

use run::Lesson;

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
    /// The lesson's status: written here and by its runs, nowhere else.
    status: Arc<Writer<NaiveStatus>>,
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
        status: Writer<NaiveStatus>,
        tracker: TaskTracker,
        app: CancellationToken,
    ) -> Self {
        NaiveCalculator {
            settings,
            brokers,
            shared,
            status: Arc::new(status),
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
            return Ok(self.status.update(|n| {
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
        self.status.update(|n| *n = status.clone());
        let lesson = Lesson {
            settings: self.settings.clone(),
            brokers: self.brokers.clone(),
            shared: self.shared.clone(),
            status: self.status.clone(),
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
                Ok(self.status.update(|n| {
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
        self.status.get()
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

impl crate::lessons::Lesson for NaiveCalculator {
    fn id(&self) -> cashflow_shared::lessons::LessonId {
        cashflow_shared::lessons::LessonId::Delivery
    }

    fn takes(&self, command: &LessonCommand) -> bool {
        matches!(command, LessonCommand::Naive(_))
    }

    fn command(&self, id: Option<u64>, command: LessonCommand) -> BoxFuture<'_, ServerMsg> {
        let done = match command {
            LessonCommand::Naive(NaiveCommand::Start(delivery)) => self.start(delivery),
            LessonCommand::Naive(NaiveCommand::Crash) => self.crash(),
            // Stop, and (never reached: `takes`) another lesson's command.
            _ => Ok(NaiveCalculator::stop(self)),
        };
        let naive = |id, naive| ServerMsg::Naive { id, naive };
        Box::pin(std::future::ready(crate::lessons::reply(id, done, naive)))
    }

    fn show(&self, snapshot: &mut Snapshot) {
        snapshot.naive = self.status.get();
    }

    fn changes(&self, seen: &mut u64, delta: &mut Delta) {
        delta.naive = self.shared.lessons().naive().changed_since(seen);
    }

    fn stop(&self) {
        NaiveCalculator::stop(self);
    }

    fn forget(&self) {
        self.status.set(Default::default());
    }
}
