//! The balance calculator's state store: snapshots of each partition's ledger in a changelog
//! topic, `<topic>.balances`, so a restart reads *state plus a short tail*, never the history.
//!
//! Partition `p` of the topic is snapshotted to partition `p` of the changelog (the format is
//! in [`cashflow_shared::snapshot`]): chunks of accounts, then a head that says which offset of
//! the topic the snapshot reflects. A snapshot is taken every `--snapshot-records` records of a
//! partition or `--snapshot-seconds` after a change, whichever comes first, and once more at
//! shutdown. It is a consistent cut, like a Flink checkpoint: the state and the offset it
//! reflects are copied under one read of the ledger, so "newest complete snapshot + the records
//! after its offset, each applied once by position" is exact, with no transactions (the
//! embedded broker has none). A crash while writing one leaves chunks without a head, which
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
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Settings, StoreSettings};
use crate::kafka::{Context, reliable_producer};
use crate::reader::{ReadError, Reader, read_ranges};
use crate::state::Shared;
use crate::topics::changelog_topic;

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
pub type Loaded = BTreeMap<i32, Option<(Head, PartitionLedger)>>;

/// Writes snapshots of the partitions this process owns (see the module docs).
pub struct SnapshotWriter {
    producer: FutureProducer<Context>,
    changelog: String,
    topic: String,
    shared: Arc<Shared>,
    settings: StoreSettings,
    /// Per partition: the offset of the last snapshot written and when.
    last: BTreeMap<i32, (i64, Instant)>,
    /// The topic's re-creations seen (`StoreHealth::recreated`): each makes `last` and the
    /// snapshot marks those of a topic that is gone.
    recreated: u32,
}

impl SnapshotWriter {
    pub fn new(settings: &Settings, brokers: &str, shared: Arc<Shared>) -> anyhow::Result<Self> {
        // A snapshot that cannot be written within this is reported and retried later.
        let producer = reliable_producer(
            brokers,
            &settings.kafka,
            Duration::from_secs(30),
            Context {
                shared: shared.clone(),
                role: "snapshot writer",
            },
        )?;
        Ok(SnapshotWriter {
            producer,
            changelog: changelog_topic(&settings.topic),
            topic: settings.topic.clone(),
            shared,
            settings: settings.store.clone(),
            last: BTreeMap::new(),
            recreated: 0,
        })
    }

