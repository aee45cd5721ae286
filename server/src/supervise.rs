//! Tasks that restart when they fail. A consumer that stops with an error (a fatal client
//! error, a failure it cannot handle) is started again with back-off, and `/health` names it as
//! down, with the reason, until it runs again.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::error;

use crate::state::Shared;

/// First wait before a restart; it doubles up to [`MAX_BACKOFF`], and starts over once a run
/// lasted a minute.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs `make()`'s task until `token` is cancelled, starting it again whenever it ends.
pub fn supervise<F, Fut>(
    tracker: &TaskTracker,
    shared: Arc<Shared>,
    name: &'static str,
    token: CancellationToken,
    mut make: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tracker.spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            let result = make().await;
            if token.is_cancelled() {
                return;
            }
            let why = match result {
                Ok(()) => "stopped without an error".to_owned(),
                Err(e) => format!("{e:#}"),
            };
            if started.elapsed() > Duration::from_secs(60) {
                backoff = FIRST_BACKOFF;
            }
            error!("{name} stopped: {why}; restarting in {backoff:?}");
            shared.set_task_down(name, Some(why));
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            shared.set_task_down(name, None);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}
