//! The calculator's decisions, record by record: parse, check, apply to the ledger (a batch's
//! records ahead of their handling, in runs), or dead-letter; counts kept per member and
//! flushed to the shared state, so a record costs no lock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cashflow_shared::ledger::Position;
use cashflow_shared::{Money, Outcome, RecordKey, Transaction, TransactionRef};
use rdkafka::message::{BorrowedMessage, Message};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::FaultPoints;
use super::catch_up::CatchUpFromKafka;
use super::records::{RUN, parse, position};
use crate::config::Settings;
use crate::pipeline::consume::{CatchUp, DeadLetter, Handler, RateLimitedLog, Verdict};
use crate::state::Shared;
use crate::state::group::MemberWriter;

/// Counts kept by a member between flushes to the shared state, so a record costs no lock.
#[derive(Default)]
struct Batch {
    records: u64,
    /// Produce → applied of the records applied since the last flush (ms), at most [`BATCH`].
    latencies: Vec<i64>,
    /// When the last flush was, and the time of the batch being handled (ms since the epoch).
    last_flush_ms: i64,
    now_ms: i64,
}

const BATCH: usize = 1024;

/// The balance calculator's decisions, record by record.
pub(super) struct Calculator {
    shared: Arc<Shared>,
    faults: Arc<FaultPoints>,
    member: u32,
    /// Its rows of the group (records, latencies).
    group: MemberWriter,
    batch: Batch,
    /// The record being handled was applied (not replayed, not dead-lettered).
    applied_now: bool,
    /// The outcomes of this batch's records that [`prepare`](Handler::prepare) applied, in
    /// order, each with its record's position.
    ahead: VecDeque<(Position, Outcome)>,
    catch_up: Arc<CatchUpFromKafka>,
    mismatch_log: RateLimitedLog,
    malformed_log: RateLimitedLog,
}

impl Calculator {
    pub(super) fn new(
        settings: &Settings,
        brokers: &str,
        shared: &Arc<Shared>,
        token: &CancellationToken,
        group: MemberWriter,
        faults: Arc<FaultPoints>,
    ) -> Calculator {
        Calculator {
            shared: shared.clone(),
            faults,
            member: group.number(),
            group,
            batch: Batch::default(),
            applied_now: false,
            ahead: VecDeque::new(),
            catch_up: Arc::new(CatchUpFromKafka {
                settings: settings.clone(),
                brokers: brokers.to_owned(),
                shared: shared.clone(),
                token: token.clone(),
                stall: AtomicBool::new(false),
            }),
            mismatch_log: RateLimitedLog::new(5),
            malformed_log: RateLimitedLog::new(5),
        }
    }
}

impl Handler for Calculator {
    fn catch_up(&self) -> Option<Arc<dyn CatchUp>> {
        Some(self.catch_up.clone())
    }

    fn handle(&mut self, msg: &BorrowedMessage<'_>) -> Verdict {
        self.applied_now = false;
        let verdict = match self.ahead.pop_front() {
            Some((pos, outcome)) if pos == position(msg) => {
                if matches!(outcome, Outcome::Applied { .. }) {
                    self.applied_now = true;
                    self.shared
                        .flow()
                        .applied(pos.partition, pos.offset, Some(self.member));
                }
                Verdict::Done
            }
            ahead => {
                if ahead.is_some() {
                    // Not the batch `prepare` saw: decide afresh from here on.
                    self.ahead.clear();
                }
                self.decide(msg)
            }
        };
        if !matches!(verdict, Verdict::CatchUp { .. } | Verdict::Fail(_)) {
            self.count(msg);
        }
        verdict
    }

    fn tick(&mut self) {
        self.flush();
    }

    fn batch(&mut self, _records: usize, now_ms: i64) {
        self.batch.now_ms = now_ms;
        if now_ms - self.batch.last_flush_ms >= 100 {
            self.flush();
        }
    }

