//! The balance calculator's group as this server runs it: members, who owns which partition,
//! the rebalances, whether the presenter paused it, and produce → applied latency.
//!
//! Written only by the calculator group ([`crate::pipeline::calculator_group`]: members
//! joining and leaving, pausing), which holds the [`GroupWriter`], and through it by each of its
//! members for that member alone ([`MemberWriter`]: its rebalance callbacks in [`crate::kafka`],
//! its batches in [`crate::pipeline::balance_consumer`]). [`GroupBoard`] only reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use cashflow_shared::group::{Group, GroupStatus};
use cashflow_shared::latency::{LatencySummary, LatencyTotals, LatencyWindow};
use tokio::sync::watch;

use super::{lock, now_ms};

/// The group, read.
pub struct GroupBoard(Arc<Inner>);

struct Inner {
    group: Mutex<Group>,
    /// The presenter stopped the calculator's fetching (its members stay in the group).
    paused: watch::Sender<bool>,
    /// Produce → applied, over the last seconds.
    latency: Mutex<LatencyWindow>,
}

impl GroupBoard {
    pub(super) fn new(group: &str) -> (GroupBoard, GroupWriter) {
        let inner = Arc::new(Inner {
            group: Mutex::new(Group::new(group)),
            paused: watch::Sender::new(false),
            latency: Mutex::new(LatencyWindow::default()),
        });
        (GroupBoard(inner.clone()), GroupWriter(inner))
    }

    /// The group as the page shows it.
    pub fn status(&self) -> GroupStatus {
        let mut g = lock(&self.0.group);
        g.tick(now_ms());
        g.status()
    }

    /// Each partition some member of this server's calculator owns now, and its member.
    pub fn owners(&self) -> BTreeMap<i32, u32> {
        lock(&self.0.group).owners()
    }

    /// Partitions some member of this server's calculator owns now.
    pub fn assigned(&self) -> BTreeSet<i32> {
        self.owners().into_keys().collect()
    }

    pub fn paused(&self) -> watch::Receiver<bool> {
        self.0.paused.subscribe()
    }

    pub fn is_paused(&self) -> bool {
        *self.0.paused.borrow()
    }

    pub fn latency(&self) -> LatencySummary {
        lock(&self.0.latency).summary(now_ms())
    }

    /// Every produce → applied latency since start (`/metrics`).
    pub fn latency_totals(&self) -> LatencyTotals {
        lock(&self.0.latency).totals().clone()
    }
}

/// The group's writing half: the calculator group's.
pub struct GroupWriter(Arc<Inner>);

impl GroupWriter {
    /// `member` was started (`cause` says why, on the rebalance timeline).
    pub fn joined(&self, member: u32, cause: &str) {
        lock(&self.0.group).joined(member, cause);
    }

    /// A rebalance is coming (a member is about to leave, for `cause`).
    pub fn expect(&self, cause: &str) {
        lock(&self.0.group).expect(cause);
    }

    pub fn left(&self, member: u32, cause: &str) {
        lock(&self.0.group).left(member, cause, now_ms());
    }

    /// Stops (`true`) or resumes the calculator's fetching.
    pub fn set_paused(&self, paused: bool) {
        lock(&self.0.group).set_paused(paused);
        self.0.paused.send_replace(paused);
    }

    /// What member `number` writes of the group: its own rows only.
    pub fn member(self: &Arc<Self>, number: u32) -> MemberWriter {
        MemberWriter {
            number,
            group: self.clone(),
        }
    }
}

/// One member's part of the group's writing half (its partitions, its records, its latencies).
#[derive(Clone)]
pub struct MemberWriter {
    number: u32,
    group: Arc<GroupWriter>,
}

impl MemberWriter {
    /// Its number in the group (from 1).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Whether the presenter paused the group's fetching.
    pub fn is_paused(&self) -> bool {
        *self.group.0.paused.borrow()
    }

    /// It (Kafka's `member_id`) was given `partitions`.
    pub fn assigned(&self, member_id: String, partitions: &[i32]) {
        let mut g = lock(&self.group.0.group);
        g.set_member_id(self.number, member_id);
        g.assigned(self.number, partitions, now_ms());
    }

    pub fn revoked(&self, partitions: &[i32]) {
        lock(&self.group.0.group).revoked(self.number, partitions, now_ms());
    }

    /// It applied `records` more, whose produce → applied times were `latencies_ms`.
    pub fn applied(&self, records: u64, latencies_ms: &[i64]) {
        lock(&self.group.0.group).count_records(self.number, records);
        if latencies_ms.is_empty() {
            return;
        }
        let now = now_ms();
        let mut l = lock(&self.group.0.latency);
        for ms in latencies_ms {
            l.record(now, *ms);
        }
    }
}
