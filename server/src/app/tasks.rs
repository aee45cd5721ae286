//! How `App::start` starts its supervised tasks: each from one [`Deps`], cloned for every
//! start and restart.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::error;

use crate::config::Settings;
use crate::state::Shared;
use crate::supervise::supervise;

pub(super) fn spawn_logged<F>(tracker: &TaskTracker, name: &'static str, fut: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tracker.spawn(async move {
        if let Err(e) = fut.await {
            error!("{name} stopped: {e:#}");
        }
    })
}

/// What the tasks are made from, cloned for each start and restart of one.
#[derive(Clone)]
pub(super) struct Deps {
    pub(super) settings: Settings,
    pub(super) brokers: String,
    pub(super) shared: Arc<Shared>,
    /// Set once the topic exists and the clients may use it.
    pub(super) ready: watch::Receiver<bool>,
}

/// Starts supervised tasks (see [`supervise`]) from [`Deps`].
pub(super) struct Tasks {
    pub(super) tracker: TaskTracker,
    pub(super) deps: Deps,
}

impl Tasks {
    /// Runs `make(deps, token)` as the task `name`, started again whenever it fails, until
    /// `token` is cancelled.
    pub(super) fn supervise<F, Fut>(
        &self,
        name: &'static str,
        token: &CancellationToken,
        make: F,
    ) -> JoinHandle<()>
    where
        F: Fn(Deps, CancellationToken) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (deps, t) = (self.deps.clone(), token.clone());
        supervise(
            &self.tracker,
            self.deps.shared.clone(),
            name,
            token.clone(),
            move || make(deps.clone(), t.clone()),
        )
    }
}