    /// Applies the batch in runs of [`RUN`] records, one ledger lock a run (not two a record,
    /// which members applying in parallel fought over), as far as records are plainly applied
    /// or re-delivered; from the first that needs more (a dead letter, a catch-up) on,
    /// [`handle`](Handler::handle) decides one by one. Each run is parsed before the lock is
    /// taken, so members parse in parallel.
    fn prepare(&mut self, batch: &[BorrowedMessage<'_>]) {
        self.ahead.clear();
        let shared = self.shared.clone();
        // The test fault points count records one by one.
        if self.faults.armed() {
            return;
        }
        let mut parsed = Vec::with_capacity(RUN.min(batch.len()));
        let mut out = Vec::with_capacity(RUN.min(batch.len()));
        for run in batch.chunks(RUN) {
            parsed.clear();
            out.clear();
            // Splitting a run's parse over rayon's pool, or applying run k on a helper thread
            // while run k + 1 is parsed, was measured no faster (BENCHMARKS.md, parts 3 and 4).
            parsed.extend(run.iter().map(parse));
            shared.ledger().apply_run(
                parsed.iter().map(|(p, t, k)| (*p, t.as_ref(), *k)),
                &mut out,
            );
            for ((pos, tx, _), o) in parsed.iter().zip(&out) {
                if let (
                    Outcome::Applied {
                        balance,
                        producer_agrees: Some(false),
                        ..
                    },
                    Some(tx),
                ) = (o, tx)
                {
                    self.mismatch(tx, *balance);
                }
                self.ahead.push_back((*pos, *o));
            }
            if out.len() < run.len() {
                break;
            }
        }
    }
}

impl Calculator {
    /// Counts a handled record for its member and, if it was applied just now (not a replay
    /// or a dead letter), its produce → applied latency from the record's CreateTime; flushed to
    /// the shared state every [`BATCH`] records or 100 ms, and by the consume loop's tick.
    fn count(&mut self, msg: &BorrowedMessage<'_>) {
        let b = &mut self.batch;
        b.records += 1;
        if self.applied_now
            && let Some(ts) = msg.timestamp().to_millis()
            && b.latencies.len() < BATCH
        {
            b.latencies.push(b.now_ms - ts);
        }
        if b.records as usize >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let b = &mut self.batch;
        b.last_flush_ms = b.now_ms;
        if b.records == 0 {
            return;
        }
        let (n, latencies) = (b.records, std::mem::take(&mut b.latencies));
        b.records = 0;
        self.group.applied(n, &latencies);
    }

    fn mismatch(&mut self, tx: &TransactionRef<'_>, computed: Money) {
        if self.mismatch_log.admit().0 {
            warn!(account = tx.account, id = %tx.transaction_id, producer = ?tx.new_balance.map(|b| b.to_string()),
                  %computed, "producer's new_balance disagrees with the ledger");
        }
    }

    fn decide(&mut self, msg: &BorrowedMessage<'_>) -> Verdict {
        let shared = self.shared.clone();
        let shared = &shared;
        let pos = position(msg);
        // One read of the partition's position decides both "seen" and "a gap" (a lock a
        // record fewer on the hot path).
        let next = shared.ledger().next_offset(pos.partition);
        if pos.offset < next {
            return Verdict::Done; // re-delivered after a restart: already applied or dead-lettered
        }
        if self.faults.fail_now() {
            return Verdict::Fail(anyhow::anyhow!(
                "test fault point: the balance calculator fails once"
            ));
        }
        if self.faults.stall_now() {
            // Test fault point: a catch-up that never ends (until shutdown).
            self.catch_up.stall.store(true, Ordering::Relaxed);
            return Verdict::CatchUp {
                partition: pos.partition,
                until: pos.offset,
            };
        }
        if next < pos.offset {
            // A partition back from another member: its accounts first, then this record.
            return Verdict::CatchUp {
                partition: pos.partition,
                until: pos.offset,
            };
        }
        // Read in place (no allocation on this path); a refused one is read again, owned.
        let payload = msg.payload().unwrap_or_default();
        let (reason, refused) = match TransactionRef::parse(payload) {
            Ok(tx) => {
                match shared
                    .ledger()
                    .apply_keyed(&tx, pos, RecordKey::of(msg.key(), tx.account))
                {
                    Outcome::Applied {
                        balance,
                        producer_agrees: Some(false),
                        ..
                    } => {
                        self.applied_now = true;
                        shared
                            .flow()
                            .applied(pos.partition, pos.offset, Some(self.member));
                        self.mismatch(&tx, balance);
                        return Verdict::Done;
                    }
                    Outcome::Applied { .. } => {
                        self.applied_now = true;
                        shared
                            .flow()
                            .applied(pos.partition, pos.offset, Some(self.member));
                        return Verdict::Done;
                    }
                    Outcome::Replayed => return Verdict::Done,
                    Outcome::DuplicateId => (
                        format!("duplicate transaction_id {:?}", tx.transaction_id),
                        Transaction::parse(payload).ok(),
                    ),
                    Outcome::Overflow => (
                        format!("balance of account {} would overflow", tx.account),
                        Transaction::parse(payload).ok(),
                    ),
                }
            }
            Err(e) => (e.to_string(), None),
        };
        if self.malformed_log.admit().0 {
            warn!(
                partition = pos.partition,
                offset = pos.offset,
                "record sent to the dead-letter topic: {reason}"
            );
        }
        // Decided now, so the records after it are handled while it travels; the partition is
        // not snapshotted until the dead-letter topic has it (or could not take it: counted).
        shared.ledger().dead_letter_pending(pos, refused.as_ref());
        let shared = shared.clone();
        Verdict::DeadLetter(DeadLetter {
            reason,
            on_settled: Box::new(move |written| {
                shared.ledger().confirm_dead_letter(pos.partition, !written);
            }),
        })
    }
}
