//! Rebuilding the balance calculator's state from Kafka: every partition at start, and a
//! partition that arrives from another member of the group ("catch-up").
//!
//! Each partition starts from the best state at hand: the newest complete snapshot in the
//! changelog ([`state_store`](crate::store::changelog)) or the state this process already holds,
//! whichever reflects more. From a snapshot, the records of the id window just before its offset
//! are read again (ids only: duplicates are decided per partition within that window), then the
//! tail after it is applied, each record once by position. So a restart reads at most the window
//! plus the records since the last snapshot, whatever the topic's history.
//!
//! In the tail, records below the group's committed offset were handled by some member already
//! (applied, or dead-lettered and counted); above it the restore applies transactions up to the
//! first record the live consumer must still dead-letter, which it leaves to the live consumer.
//! The producer's view goes on to the end of the topic, so its next `new_balance` is right.
//!
//! At start the restore also recovers the invariant's two sides ([`cashflow_shared::invariant`]):
//! the producer id the newest snapshot names becomes this server's again, each partition's
//! applied side comes with its state, and its acknowledged side goes on from the snapshot's
//! `acked_next`, counting that producer's records found in the log after it (a record in the
//! log was acknowledged, or would have been had the last run not stopped first).
//!
//! A partition is finished at its end offset as the consumer reaches it (partition EOF), not
//! when a record at `end - 1` is seen: transaction markers and aborted records occupy offsets
//! that are never delivered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cashflow_shared::api::RestoreProgress;
use cashflow_shared::invariant::AckedPartition;
use cashflow_shared::ledger::{AccountState, PartitionLedger};
use cashflow_shared::{AccountId, Ledger, Money, Outcome, Transaction};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Settings;
use crate::kafka::reader::{ReadError, Reader};
use crate::state::Shared;
use cashflow_shared::generator::MAX_ACCOUNTS;

mod catch_up;
mod part;
mod restorer;

pub use catch_up::catch_up;

use restorer::restorer;

/// Makes a restore's progress visible (`/health`, the page).
fn publish(shared: &Shared, p: &mut RestoreProgress, started: Instant, done: bool) {
    p.done = done;
    p.ms = started.elapsed().as_millis() as u64;
    p.percent = if p.source_total == 0 {
        100.0
    } else {
        (p.source_records as f64 * 100.0 / p.source_total as f64).min(100.0)
    };
    shared.store().restore_progress(p.clone());
}

/// Commits, for the calculator's group, each partition's position after the restore where it
/// is past the group's commit: else the consumer starts at the old commit and skips, one by one,
/// every record the restore just applied (the whole topic, on a fresh group). Everything below
/// the position was handled: applied by the restore, or dead-lettered before the old commit
/// (the restore stops at the first record still to dead-letter). Kafka takes a commit from
/// outside only while the group has no members (another instance, or the last run's member
/// until its session ends); then the consumer skips as before.
fn commit_restored(consumer: &Reader, topic: &str, partitions: &[i32], shared: &Shared) {
    use rdkafka::consumer::CommitMode;
    // The group's commit now, not at the restore's start: a member that came and went meanwhile
    // may have committed further, and this must not move it back.
    let mut asked = TopicPartitionList::new();
    for p in partitions {
        asked.add_partition(topic, *p);
    }
    let now = match consumer.committed_offsets(asked, Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            info!(%e, "restored positions not committed: the group's commit is unknown");
            return;
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let commit = match now.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        };
        let next = shared.ledger().next_offset(*p);
        if next > commit
            && let Err(e) = tpl.add_partition_offset(topic, *p, Offset::Offset(next))
        {
            warn!(partition = p, %e, "cannot commit the restored position");
        }
    }
    if tpl.count() == 0 {
        return;
    }
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => info!(partitions = tpl.count(), "committed the restored positions"),
        Err(e) => {
            info!(%e, "restored positions not committed (the group has members): the consumer skips what the restore applied")
        }
    }
}

/// Restores every partition of the topic before anything is consumed or produced. Returns the
/// producer's view of every account, or `None` if cancelled.
pub fn restore_all(
    settings: &Settings,
    brokers: &str,
    shared: &Shared,
    token: &CancellationToken,
) -> anyhow::Result<Option<BTreeMap<AccountId, AccountState>>> {
    let mut r = restorer(settings, brokers, shared, token)?;
    let timeout = Duration::from_secs(10);
    let meta = r.consumer.fetch_metadata(Some(&settings.topic), timeout)?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition(&settings.topic, *p);
    }
    let committed = r.consumer.committed_offsets(wanted, timeout)?;
    let wanted: BTreeMap<i32, (Option<i64>, i64)> = partitions
        .iter()
        .map(|p| {
            let commit = match committed
                .find_partition(&settings.topic, *p)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            };
            (*p, (None, commit))
        })
        .collect();
    let mut parts = match r.plan(&wanted) {
        Ok(parts) => parts,
        Err(ReadError::Cancelled) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match r.read(&mut parts) {
        Ok(()) => {}
        Err(ReadError::Cancelled) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut view = Ledger::with_id_window(
        shared.ledger().opening_balance(),
        shared.ledger().window_width(),
    );
    let mut states = Vec::with_capacity(parts.len());
    for (p, part) in parts {
        if let Some(v) = part.view {
            view.install(p, v);
        }
        if let Some((_, mut acked)) = part.acked {
            // Every one of the producer's records below the end was just counted: the next
            // restart need not read them again.
            acked.next = acked.next.max(part.end);
            shared.acks().restore(p, acked);
        }
        states.push((p, part.state));
    }
    shared.ledger().install(states);
    commit_restored(&r.consumer, &settings.topic, &partitions, shared);
    r.report(true);
    crate::store::changelog::log_restore(&r.progress);
    // The view applied the tail for every account; the producer keeps the generator's.
    Ok(Some(
        view.accounts()
            .range(1..=MAX_ACCOUNTS)
            .map(|(a, s)| (*a, *s))
            .collect(),
    ))
}
