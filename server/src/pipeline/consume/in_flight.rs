//! The records handled while dead letters travel, in consumption order: offsets are stored
//! strictly in that order, so a committed offset never passes an unacknowledged dead letter.

use std::collections::VecDeque;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use tracing::warn;

use crate::pipeline::dead_letters::{DeadLetters, Letter};

/// Dead letters in flight beyond which the loop waits for the oldest.
const MAX_LETTERS: usize = 10_000;
/// Bytes of dead letters in flight beyond which the loop waits for the oldest.
const MAX_LETTER_BYTES: usize = 32 << 20;

pub(super) enum Entry {
    /// A handled record whose offset waits behind a dead letter.
    Done(i32, i64),
    Letter(Box<Letter>, Box<dyn FnOnce(bool) + Send>),
}

/// Handled records in consumption order, while dead letters are in flight: offsets are stored
/// strictly in that order, so a committed offset never passes an unacknowledged dead letter.
#[derive(Default)]
pub(super) struct InFlight {
    pub(super) queue: VecDeque<Entry>,
    pub(super) letters: usize,
    bytes: usize,
    /// Letters at the front of the queue of a topic since deleted and created again: they
    /// settle, but their offsets (the old topic's) are not stored.
    unstored: usize,
}

impl InFlight {
    pub(super) fn full(&self) -> bool {
        self.letters > MAX_LETTERS || self.bytes > MAX_LETTER_BYTES
    }

    /// The topic was deleted and created again: the offsets held back are the old topic's and
    /// are never stored (the letters in flight still settle).
    pub(super) fn forget_offsets(&mut self) {
        self.queue.retain(|e| matches!(e, Entry::Letter(..)));
        self.unstored = self.queue.len();
    }

    pub(super) fn push(&mut self, e: Entry) {
        if let Entry::Letter(l, _) = &e {
            self.letters += 1;
            self.bytes += l.bytes();
        }
        self.queue.push_back(e);
    }

    /// Waits for the oldest dead letter, then stores the offsets it held back. `None` if the
    /// dead-letter producer is gone. Cancel-safe (the letter stays queued until settled).
    pub(super) async fn settle_front<C: ConsumerContext>(
        &mut self,
        dead_letters: &DeadLetters,
        consumer: &StreamConsumer<C>,
        topic: &str,
    ) -> Option<()> {
        if let Some(Entry::Letter(l, _)) = self.queue.front_mut() {
            let written = dead_letters.settle(l).await?;
            if let Some(Entry::Letter(l, on_settled)) = self.queue.pop_front() {
                self.letters -= 1;
                self.bytes -= l.bytes();
                on_settled(written);
                if self.unstored > 0 {
                    self.unstored -= 1;
                } else {
                    store(consumer, topic, l.partition, l.offset);
                }
            }
        }
        while let Some(Entry::Done(p, o)) = self.queue.front() {
            store(consumer, topic, *p, *o);
            self.queue.pop_front();
        }
        Some(())
    }
}

/// Offsets of handled records not stored yet: the highest per partition, stored together in
/// one call (a call per record costs a topic-partition list and a topic handle each).
#[derive(Default)]
pub(super) struct Stored {
    pending: Vec<(i32, i64)>,
}

impl Stored {
    /// The record at `offset` of `partition` was handled (in consumption order).
    /// Drops the offsets not stored yet (the old topic's, see [`InFlight::forget_offsets`]).
    pub(super) fn forget(&mut self) {
        self.pending.clear();
    }

    pub(super) fn note(&mut self, partition: i32, offset: i64) {
        match self.pending.iter_mut().find(|(p, _)| *p == partition) {
            Some(e) => e.1 = e.1.max(offset),
            None => self.pending.push((partition, offset)),
        }
    }

    pub(super) fn flush<C: ConsumerContext>(&mut self, consumer: &StreamConsumer<C>, topic: &str) {
        if self.pending.is_empty() {
            return;
        }
        let mut tpl = rdkafka::TopicPartitionList::with_capacity(self.pending.len());
        for (p, o) in self.pending.drain(..) {
            // The next record to read, as `store_offset` stores it.
            if let Err(e) = tpl.add_partition_offset(topic, p, rdkafka::Offset::Offset(o + 1)) {
                warn!(%e, partition = p, offset = o, "could not store an offset");
            }
        }
        if let Err(e) = consumer.store_offsets(&tpl) {
            warn!(%e, "could not store offsets");
        }
    }
}

pub(super) fn store<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    partition: i32,
    offset: i64,
) {
    if let Err(e) = consumer.store_offset(topic, partition, offset) {
        warn!(%e, partition, offset, "could not store an offset");
    }
}
