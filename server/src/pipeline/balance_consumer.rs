//! The balance calculator (group `<prefix>-balance`): the authority for balances.
//!
//! At start it restores its state ([`restore`](crate::store::restore): newest snapshot plus the tail
//! of the topic), then consumes. Each record is applied to the shared
//! [`Ledger`](cashflow_shared::Ledger), which computes balances itself and flags a producer
//! whose `new_balance` disagrees; a record that is not a valid transaction, or that the ledger
//! refuses (a duplicate id within the window, an overflow), goes to the dead-letter topic first.
//! An offset is stored only after its record is handled, and auto-commit commits only stored
//! offsets, so a restart resumes at or before the first unhandled record; the ledger skips what
//! it already holds by position, so nothing counts twice. The state itself is persisted by the
//! [`state_store`](crate::store::changelog)'s snapshots, not by the commits.
//!
//! Inside one server the calculator is a group of 1…N members (see
//! [`calculator_group`](crate::pipeline::calculator_group)), each its own Kafka consumer applying to the
//! one ledger; member 1 restores the state before any member consumes.
//!
//! Several instances may share the group. A partition that comes (back) from another member
//! resumes at that member's commit; before its first record is applied, the partition is caught
//! up from that member's snapshot and the records after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::Settings;
use crate::pipeline::consume::{Role, consume};
use crate::pipeline::dead_letters::DeadLetters;
use crate::state::Shared;
use crate::state::group::MemberWriter;
use crate::store::restore::restore_all;

mod calculator;
mod catch_up;
mod records;

use calculator::Calculator;

pub use crate::state::RestoredView;

/// Test-only fault points, from `--test-fail-calculator-after` and
/// `--test-stall-calculator-after`: the calculator fails once, or stalls until shutdown, after
/// this many records (0: never). One set for the calculator's group, kept by it across its
/// members' restarts (so "once" stays once).
#[derive(Debug, Default)]
pub struct FaultPoints {
    fail_after: AtomicU64,
    stall_after: AtomicU64,
}

impl FaultPoints {
    pub fn new(settings: &Settings) -> FaultPoints {
        FaultPoints {
            fail_after: AtomicU64::new(settings.test_fail_calculator_after.unwrap_or(0)),
            stall_after: AtomicU64::new(settings.test_stall_calculator_after.unwrap_or(0)),
        }
    }

    /// Whether a fault is still to come (records are then counted one by one).
    fn armed(&self) -> bool {
        self.fail_after.load(Ordering::Relaxed) != 0
            || self.stall_after.load(Ordering::Relaxed) != 0
    }

    /// Counts one record; whether it is the one to fail at.
    fn fail_now(&self) -> bool {
        self.fail_after
            .try_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            == Ok(1)
    }

    /// Counts one record; whether it is the one to stall at.
    fn stall_now(&self) -> bool {
        self.stall_after
            .try_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            == Ok(1)
    }
}

/// Member `member` of the calculator: member 1 first restores the state (once: a member
/// restarted by its supervisor, or any other member, waits for `restore_done` instead), then
/// each consumes.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    mut ready: watch::Receiver<bool>,
    token: CancellationToken,
    restored: RestoredView,
    member: MemberWriter,
    restore_done: watch::Sender<bool>,
    faults: Arc<FaultPoints>,
) -> anyhow::Result<()> {
    if !crate::kafka::topics::until_ready(&mut ready, &token).await {
        return Ok(());
    }
    if member.number() == 1 && !*restore_done.borrow() {
        if !restore(&settings, &brokers, &shared, &token, &restored).await? {
            return Ok(());
        }
        restore_done.send_replace(true);
    } else {
        let mut done = restore_done.subscribe();
        let done = tokio::select! {
            _ = token.cancelled() => false,
            r = done.wait_for(|d| *d) => r.is_ok(),
        };
        if !done {
            return Ok(());
        }
    }
    let dead_letters = DeadLetters::new(&settings, &brokers, &shared)?;
    let calculator = Calculator::new(&settings, &brokers, &shared, &token, member.clone(), faults);
    let role = Role {
        group_suffix: "balance",
        name: crate::kafka::BALANCE_ROLE,
        member: Some(member),
    };
    consume(
        (&settings, &brokers, &shared),
        role,
        ready,
        token,
        Some(dead_letters),
        calculator,
    )
    .await
}

/// Restores the ledger from Kafka, retrying with back-off; `false` if stopped first.
async fn restore(
    settings: &Settings,
    brokers: &str,
    shared: &Arc<Shared>,
    token: &CancellationToken,
    restored: &RestoredView,
) -> anyhow::Result<bool> {
    shared.store().set_restoring(true);
    let mut backoff = Duration::from_millis(500);
    let view = loop {
        let (s, b, sh, t) = (
            settings.clone(),
            brokers.to_owned(),
            shared.clone(),
            token.clone(),
        );
        match tokio::task::spawn_blocking(move || restore_all(&s, &b, &sh, &t)).await? {
            Ok(Some(view)) => break view,
            Ok(None) => return Ok(false),
            Err(e) => {
                warn!("restoring from Kafka failed: {e:#}; retrying");
                shared.store().set_error(format!("restore: {e:#}"));
            }
        }
        tokio::select! {
            _ = token.cancelled() => return Ok(false),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    };
    shared.store().set_restoring(false);
    restored.send_replace(Some(view));
    Ok(true)
}
