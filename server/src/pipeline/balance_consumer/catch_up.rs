//! Catching a partition up from its previous owner's snapshot and records, as the calculator
//! does before the first record of a partition that came from another member.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::pipeline::consume::CatchUp;
use crate::state::Shared;
use crate::store::restore::catch_up;

/// Reads the records a partition's previous owner handled (see [`catch_up`]).
pub(super) struct CatchUpFromKafka {
    pub(super) settings: Settings,
    pub(super) brokers: String,
    pub(super) shared: Arc<Shared>,
    pub(super) token: CancellationToken,
    /// Test fault point: the next catch-up never ends (until shutdown).
    pub(super) stall: AtomicBool,
}

impl CatchUp for CatchUpFromKafka {
    fn catch_up(&self, partition: i32, until: i64) -> anyhow::Result<()> {
        if self.stall.swap(false, Ordering::Relaxed) {
            while !self.token.is_cancelled() {
                std::thread::sleep(Duration::from_millis(50));
            }
            anyhow::bail!("stopped");
        }
        catch_up(
            &self.settings,
            &self.brokers,
            &self.shared,
            partition,
            until,
            &self.token,
        )
    }
}
