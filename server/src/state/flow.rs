//! The real records the page animates (a sample of this producer's, see
//! [`cashflow_shared::flow`]): acknowledged, then applied by a member of the calculator.
//!
//! Written by the producer's delivery reports and the calculator's members; the one rule
//! between them is in [`super::Shared::flow_acked`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cashflow_shared::flow::{Flow, FlowDot};

use super::lock;

#[derive(Default)]
pub struct FlowBoard {
    flow: Mutex<Flow>,
    /// How many followed records wait to be applied, so the calculator takes the lock only
    /// while some do.
    waiting: AtomicU64,
}

impl FlowBoard {
    /// Follows `dot` if the sampling admits it, as waiting to be applied; `false` if not.
    /// The count of waiting records is raised first (see [`super::Shared::flow_acked`]).
    pub(super) fn acked(&self, dot: FlowDot) -> bool {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut f = lock(&self.flow);
        let admitted = f.acked(dot, None);
        self.waiting
            .store(f.waiting_count() as u64, Ordering::SeqCst);
        admitted
    }

    /// The record at (`partition`, `offset`) was applied by `member`, if it is followed and
    /// waits.
    pub fn applied(&self, partition: i32, offset: i64, member: Option<u32>) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut f = lock(&self.flow);
        if f.waiting(partition, offset) {
            f.applied(partition, offset, member, super::now_ms());
            self.waiting
                .store(f.waiting_count() as u64, Ordering::SeqCst);
        }
    }

    /// Followed records changed after `after` (a version), and the newest version.
    pub fn since(&self, after: u64) -> (Vec<FlowDot>, u64) {
        lock(&self.flow).since(after)
    }

    pub fn all(&self) -> Vec<FlowDot> {
        lock(&self.flow).all()
    }

    /// Forgets everything (the topic was re-created).
    pub fn clear(&self) {
        let mut f = lock(&self.flow);
        f.clear();
        self.waiting.store(0, Ordering::SeqCst);
    }
}