    /// Snapshots due partitions of those this process owns (or, before the group assigned it
    /// any, those it restored) until `token` is cancelled, then
    /// every partition held that changed since its last snapshot, so the next start reads
    /// almost no tail. (At shutdown the calculator may already have given its partitions back,
    /// so ownership is not asked again; a snapshot of a partition another member took since is
    /// older than that member's, and still a consistent one.)
    pub async fn run(mut self, token: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            let (restoring, recreated) = {
                let s = self.shared.store();
                (s.restoring, s.recreated)
            };
            if restoring {
                continue;
            }
            if recreated != self.recreated {
                // Checked between writes, so a write of the old topic's state that was under
                // way when it was found re-created leaves no mark behind either.
                self.recreated = recreated;
                self.last.clear();
                self.shared.clear_snapshot_marks();
            }
            // Until the group assigns partitions (after a crash that waits out the dead
            // member's session), the restored ones are this process's: snapshotting them then
            // spares the next restart the tail this one just read.
            let mut owned = self.shared.assigned();
            if owned.is_empty() {
                owned = self.shared.ledger().partition_ids().into_iter().collect();
            }
            for p in owned {
                if self.due(p, false) {
                    self.write(p).await;
                }
            }
        }
        let held = self.shared.ledger().partition_ids();
        let mut written = 0;
        for p in held {
            if self.due(p, true) {
                self.write(p).await;
                written += 1;
            }
        }
        debug!(topic = %self.topic, partitions = written, "final snapshots written");
        self.shared.record_stop("final snapshots written");
    }

    fn due(&mut self, partition: i32, now: bool) -> bool {
        let next = self.shared.ledger().next_offset(partition);
        let mark = self.shared.snapshot_mark(partition).map_or(0, |m| m.1);
        // A partition not snapshotted by this process yet is due at once if it moved past its
        // newest snapshot (a restart read a tail): the next restart then need not read it again.
        let long_ago = Instant::now()
            .checked_sub(self.settings.every)
            .unwrap_or_else(Instant::now);
        let (last, at) = *self.last.entry(partition).or_insert((mark, long_ago));
        next > last
            && (now
                || next - last >= self.settings.every_records
                || at.elapsed() >= self.settings.every)
    }

    /// Writes one snapshot of `partition`: chunks, then (all acknowledged) the head.
    async fn write(&mut self, partition: i32) {
        let Some(state) = self.shared.ledger().partition(partition) else {
            return;
        };
        if state.unconfirmed() > 0 {
            return; // a dead letter is on its way: not a cut yet (tried again next tick)
        }
        let started = Instant::now();
        match self.send(partition, &state).await {
            Ok(()) => {
                self.last
                    .insert(partition, (state.next_offset(), Instant::now()));
                self.shared.with_store(|s| s.snapshots_written += 1);
                debug!(
                    topic = %self.topic,
                    partition,
                    next_offset = state.next_offset(),
                    accounts = state.accounts().len(),
                    ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
            }
            Err(e) => {
                // Retried at the next tick; the previous snapshot still stands.
                warn!(partition, "snapshot not written: {e}");
                self.shared.with_store(|s| {
                    s.snapshot_failures += 1;
                    s.last_error = Some(format!("snapshot of partition {partition}: {e}"));
                });
                self.last.insert(
                    partition,
                    (self.last.get(&partition).map_or(0, |l| l.0), Instant::now()),
                );
            }
        }
    }

    async fn send(&self, partition: i32, state: &PartitionLedger) -> Result<(), KafkaError> {
        let id: u64 = rand::random();
        // The other slot than the newest head's, so that head's chunks stay intact.
        let slot = self
            .shared
            .snapshot_mark(partition)
            .map_or(0, |m| 1 - m.0.min(1));
        let chunks = snapshot::encode_chunks(state, id, slot, self.settings.chunk_accounts);
        let total = chunks.len();
        let mut first_chunk = -1;
        // Sent one after another: the idempotent producer keeps them in order anyway, and a
        // snapshot is small next to the records it stands for.
        for (i, (key, value)) in chunks.iter().enumerate() {
            let (_, offset) = self.deliver(partition, key.as_bytes(), value).await?;
            if i == 0 {
                first_chunk = offset;
            }
            if let Some(k) = self.settings.abort_after
                && i + 1 == k as usize
                && total > k as usize
            {
                warn!(
                    partition,
                    written = i + 1,
                    of = total,
                    "test fault point: aborting mid-snapshot"
                );
                std::process::abort();
            }
        }
        let head = Head {
            format: snapshot::FORMAT,
            id,
            topic: self.topic.clone(),
            partition,
            next_offset: state.next_offset(),
            stats: state.stats(),
            accounts: state.accounts().len() as u64,
            chunks: total as u32,
            first_chunk,
            slot,
            taken_ms: crate::producer::now_ms(),
        };
        self.deliver(partition, HEAD_KEY, &snapshot::encode_head(&head))
            .await?;
        self.shared
            .set_snapshot_mark(partition, slot, state.next_offset());
        Ok(())
    }

    async fn deliver(
        &self,
        partition: i32,
        key: &[u8],
        value: &[u8],
    ) -> Result<(i32, i64), KafkaError> {
        let record = FutureRecord::to(&self.changelog)
            .partition(partition)
            .key(key)
            .payload(value);
        self.producer
            .send(record, Timeout::After(Duration::from_secs(5)))
            .await
            .map(|d| (d.partition, d.offset))
            .map_err(|(e, _)| e)
    }
}

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
