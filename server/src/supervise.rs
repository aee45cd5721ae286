//! Tasks that restart when they fail. A task that stops with an error (a fatal client error, a
//! failure it cannot handle) or panics, or that ends although nobody stopped it, is started
//! again with back-off, and `/health` names it as down, with the reason, until it runs again.

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
    name: impl Into<std::borrow::Cow<'static, str>>,
    token: CancellationToken,
    mut make: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let tracker_inner = tracker.clone();
    let name = name.into();
    tracker.spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            // A task of its own, so a panic in it ends that task, not the supervision.
            let result = match tracker_inner.spawn(make()).await {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(anyhow::anyhow!("panicked: {}", panic_message(e))),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            };
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
            shared.health().set_task_down(&name, Some(why));
            tokio::select! {
                _ = token.cancelled() => {
                    // Stopped on purpose (e.g. a member removed) while waiting: not down.
                    shared.health().set_task_down(&name, None);
                    return;
                }
                _ = tokio::time::sleep(backoff) => {}
            }
            shared.health().set_task_down(&name, None);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashflow_shared::api::BrokerHealth;
    use cashflow_shared::{Ledger, Money};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn test_shared() -> Arc<Shared> {
        Arc::new(
            Shared::new(
                "t".into(),
                "g",
                Ledger::new(Money::from_major(100)),
                BrokerHealth::default(),
            )
            .0,
        )
    }

    /// A task that panics is started again, and named as down meanwhile.
    #[tokio::test]
    async fn a_panicking_task_is_started_again() {
        let shared = test_shared();
        let (tracker, token) = (TaskTracker::new(), CancellationToken::new());
        let runs = Arc::new(AtomicU32::new(0));
        let (r, t) = (runs.clone(), token.clone());
        supervise(
            &tracker,
            shared.clone(),
            "flaky",
            token.clone(),
            move || {
                let (r, t) = (r.clone(), t.clone());
                async move {
                    if r.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("first run fails");
                    }
                    t.cancelled().await;
                    Ok(())
                }
            },
        );
        let down = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(why) = shared.health().tasks_down().get("flaky").cloned() {
                    return why;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("named as down");
        assert!(down.contains("panicked: first run fails"), "{down}");
        tokio::time::timeout(Duration::from_secs(5), async {
            while runs.load(Ordering::SeqCst) < 2 || !shared.health().tasks_down().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("started again");
        token.cancel();
        tracker.close();
        tracker.wait().await;
    }

    /// A task stopped on purpose while it waits to be restarted is not left named as down.
    #[tokio::test]
    async fn cancelled_during_back_off_is_not_down() {
        let shared = test_shared();
        let (tracker, token) = (TaskTracker::new(), CancellationToken::new());
        let handle = supervise(
            &tracker,
            shared.clone(),
            "failing",
            token.clone(),
            || async { anyhow::bail!("always fails") },
        );
        tokio::time::timeout(Duration::from_secs(5), async {
            while !shared.health().tasks_down().contains_key("failing") {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("named as down");
        token.cancel();
        handle.await.expect("supervisor ends");
        assert!(
            shared.health().tasks_down().is_empty(),
            "{:?}",
            shared.health().tasks_down()
        );
    }
}
