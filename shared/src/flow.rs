//! The record flow the page animates: real records, each with the partition and offset Kafka
//! gave it (from the producer's delivery report) and, once applied, the calculator member that
//! applied it. At classroom rates every record is followed; above [`EVERY_RECORD_UP_TO`] a
//! bounded sample ([`SAMPLES_PER_SECOND`] a second), the rest being the lanes' throughput.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::transaction::AccountId;

/// Up to this many records a second, every one is drawn.
pub const EVERY_RECORD_UP_TO: u32 = 5;
/// Above it, at most this many a second.
pub const SAMPLES_PER_SECOND: u32 = 20;
/// Records followed at once (the oldest are forgotten first).
pub const MAX_DOTS: usize = 64;

/// One real record on its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowDot {
    pub partition: i32,
    pub offset: i64,
    pub account: AccountId,
    /// Credit positive, debit negative (minor units).
    pub delta: i64,
    /// When Kafka acknowledged it (ms since the epoch).
    pub acked_ms: i64,
    /// When the calculator applied it, and which member.
    pub applied_ms: Option<i64>,
    pub member: Option<u32>,
}

/// Chooses the records to follow and tracks them until applied; pure (times are passed in).
#[derive(Debug, Default)]
pub struct Flow {
    dots: VecDeque<FlowDot>,
    /// The second being counted and the records admitted / seen in it.
    second: i64,
    admitted: u32,
    seen: u32,
    /// The 50 ms slot of the last record admitted above the classroom rate.
    last_slot: i64,
    /// Bumped on every change, so a reader sends only what is new.
    version: u64,
    /// Per dot, the version it last changed at.
    changed: VecDeque<u64>,
}

impl Flow {
    /// A record Kafka acknowledged: followed if the sampling admits it. `applied` says whether
    /// the calculator already applied it (a consumer can be faster than the delivery report).
    pub fn acked(&mut self, dot: FlowDot, applied: Option<(i64, Option<u32>)>) -> bool {
        let sec = dot.acked_ms.div_euclid(1000);
        if sec != self.second {
            self.second = sec;
            self.admitted = 0;
            self.seen = 0;
        }
        self.seen += 1;
        // Every record while the rate is classroom-slow; then at most SAMPLES_PER_SECOND,
        // one per 50 ms slot, so the sample spreads over the second.
        let slot = dot.acked_ms.div_euclid(1000 / SAMPLES_PER_SECOND as i64);
        let admit = if self.seen <= EVERY_RECORD_UP_TO {
            true
        } else {
            self.admitted < SAMPLES_PER_SECOND && slot != self.last_slot
        };
        if !admit {
            return false;
        }
        self.admitted += 1;
        self.last_slot = slot;
        let mut dot = dot;
        if let Some((t, m)) = applied {
            dot.applied_ms = Some(t);
            dot.member = m;
        }
        if self.dots.len() == MAX_DOTS {
            self.dots.pop_front();
            self.changed.pop_front();
        }
        self.version += 1;
        self.dots.push_back(dot);
        self.changed.push_back(self.version);
        true
    }

    /// Whether any followed record waits to be applied on `partition` at `offset` or above
    /// (cheap: the caller checks before taking the record's details).
    pub fn waiting(&self, partition: i32, offset: i64) -> bool {
        self.dots
            .iter()
            .any(|d| d.applied_ms.is_none() && d.partition == partition && d.offset == offset)
    }

    /// Followed records not applied yet.
    pub fn waiting_count(&self) -> usize {
        self.dots.iter().filter(|d| d.applied_ms.is_none()).count()
    }

    /// The calculator applied the record at (`partition`, `offset`).
    /// (`member` is `None` when the record was applied before it was followed and its
    /// partition has no owner here any more.)
    pub fn applied(&mut self, partition: i32, offset: i64, member: Option<u32>, now_ms: i64) {
        if let Some(i) = self
            .dots
            .iter()
            .position(|d| d.partition == partition && d.offset == offset && d.applied_ms.is_none())
        {
            self.version += 1;
            self.dots[i].applied_ms = Some(now_ms);
            self.dots[i].member = member;
            self.changed[i] = self.version;
        }
    }

    /// Dots changed after version `after`, and the newest version.
    pub fn since(&self, after: u64) -> (Vec<FlowDot>, u64) {
        let dots = self
            .dots
            .iter()
            .zip(&self.changed)
            .filter(|(_, v)| **v > after)
            .map(|(d, _)| *d)
            .collect();
        (dots, self.version)
    }

    /// Every dot followed now (for a new viewer's snapshot).
    pub fn all(&self) -> Vec<FlowDot> {
        self.dots.iter().copied().collect()
    }

    /// Forgets everything (the topic was re-created).
    pub fn clear(&mut self) {
        self.dots.clear();
        self.changed.clear();
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(offset: i64, acked_ms: i64) -> FlowDot {
        FlowDot {
            partition: (offset % 6) as i32,
            offset,
            account: 1,
            delta: 100,
            acked_ms,
            applied_ms: None,
            member: None,
        }
    }

    #[test]
    fn every_record_at_classroom_rates_a_bounded_sample_above() {
        let mut f = Flow::default();
        // 4 records a second for 3 seconds: all followed.
        let mut o = 0;
        for s in 0..3 {
            for i in 0..4 {
                assert!(f.acked(dot(o, s * 1000 + i * 250), None));
                o += 1;
            }
        }
        // 10 000 in one second: at most 5 + SAMPLES_PER_SECOND.
        let mut admitted = 0;
        for i in 0..10_000 {
            if f.acked(dot(o, 5_000 + i / 10), None) {
                admitted += 1;
            }
            o += 1;
        }
        assert!(admitted <= SAMPLES_PER_SECOND as usize, "{admitted}");
        assert!(admitted >= SAMPLES_PER_SECOND as usize - 1, "{admitted}");
        // Spread over the second, not all from its start.
        let late = f.all().iter().filter(|d| d.acked_ms >= 5_500).count();
        assert!(late >= 5, "{late} of the sample from the second half");
        assert!(f.all().len() <= MAX_DOTS);
    }

    #[test]
    fn applied_dots_are_sent_again_once() {
        let mut f = Flow::default();
        f.acked(dot(3, 0), None);
        f.acked(dot(4, 0), Some((5, Some(2))));
        let (new, v) = f.since(0);
        assert_eq!(new.len(), 2);
        assert_eq!(new[1].member, Some(2), "applied before its delivery report");
        assert!(f.waiting(3, 3));
        f.applied(3, 3, Some(1), 10);
        assert!(!f.waiting(3, 3));
        let (changed, v2) = f.since(v);
        assert_eq!(changed.len(), 1);
        assert_eq!(
            (changed[0].applied_ms, changed[0].member),
            (Some(10), Some(1))
        );
        assert!(f.since(v2).0.is_empty());
        // Applying an unknown record changes nothing.
        f.applied(5, 99, Some(1), 11);
        assert!(f.since(v2).0.is_empty());
    }
}
