//! Kafka made visible: the topic's partitions as the broker reports them (log start, end,
//! records/s, who owns each, the calculator's lag on it), every consumer group reading the
//! topic with its lag over time, and the balance calculator's members with the presenter's
//! controls and the rebalance timeline. Everything here comes from the broker or from the
//! members' own callbacks, never from a simulation.
//!
//! - [`topic`]: the partitions as lanes, with the ordering and the invariant above them;
//! - [`groups`]: every consumer group on the topic and its lag;
//! - [`members`]: the calculator's members, the presenter's buttons, the rebalances.

mod groups;
mod members;
mod topic;

use cashflow_shared::AccountId;
use cashflow_shared::api::GroupView;
use cashflow_shared::dashboard::Dashboard;
use cashflow_shared::ordering::KeyStrategy;

pub use groups::GroupsPanel;
pub use members::MembersPanel;
pub use topic::TopicPanel;

/// "member 2", the words used everywhere a member is named (never colour alone).
fn member_name(m: Option<u32>) -> String {
    m.map_or_else(|| "nobody".to_owned(), |m| format!("member {m}"))
}

/// The calculator group's view from the broker (committed offsets, lag), if it answered.
fn calculator_view(d: &Dashboard) -> Option<&GroupView> {
    let name = &d.group.group;
    d.topic_view
        .as_ref()
        .and_then(|v| v.groups.iter().find(|g| &g.group == name))
}

/// Why account `a` is where it is: key, partitioner, partition, member.
pub fn account_path(d: &Dashboard, a: AccountId) -> Option<String> {
    let partitions = d.partitions.len() as u32;
    let keys = keys_of(d);
    let why = keys.key_path(a, partitions)?;
    Some(match keys.partition_of(a, partitions) {
        Some(p) => format!(
            "account {a}: {why} → partition {p} → {} of the balance calculator",
            member_name(d.group.owner(p))
        ),
        None => format!("account {a}: {why}, and so to any member of the balance calculator"),
    })
}

/// How the producer keys its records now.
pub fn keys_of(d: &Dashboard) -> KeyStrategy {
    d.generator.as_ref().map(|g| g.keys).unwrap_or_default()
}
