//! What a consumer plugs into the loop: its [`Handler`] (what a record means), the
//! [`Verdict`] on each record, and its [`Role`] (which group, which name).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::BorrowedMessage;

use crate::state::group::MemberWriter;

/// What a consumer does with its records; [`consume`](super::consume) runs the loop around it.
pub trait Handler: Send {
    /// What one record means (called in consumption order, never concurrently).
    fn handle(&mut self, msg: &BorrowedMessage<'_>) -> Verdict;

    /// Blocking work for [`Verdict::CatchUp`]: handle the records of `partition` below
    /// `until` that another member of the group handled. Runs on the blocking pool, retried
    /// with back-off until it succeeds; the record is then handed to [`handle`](Self::handle)
    /// again. A handler that never catches up keeps the default.
    fn catch_up(&self) -> Option<Arc<dyn CatchUp>> {
        None
    }

    /// Called every [`TICK`] whether records come or not (e.g. to flush counters that are
    /// batched per record).
    fn tick(&mut self) {}

    /// Called before the records of one batch (those the client had ready, at most
    /// [`MAX_BATCH`]) are handed over one by one: `records` of them, at `now_ms` (one clock
    /// read a batch, not one a record).
    fn batch(&mut self, _records: usize, _now_ms: i64) {}

    /// Called once a batch, after [`batch`](Self::batch) and before its records are handed
    /// over: what can be decided for many records at once is decided here (the records still
    /// come to [`handle`](Self::handle) one by one, in order).
    fn prepare(&mut self, _batch: &[BorrowedMessage<'_>]) {}
}

/// Records handled per wake-up at most: what the client has ready is taken without waiting,
/// so the loop's select, the clock and the offset stores are paid once a batch, not a record.
pub const MAX_BATCH: usize = 1024;

/// How often [`Handler::tick`] runs.
pub const TICK: Duration = Duration::from_millis(200);

/// See [`Handler::catch_up`].
pub trait CatchUp: Send + Sync {
    fn catch_up(&self, partition: i32, until: i64) -> anyhow::Result<()>;
}

/// Which group a consumer joins and what it is called in logs and `/health`.
#[derive(Clone)]
pub struct Role {
    /// The group is `<group prefix>-<suffix>`.
    pub group_suffix: &'static str,
    pub name: &'static str,
    /// Which member of the balance calculator's group it is, if one, with its rows of the
    /// group: a member's partitions are shown on the page, and the presenter can pause its
    /// fetching.
    pub member: Option<MemberWriter>,
}

/// What a [`Handler`] makes of a record.
pub enum Verdict {
    /// Handled: its offset is stored (once every dead letter before it is acknowledged).
    Done,
    /// Refused: it goes to the dead-letter topic; its offset is stored once the letter is
    /// acknowledged (or could not be written at all).
    DeadLetter(DeadLetter),
    /// Not yet: the records of its partition below it were handled elsewhere and are caught up
    /// first ([`Handler::catch_up`]), then the same record is handed over again.
    CatchUp { partition: i32, until: i64 },
    /// Cannot go on: the record is left unhandled (its offset not stored), the consumer commits
    /// what was handled and leaves its group, and `consume` returns this error (the supervisor
    /// starts it again).
    Fail(anyhow::Error),
}

/// A record the handler refuses: why, and what to do once its dead letter is settled (`true`:
/// written; `false`: the dead-letter topic could not take it).
pub struct DeadLetter {
    pub reason: String,
    pub on_settled: Box<dyn FnOnce(bool) + Send>,
}
