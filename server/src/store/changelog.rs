//! The balance calculator's state store: snapshots of each partition's ledger in a changelog
//! topic, `<topic>.balances`, so a restart reads *state plus a short tail*, never the history.
//!
//! Partition `p` of the topic is snapshotted to partition `p` of the changelog (the format is
//! in [`cashflow_shared::snapshot`]): chunks of accounts, then a head that says which offset of
//! the topic the snapshot reflects. A snapshot is taken every `--snapshot-records` records of a
//! partition, and of every partition that changed at each round of `--snapshot-seconds` (one
//! clock for all, so their writes go out together), and once more at shutdown. It is a consistent cut, like a Flink checkpoint: the state and the offset it
//! reflects are copied under one read of the ledger, so "newest complete snapshot + the records
//! after its offset, each applied once by position" is exact, with no transactions (it works
//! on any broker). A crash while writing one leaves chunks without a head, which
//! readers ignore.
//!
//! The changelog is compacted (keys: `head`, and chunk keys alternating between two slots), so
//! its size follows the number of accounts, not the history.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cashflow_shared::ledger::PartitionLedger;
use cashflow_shared::snapshot::{self, Chunk, HEAD_KEY, Head, Record, SnapshotError};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Settings, StoreSettings};
use crate::kafka::polled::{Futures, Polled};
use crate::kafka::reader::{ReadError, Reader, read_ranges};
use crate::kafka::topics::changelog_topic;
use crate::kafka::{Context, reliable_producer};
use crate::state::Shared;

mod writer;

pub use writer::SnapshotWriter;

/// The newest complete snapshot of each of `partitions` (`None`: there is none, or it cannot
/// be read, with a warning: that partition is replayed from the topic), and the changelog
/// records read to find them. All partitions are read at once.
pub fn load_latest(
    consumer: &Reader,
    topic: &str,
    partitions: &[i32],
    window_width: i64,
    token: &CancellationToken,
) -> Result<(Loaded, u64), ReadError> {
    let mut read = 0u64;
    let mut loaded = Loaded::new();
    let mut marks = BTreeMap::new();
    for p in partitions {
        let (lo, hi) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(10))?;
        if hi > lo {
            marks.insert(*p, (lo, hi));
        } else {
            loaded.insert(*p, None);
        }
    }
    // The newest head is the last record unless a snapshot was torn after it: look back a few
    // records, then further.
    let mut back = 8i64;
    let mut heads: BTreeMap<i32, Vec<(i64, Head)>> = BTreeMap::new();
    while !marks.is_empty() {
        let ranges: BTreeMap<i32, (i64, i64)> = marks
            .iter()
            .map(|(p, (lo, hi))| (*p, (hi.saturating_sub(back).max(*lo), *hi)))
            .collect();
        // A newest head in a format this build does not know (a later cashflow wrote it) is not
        // guessed at, nor passed over for an older one: that partition is replayed.
        let mut unknown: BTreeMap<i32, (i64, SnapshotError)> = BTreeMap::new();
        read_ranges(consumer, topic, &ranges, token, |m| {
            read += 1;
            if m.key() != Some(HEAD_KEY) {
                return;
            }
            match snapshot::decode(HEAD_KEY, m.payload().unwrap_or_default()) {
                Ok(Record::Head(h)) => heads
                    .entry(m.partition())
                    .or_default()
                    .push((m.offset(), h)),
                Ok(Record::Chunk(_)) => {}
                Err(e @ SnapshotError::UnknownFormat(_)) => {
                    unknown.insert(m.partition(), (m.offset(), e));
                }
                Err(e) => warn!(
                    partition = m.partition(),
                    offset = m.offset(),
                    "unreadable snapshot head: {e}"
                ),
            }
        })?;
        for (p, (from, _)) in ranges {
            let newest_known = heads.get(&p).and_then(|h| h.last()).map(|(o, _)| *o);
            match unknown.remove(&p) {
                Some((at, e)) if newest_known.is_none_or(|k| k < at) => {
                    warn!(partition = p, "{e}; replaying the topic instead");
                    heads.remove(&p);
                    loaded.insert(p, None);
                    marks.remove(&p);
                }
                _ if heads.contains_key(&p) || from == marks[&p].0 => {
                    if !heads.contains_key(&p) {
                        loaded.insert(p, None);
                    }
                    marks.remove(&p);
                }
                _ => {}
            }
        }
        back = back.saturating_mul(8);
    }
    // Each partition's newest head first; an incomplete one (its chunks overwritten by a torn
    // snapshot of another writer) gives way to the one before it.
    while !heads.is_empty() {
        let mut ranges = BTreeMap::new();
        let mut trying = BTreeMap::new();
        for (p, hs) in heads.iter_mut() {
            if let Some((at, head)) = hs.pop() {
                ranges.insert(
                    *p,
                    (
                        head.first_chunk.max(0),
                        if head.chunks > 0 { at } else { 0 },
                    ),
                );
                trying.insert(*p, head);
            }
        }
        let mut chunks: BTreeMap<i32, Vec<Chunk>> = BTreeMap::new();
        read_ranges(consumer, topic, &ranges, token, |m| {
            read += 1;
            let (k, v) = (m.key().unwrap_or_default(), m.payload().unwrap_or_default());
            if let Ok(Record::Chunk(c)) = snapshot::decode(k, v)
                && trying.get(&m.partition()).is_some_and(|h| h.id == c.id)
            {
                chunks.entry(m.partition()).or_default().push(c);
            }
        })?;
        for (p, head) in trying {
            let found = chunks.remove(&p).unwrap_or_default();
            match snapshot::assemble(&head, found, window_width) {
                Ok(state) => {
                    loaded.insert(p, Some((head, state)));
                    heads.remove(&p);
                }
                Err(e) => {
                    warn!(partition = p, "{e}; trying an older snapshot");
                    if heads.get(&p).is_none_or(Vec::is_empty) {
                        warn!(
                            partition = p,
                            "no complete snapshot found; replaying the topic instead"
                        );
                        loaded.insert(p, None);
                        heads.remove(&p);
                    }
                }
            }
        }
    }
    Ok((loaded, read))
}

/// Per partition, its newest complete snapshot, if any.
pub type Loaded = BTreeMap<i32, Option<(Head, snapshot::Assembled)>>;

/// Logs once, at start, what the store found.
pub fn log_restore(p: &cashflow_shared::api::RestoreProgress) {
    info!(
        partitions = p.partitions,
        from_snapshot = p.from_snapshot,
        changelog_records = p.changelog_records,
        source_records = p.source_records,
        ms = p.ms,
        "state restored"
    );
}
