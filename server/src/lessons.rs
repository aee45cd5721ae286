//! The lessons that run Kafka clients or brokers of their own, on the presenter's command,
//! each a [`Lesson`], gathered in [`Lessons`] (the one dispatcher: the WebSocket's commands,
//! the hub's frames, the demo's reset and `GET /api/lessons` go through it and name no
//! lesson):
//!
//! - [`naive_calculator`]: delivery semantics, a deliberately naive calculator beside the exact
//!   one.
//! - [`replay`]: a fresh calculator reads the topic from the beginning and is compared with the
//!   live one.
//! - [`outage`]: the managed broker (or one node of three) stopped and started again.
//!
//! The other lessons (ordering, poison pills, back-pressure) use the pipeline's own commands
//! (keys, members, injected records, a maximum lag) and have no module here. Every lesson's
//! texts and checks are in [`cashflow_shared::lessons`], fed by [`crate::monitor`]; their
//! statuses live in [`crate::state::lessons`].

pub mod naive_calculator;
pub mod outage;
pub mod replay;

use std::sync::Arc;

use cashflow_shared::command::LessonCommand;
use cashflow_shared::lessons::{LessonId, LessonStatus, Text};
use cashflow_shared::protocol::{Delta, ServerMsg, Snapshot};
use futures_util::future::BoxFuture;
use serde::Serialize;

/// Why a lesson refused a command (the page shows it beside the lesson's buttons).
#[derive(Debug, thiserror::Error)]
pub enum LessonError {
    #[error("the server is stopping")]
    Stopping,
    #[error(
        "this server uses a Kafka it does not run (--brokers): stop one of its brokers from its own terminal (scripts/kafka.sh kill N on the 3-broker cluster)"
    )]
    NotManaged,
    #[error("an outage is under way")]
    OutageUnderWay,
    #[error("a replay is running already")]
    ReplayRunning,
    #[error("the exact calculator is still restoring its balances: try again in a moment")]
    Restoring,
    #[error("the naive calculator is not running: start it first")]
    NaiveNotRunning,
    #[error(transparent)]
    Node(#[from] crate::kafka::managed::NodeError),
}

/// A lesson with machinery of its own in the server.
pub trait Lesson: Send + Sync {
    /// Its row of the lesson panel.
    fn id(&self) -> LessonId;

    /// Whether `command` is one of this lesson's.
    fn takes(&self, command: &LessonCommand) -> bool;

    /// Carries out one of its commands ([`takes`](Self::takes)): the reply for the page.
    fn command(&self, id: Option<u64>, command: LessonCommand) -> BoxFuture<'_, ServerMsg>;

    /// Its status, in a new viewer's snapshot.
    fn show(&self, snapshot: &mut Snapshot);

    /// Its status in `delta` if it changed since version `seen` (then `seen` moves on).
    fn changes(&self, seen: &mut u64, delta: &mut Delta);

    /// Why the demo's reset must wait, if it must (e.g. a broker is down).
    fn holds_reset(&self) -> Option<LessonError> {
        None
    }

    /// Stops what it runs (the demo's reset, before the topic goes).
    fn stop(&self) {}

    /// Forgets its last run (the demo's reset).
    fn forget(&self);
}

/// The reply to a lesson's command: `ok`'s frame with what it did, or the error saying why not.
pub fn reply<T>(
    id: Option<u64>,
    done: Result<T, LessonError>,
    ok: impl FnOnce(Option<u64>, T) -> ServerMsg,
) -> ServerMsg {
    match done {
        Ok(v) => ok(id, v),
        Err(e) => ServerMsg::Error {
            id,
            message: e.to_string(),
        },
    }
}

/// Every lesson with a module here, in the panel's order.
pub struct Lessons {
    all: Vec<Arc<dyn Lesson>>,
}

/// A lesson as `GET /api/lessons` lists it: its texts and its checks now.
#[derive(Serialize)]
pub struct Listed {
    pub id: LessonId,
    #[serde(flatten)]
    pub text: &'static Text,
    pub status: Option<LessonStatus>,
    pub done: bool,
}

impl Lessons {
    pub fn new(mut all: Vec<Arc<dyn Lesson>>) -> Lessons {
        all.sort_by_key(|l| l.id() as usize);
        Lessons { all }
    }

    /// The reply of the lesson `command` is for.
    pub async fn command(&self, id: Option<u64>, command: LessonCommand) -> ServerMsg {
        match self.all.iter().find(|l| l.takes(&command)) {
            Some(lesson) => lesson.command(id, command).await,
            // Every lesson command's lesson is registered (`App` builds them all).
            None => ServerMsg::Error {
                id,
                message: "this lesson is not running on this server".into(),
            },
        }
    }

    /// Every lesson's status, into a new viewer's snapshot.
    pub fn show(&self, snapshot: &mut Snapshot) {
        for l in &self.all {
            l.show(snapshot);
        }
    }

    /// The versions of every lesson's status now, to start [`changes`](Self::changes) from.
    pub fn seen_now(&self) -> Vec<u64> {
        let mut seen = vec![0; self.all.len()];
        self.changes(&mut seen, &mut Delta::default());
        seen
    }

    /// Every lesson's status that changed since `seen`, into `delta`.
    pub fn changes(&self, seen: &mut [u64], delta: &mut Delta) {
        for (l, seen) in self.all.iter().zip(seen.iter_mut()) {
            l.changes(seen, delta);
        }
    }

    /// Why the demo's reset must wait, if some lesson says so.
    pub fn hold_reset(&self) -> Option<LessonError> {
        self.all.iter().find_map(|l| l.holds_reset())
    }

    /// Stops what every lesson runs.
    pub fn stop(&self) {
        for l in &self.all {
            l.stop();
        }
    }

    /// Every lesson forgets its last run.
    pub fn forget(&self) {
        for l in &self.all {
            l.forget();
        }
    }

    /// Every lesson of the panel (those without a module here too), with `checks`' status.
    pub fn listed(checks: &cashflow_shared::lessons::LessonsStatus) -> Vec<Listed> {
        cashflow_shared::lessons::LESSONS
            .iter()
            .map(|l| {
                let status = checks.get(l.id).cloned();
                Listed {
                    id: l.id,
                    text: l.text,
                    done: status.as_ref().is_some_and(|s| s.done()),
                    status,
                }
            })
            .collect()
    }
}
