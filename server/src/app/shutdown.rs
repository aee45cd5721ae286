//! The ordered shutdown (tested in `tests/shutdown.rs`).

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::App;

impl App {
    /// Graceful shutdown, in order: stop generating and flush the producer; then stop the
    /// consumers (each commits its offsets), so they read what the flush delivered for as long
    /// as the producer ran; then the snapshot writer's final pass, over the state they left;
    /// then the HTTP server (viewers see it all until here) and the broker watch; then the
    /// managed broker. Each records its stop (`Shared::stops`).
    pub async fn shutdown(self) {
        // An outage lesson under way ends now: the flush and the final commits need the broker.
        if let Some(m) = &self.managed
            && let Err(e) = m.resume().await
        {
            warn!("the Apache Kafka broker did not start again: {e:#}");
        }
        self.kept.0.cancel();
        if let Some(k) = self.kept.1 {
            let _ = k.await;
        }
        self.producer_token.cancel();
        let _ = self.producer_task.await;
        self.consumers.cancel();
        let _ = self.logging.await;
        self.calculator.stop_all().await;
        self.snapshots.0.cancel();
        let _ = self.snapshots.1.await;
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(30), self.tracker.wait())
            .await
            .is_err()
        {
            warn!("some tasks did not stop within 30 s");
        }
        if let Some(m) = self.managed {
            match Arc::try_unwrap(m) {
                Ok(m) => m.stop().await,
                Err(m) => {
                    m.pause().await;
                }
            }
            self.shared.health().record_stop("managed broker stopped");
        }
        info!("stopped");
    }
}
