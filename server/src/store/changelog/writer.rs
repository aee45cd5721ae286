//! Writes the snapshots: each due partition's state as chunks, then its head.

use super::*;

/// A partition's last snapshot by this writer.
#[derive(Clone, Copy, Debug)]
struct Last {
    /// The source offset it reflects.
    next: i64,
    /// Its acknowledged side's cut (`AckedPartition::next`): every acknowledged record of the
    /// producer below it is in the snapshot. Below `next` when records were applied before
    /// their delivery reports arrived; a restart then reads the topic back to it.
    acked: i64,
}

/// Writes snapshots of the partitions this process owns (see the module docs).
pub struct SnapshotWriter {
    producer: Polled<Futures<Context>>,
    changelog: String,
    topic: String,
    shared: Arc<Shared>,
    settings: StoreSettings,
    /// Per partition: its last snapshot by this writer.
    last: BTreeMap<i32, Last>,
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
            Context::new(&shared, "snapshot writer"),
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
        // When the last time round began (none yet: the first tick is one).
        let mut round: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            let (restoring, recreated) = {
                let s = self.shared.store().health();
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
                self.shared.store().clear_marks();
            }
            // Until the group assigns partitions (after a crash that waits out the dead
            // member's session), the restored ones are this process's: snapshotting them then
            // spares the next restart the tail this one just read.
            let mut owned: Vec<i32> = self.shared.group().assigned().into_iter().collect();
            if owned.is_empty() {
                owned = self.shared.ledger().partition_ids().into_iter().collect();
            }
            // Time rounds are one clock for all partitions, each partition's records its own
            // trigger: the partitions a round finds changed are written at once (at 2 tx/s
            // over six partitions: one batch of requests a round, not six spread over it).
            let by_time = round.is_none_or(|r| r.elapsed() >= self.settings.every);
            let due: Vec<i32> = owned
                .into_iter()
                .filter(|&p| self.due(p, by_time, false))
                .collect();
            if by_time {
                round = Some(Instant::now());
            }
            self.write_all(&due).await;
        }
        let held: Vec<i32> = self
            .shared
            .ledger()
            .partition_ids()
            .into_iter()
            .filter(|&p| self.due(p, true, true))
            .collect();
        let written = held.len();
        self.write_all(&held).await;
        debug!(topic = %self.topic, partitions = written, "final snapshots written");
        self.shared.health().record_stop("final snapshots written");
    }

    /// Whether `partition` is due: it changed since its last snapshot by this writer, and it is
    /// a time round, or enough records came, or cashflow is stopping (`now`).
    fn due(&mut self, partition: i32, by_time: bool, now: bool) -> bool {
        let next = self.shared.ledger().next_offset(partition);
        // A partition not snapshotted by this process yet counts from its newest snapshot: if a
        // restart read a tail, the first round writes it, and the next restart need not read
        // it again.
        let mark = self.shared.store().mark(partition).map_or(0, |m| m.1);
        let Last { next: last, acked } = *self.last.entry(partition).or_insert(Last {
            next: mark,
            acked: mark,
        });
        // At shutdown also when the last snapshot's acknowledged side stopped short of its
        // state (the calculator applied records before their delivery reports came back):
        // every report is in by then, and otherwise the next start reads back to that cut.
        (next > last || (now && acked < last))
            && (now || by_time || next - last >= self.settings.every_records)
    }

    /// Writes a snapshot of each of `partitions`, all at once (each one's chunks, then its
    /// head, in order).
    async fn write_all(&mut self, partitions: &[i32]) {
        let sent = {
            let this = &*self;
            futures_util::future::join_all(partitions.iter().map(|&p| async move {
                let state = this.shared.ledger().partition(p)?;
                if state.unconfirmed() > 0 {
                    return None; // a dead letter is on its way: not a cut yet (next tick)
                }
                let started = Instant::now();
                let result = this.send(p, &state).await;
                Some((p, state, started, result))
            }))
            .await
        };
        for (partition, state, started, result) in sent.into_iter().flatten() {
            self.written(partition, &state, started, result);
        }
    }

    /// Notes the outcome of one partition's snapshot.
    fn written(
        &mut self,
        partition: i32,
        state: &PartitionLedger,
        started: Instant,
        result: Result<i64, KafkaError>,
    ) {
        match result {
            Ok(acked) => {
                self.last.insert(
                    partition,
                    Last {
                        next: state.next_offset(),
                        acked,
                    },
                );
                self.shared.store().snapshot_written();
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
                // Tried again at the next time round (or its records' trigger); the previous
                // snapshot still stands.
                warn!(partition, "snapshot not written: {e}");
                self.shared
                    .store()
                    .snapshot_failed(format!("snapshot of partition {partition}: {e}"));
            }
        }
    }

    /// Sends the snapshot; the acknowledged side's cut it carries (see [`Last::acked`]).
    async fn send(&self, partition: i32, state: &PartitionLedger) -> Result<i64, KafkaError> {
        let id: u64 = rand::random();
        // The other slot than the newest head's, so that head's chunks stay intact.
        let slot = self
            .shared
            .store()
            .mark(partition)
            .map_or(0, |m| 1 - m.0.min(1));
        // The acknowledged side after the ledger's cut (see `Acks::cut`).
        let own_applied = state.own().applied.values().map(|(_, n)| n).sum();
        let acked = self
            .shared
            .acks()
            .cut(partition, state.next_offset(), own_applied);
        let mark = snapshot::ProducerMark::of(state, &acked);
        let chunks = snapshot::encode_chunks(
            state,
            mark.as_ref().map(|m| (m, &acked)),
            id,
            slot,
            self.settings.chunk_accounts,
        );
        let total = chunks.len();
        let first_chunk = match self.settings.abort_after {
            None => {
                // All queued at once and then awaited: the chunks of a partition leave in one
                // request, not one request each (at idle, most of the changelog's requests).
                // Only the head waits for all of them.
                let sent = futures_util::future::join_all(
                    chunks
                        .iter()
                        .map(|(key, value)| self.deliver(partition, key.as_bytes(), value)),
                )
                .await;
                let mut first = i64::MAX;
                for d in sent {
                    // The lowest offset: a queue that was full may have let a later chunk in
                    // first, and readers read from here to the head.
                    first = first.min(d?.1);
                }
                if first == i64::MAX { -1 } else { first }
            }
            Some(k) => {
                // The test fault point: one after another, and abort after the k-th.
                let mut first = -1;
                for (i, (key, value)) in chunks.iter().enumerate() {
                    let (_, offset) = self.deliver(partition, key.as_bytes(), value).await?;
                    if i == 0 {
                        first = offset;
                    }
                    if i + 1 == k as usize && total > k as usize {
                        warn!(
                            partition,
                            written = i + 1,
                            of = total,
                            "test fault point: aborting mid-snapshot"
                        );
                        std::process::abort();
                    }
                }
                first
            }
        };
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
            taken_ms: crate::state::now_ms(),
            producer: mark,
        };
        self.deliver(partition, HEAD_KEY, &snapshot::encode_head(&head))
            .await?;
        self.shared
            .store()
            .set_mark(partition, slot, state.next_offset());
        Ok(acked.next)
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
            .send_waiting(record, Duration::from_secs(5))
            .await
    }
}
