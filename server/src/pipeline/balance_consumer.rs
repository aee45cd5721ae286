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

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cashflow_shared::ledger::Position;
use cashflow_shared::{Money, Outcome, RecordKey, Transaction, TransactionRef};
use rdkafka::message::{BorrowedMessage, Message};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::Settings;
use crate::pipeline::consume::{
    CatchUp, DeadLetter, Handler, RateLimitedLog, Role, Verdict, consume,
};
use crate::pipeline::dead_letters::DeadLetters;
use crate::state::Shared;
use crate::store::restore::{catch_up, restore_all};

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
    member: u32,
    restore_done: watch::Sender<bool>,
    faults: Arc<FaultPoints>,
) -> anyhow::Result<()> {
    if !crate::kafka::topics::until_ready(&mut ready, &token).await {
        return Ok(());
    }
    if member == 1 && !*restore_done.borrow() {
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
    let calculator = Calculator {
        shared: shared.clone(),
        faults,
        member,
        batch: Batch::default(),
        applied_now: false,
        ahead: VecDeque::new(),
        catch_up: Arc::new(CatchUpFromKafka {
            settings: settings.clone(),
            brokers: brokers.clone(),
            shared: shared.clone(),
            token: token.clone(),
            stall: AtomicBool::new(false),
        }),
        mismatch_log: RateLimitedLog::new(5),
        malformed_log: RateLimitedLog::new(5),
    };
    let role = Role {
        group_suffix: "balance",
        name: crate::kafka::BALANCE_ROLE,
        member,
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
struct Calculator {
    shared: Arc<Shared>,
    faults: Arc<FaultPoints>,
    member: u32,
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

/// Reads the records a partition's previous owner handled (see [`catch_up`]).
struct CatchUpFromKafka {
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    token: CancellationToken,
    /// Test fault point: the next catch-up never ends (until shutdown).
    stall: AtomicBool,
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

/// A record read for [`Ledger::apply_run`](cashflow_shared::Ledger::apply_run): its position,
/// the transaction if it is a valid one, and what its key was.
type Parsed<'a> = (Position, Option<TransactionRef<'a>>, RecordKey);

fn parse<'a>(m: &'a BorrowedMessage<'_>) -> Parsed<'a> {
    let tx = TransactionRef::parse(m.payload().unwrap_or_default()).ok();
    let key = tx
        .as_ref()
        .map_or(RecordKey::Other, |t| RecordKey::of(m.key(), t.account));
    (position(m), tx, key)
}

/// Records parsed and applied under one ledger lock (see [`Calculator::prepare`]): a few dozen
/// make the lock's cost vanish, and at most this many are parsed in vain when a run stops
/// early (a flood of invalid records is parsed about twice, not a whole batch over).
const RUN: usize = 64;

fn position(msg: &BorrowedMessage<'_>) -> Position {
    Position {
        partition: msg.partition(),
        offset: msg.offset(),
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
        self.shared.group().applied(self.member, n, &latencies);
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
