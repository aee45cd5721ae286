//! The balance calculator's group as this server runs it: members, who owns which partition,
//! the rebalances, whether the presenter paused it, and produce → applied latency.
//!
//! Written by the calculator group ([`crate::pipeline::calculator_group`]: members joining and leaving,
//! pausing), its members' rebalance callbacks ([`crate::kafka`]) and batches
//! ([`crate::pipeline::balance_consumer`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use cashflow_shared::group::{Group, GroupStatus};
use cashflow_shared::latency::{LatencySummary, LatencyTotals, LatencyWindow};
use tokio::sync::watch;

use super::{lock, now_ms};

pub struct GroupBoard {
    group: Mutex<Group>,
    /// The presenter stopped the calculator's fetching (its members stay in the group).
    paused: watch::Sender<bool>,
    /// Produce → applied, over the last seconds.
    latency: Mutex<LatencyWindow>,
}

impl GroupBoard {
    pub fn new(group: &str) -> GroupBoard {
        GroupBoard {
            group: Mutex::new(Group::new(group)),
            paused: watch::Sender::new(false),
            latency: Mutex::new(LatencyWindow::default()),
        }
    }

    /// The group as the page shows it.
    pub fn status(&self) -> GroupStatus {
        let mut g = lock(&self.group);
        g.tick(now_ms());
        g.status()
    }

    /// Each partition some member of this server's calculator owns now, and its member.
    pub fn owners(&self) -> BTreeMap<i32, u32> {
        lock(&self.group).owners()
    }

    /// Partitions some member of this server's calculator owns now.
    pub fn assigned(&self) -> BTreeSet<i32> {
        self.owners().into_keys().collect()
    }

    /// `member` was started (`cause` says why, on the rebalance timeline).
    pub fn joined(&self, member: u32, cause: &str) {
        lock(&self.group).joined(member, cause);
    }

    /// A rebalance is coming (a member is about to leave, for `cause`).
    pub fn expect(&self, cause: &str) {
        lock(&self.group).expect(cause);
    }

    pub fn left(&self, member: u32, cause: &str) {
        lock(&self.group).left(member, cause, now_ms());
    }

    /// `member` (Kafka's `member_id`) was given `partitions`.
    pub fn assigned_to(&self, member: u32, member_id: String, partitions: &[i32]) {
        let mut g = lock(&self.group);
        g.set_member_id(member, member_id);
        g.assigned(member, partitions, now_ms());
    }

    pub fn revoked(&self, member: u32, partitions: &[i32]) {
        lock(&self.group).revoked(member, partitions, now_ms());
    }

    /// `member` applied `records` more, whose produce → applied times were `latencies_ms`.
    pub fn applied(&self, member: u32, records: u64, latencies_ms: &[i64]) {
        lock(&self.group).count_records(member, records);
        if latencies_ms.is_empty() {
            return;
        }
        let now = now_ms();
        let mut l = lock(&self.latency);
        for ms in latencies_ms {
            l.record(now, *ms);
        }
    }

    /// Stops (`true`) or resumes the calculator's fetching.
    pub fn set_paused(&self, paused: bool) {
        lock(&self.group).set_paused(paused);
        self.paused.send_replace(paused);
    }

    pub fn paused(&self) -> watch::Receiver<bool> {
        self.paused.subscribe()
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    pub fn latency(&self) -> LatencySummary {
        lock(&self.latency).summary(now_ms())
    }

    /// Every produce → applied latency since start (`/metrics`).
    pub fn latency_totals(&self) -> LatencyTotals {
        lock(&self.latency).totals().clone()
    }
}
