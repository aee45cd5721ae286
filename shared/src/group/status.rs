//! The group as the page and the API show it: its members, their partitions, and the
//! timeline of rebalances.

use serde::{Deserialize, Serialize};

/// One member of the calculator's group, numbered from 1 in the order they were added.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberInfo {
    pub member: u32,
    /// The id the broker gave it (empty until it joined).
    pub member_id: String,
    pub partitions: Vec<i32>,
    /// Records it applied (or dead-lettered).
    pub records: u64,
}

/// A partition that changed owner in a rebalance (`None`: no member, e.g. at start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub partition: i32,
    pub from: Option<u32>,
    pub to: Option<u32>,
    /// From its revocation to its assignment (0 if nobody had it before).
    pub paused_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebalance {
    pub started_ms: i64,
    /// `None` while partitions are still waiting for a new owner.
    pub ended_ms: Option<i64>,
    /// What started it, e.g. "member 2 added".
    pub cause: String,
    pub moves: Vec<Move>,
    /// The longest time one partition stood still.
    pub paused_ms: i64,
}

/// What the page and `/api/topic` show of the calculator's group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub group: String,
    pub members: Vec<MemberInfo>,
    /// Fetching stopped by the presenter (the members stay in the group).
    pub paused: bool,
    /// Newest last.
    pub rebalances: Vec<Rebalance>,
}

impl GroupStatus {
    /// The member that owns `partition` now.
    pub fn owner(&self, partition: i32) -> Option<u32> {
        self.members
            .iter()
            .find(|m| m.partitions.contains(&partition))
            .map(|m| m.member)
    }
}
