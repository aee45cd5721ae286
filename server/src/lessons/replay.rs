//! The replay lesson ([`cashflow_shared::replay`]): on the presenter's click a fresh balance
//! calculator, in a consumer group of its own (`<prefix>-replay-<time>`), reads the topic from
//! its log start into a private ledger. The page shows its progress, its group's lag in the
//! groups panel (its offsets are committed as it goes), and, partition by partition, whether it
//! equals the live calculator once both have handled the same offsets. Once converged (or
//! stopped) the consumer leaves and its group is deleted, so nothing of it stays behind.

use cashflow_shared::command::{LessonCommand, ReplayCommand};
use cashflow_shared::protocol::{Delta, ServerMsg, Snapshot};
use futures_util::future::BoxFuture;

use std::sync::{Arc, Mutex};

use cashflow_shared::replay::{ReplayState, ReplayStatus};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Settings;
use crate::lessons::LessonError;
use crate::state::Shared;
use crate::state::lessons::Writer;

mod run;

use run::run;

/// Starts and stops replays; at most one runs.
pub struct Replays {
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    /// The lesson's status: written here and by its runs, nowhere else.
    status: Arc<Writer<ReplayStatus>>,
    tracker: TaskTracker,
    /// Cancelled at shutdown.
    app: CancellationToken,
    running: Mutex<Option<CancellationToken>>,
}

impl Replays {
    pub fn new(
        settings: Settings,
        brokers: String,
        shared: Arc<Shared>,
        status: Writer<ReplayStatus>,
        tracker: TaskTracker,
        app: CancellationToken,
    ) -> Self {
        Replays {
            settings,
            brokers,
            shared,
            status: Arc::new(status),
            tracker,
            app,
            running: Mutex::new(None),
        }
    }

    /// Starts a replay, unless one runs.
    pub fn start(&self) -> Result<ReplayStatus, LessonError> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if self.status.get().state == ReplayState::Running {
            return Err(LessonError::ReplayRunning);
        }
        let token = self.app.child_token();
        *running = Some(token.clone());
        let group = format!(
            "{}-replay-{}",
            self.settings.group_prefix,
            crate::state::now_ms()
        );
        let status = ReplayStatus {
            state: ReplayState::Running,
            group: group.clone(),
            started_ms: crate::state::now_ms(),
            ..ReplayStatus::default()
        };
        self.status.set(status.clone());
        let (s, b, sh, st) = (
            self.settings.clone(),
            self.brokers.clone(),
            self.shared.clone(),
            self.status.clone(),
        );
        self.tracker.spawn(async move {
            let state = match run(&s, &b, &sh, &st, &group, token).await {
                Ok(state) => state,
                Err(e) => {
                    warn!(%group, "replay failed: {e:#}");
                    st.update(|r| {
                        r.state = ReplayState::Failed;
                        r.note = format!("{e:#}");
                    });
                    ReplayState::Failed
                }
            };
            crate::kafka::delete_group(&b, &s.kafka, &sh, &group).await;
            info!(%group, ?state, "replay over");
        });
        Ok(status)
    }

    /// Stops the running replay, if any.
    pub fn stop(&self) -> ReplayStatus {
        if let Some(t) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            t.cancel();
        }
        self.status.get()
    }
}

impl crate::lessons::Lesson for Replays {
    fn id(&self) -> cashflow_shared::lessons::LessonId {
        cashflow_shared::lessons::LessonId::Replay
    }

    fn takes(&self, command: &LessonCommand) -> bool {
        matches!(command, LessonCommand::Replay(_))
    }

    fn command(&self, id: Option<u64>, command: LessonCommand) -> BoxFuture<'_, ServerMsg> {
        let done = match command {
            LessonCommand::Replay(ReplayCommand::Start) => self.start(),
            // Stop, and (never reached: `takes`) another lesson's command.
            _ => Ok(self.stop()),
        };
        let replay = |id, replay| ServerMsg::Replay { id, replay };
        Box::pin(std::future::ready(crate::lessons::reply(id, done, replay)))
    }

    fn show(&self, snapshot: &mut Snapshot) {
        snapshot.replay = self.status.get();
    }

    fn changes(&self, seen: &mut u64, delta: &mut Delta) {
        delta.replay = self.shared.lessons().replay().changed_since(seen);
    }

    fn stop(&self) {
        Replays::stop(self);
    }

    fn forget(&self) {
        self.status.set(Default::default());
    }
}
