//! The balance calculator's state store as `/health` and the page show it: its restore, its
//! snapshots, re-creations of the topic, and each partition's newest snapshot.
//!
//! Written by the calculator's restore ([`crate::store::restore`], [`crate::pipeline::balance_consumer`]), the
//! snapshot writer (`store::changelog::writer`) and the demo's reset ([`crate::reset`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use cashflow_shared::api::{RestoreProgress, StoreHealth};

use super::lock;

pub struct StoreBoard {
    health: Mutex<StoreHealth>,
    /// Per partition, the newest snapshot known (read at restore or written): its slot and the
    /// offset it reflects.
    marks: Mutex<BTreeMap<i32, (u8, i64)>>,
}

impl Default for StoreBoard {
    fn default() -> Self {
        StoreBoard {
            health: Mutex::new(StoreHealth {
                restoring: true,
                ..StoreHealth::default()
            }),
            marks: Mutex::new(BTreeMap::new()),
        }
    }
}

impl StoreBoard {
    pub fn health(&self) -> StoreHealth {
        lock(&self.health).clone()
    }

    pub fn restoring(&self) -> bool {
        lock(&self.health).restoring
    }

    /// The calculator starts (`true`) or ends its restore; balances are served only after.
    pub fn set_restoring(&self, restoring: bool) {
        lock(&self.health).restoring = restoring;
    }

    /// How far the latest restore is.
    pub fn restore_progress(&self, p: RestoreProgress) {
        lock(&self.health).restore = Some(p);
    }

    pub fn snapshot_written(&self) {
        lock(&self.health).snapshots_written += 1;
    }

    pub fn snapshot_failed(&self, reason: String) {
        let mut h = lock(&self.health);
        h.snapshot_failures += 1;
        h.last_error = Some(reason);
    }

    pub fn set_error(&self, reason: String) {
        lock(&self.health).last_error = Some(reason);
    }

    pub fn clear_error(&self) {
        lock(&self.health).last_error = None;
    }

    /// The whole topic was found deleted and created again (`why`): counted, and a warning
    /// unless the presenter's reset is under way (then it is the reset's own).
    pub fn topic_recreated(&self, why: &str) {
        let mut s = lock(&self.health);
        s.recreated += 1;
        if s.resetting {
            s.reset_by_presenter += 1;
        } else {
            s.last_error = Some(format!(
                "the topic was deleted and created again ({why}): balances started afresh"
            ));
        }
    }

    /// Partitions being restored were found re-created (their offsets started over).
    pub fn partitions_recreated(&self) {
        let mut s = lock(&self.health);
        s.recreated += 1;
        s.last_error = Some(
            "the topic was deleted and created again: balances of its partitions started afresh"
                .into(),
        );
    }

    /// The presenter's reset of the demo begins (`true`) or ended.
    pub fn set_resetting(&self, resetting: bool) {
        lock(&self.health).resetting = resetting;
    }

    /// The newest snapshot of `partition` known: its slot and the offset it reflects.
    pub fn mark(&self, partition: i32) -> Option<(u8, i64)> {
        lock(&self.marks).get(&partition).copied()
    }

    pub fn set_mark(&self, partition: i32, slot: u8, next_offset: i64) {
        lock(&self.marks).insert(partition, (slot, next_offset));
    }

    /// Forgets every snapshot mark: the topic they were of is gone.
    pub fn clear_marks(&self) {
        lock(&self.marks).clear();
    }
}
