//! The page's state, kept pure so it is tested natively.
//!
//! [`Dashboard::apply`] is the reducer the page feeds every server message into. Chart geometry
//! ([`crate::chart`]) and formatting ([`crate::format`]) are modules of their own, re-exported
//! here for the page.

use std::collections::{BTreeMap, VecDeque};

use crate::api::{AccountBalance, LogLine, TopicView};
use crate::flow::{FlowDot, MAX_DOTS};
use crate::group::GroupStatus;
use crate::money::Money;
use crate::protocol::{
    Counters, GeneratorStatus, HISTORY_SAMPLES, MAX_SHOWN_ACCOUNTS, MAX_SHOWN_PARTITIONS,
    PROTOCOL_VERSION, PartitionView, Sample, ServerMsg, StoreStatus,
};
use crate::transaction::AccountId;

pub use crate::chart::{
    PALETTE, Scale, history_range, line_points, series_style, sparkline_points,
};
pub use crate::format::{clock, format_money, money_label};
pub use delta::patch_topic_view;

mod delta;

/// Log lines the page keeps (newest first).
pub const LOG_CAPACITY: usize = 200;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dashboard {
    pub topic: String,
    pub opening_balance: Money,
    pub accounts: BTreeMap<AccountId, AccountBalance>,
    pub counters: Counters,
    pub generator: Option<GeneratorStatus>,
    pub broker_reachable: bool,
    /// See [`crate::protocol::Snapshot::broker_managed`].
    pub broker_managed: bool,
    pub store: StoreStatus,
    /// Newest first, at most [`LOG_CAPACITY`].
    pub log: VecDeque<LogLine>,
    /// Oldest first, at most [`HISTORY_SAMPLES`].
    pub history: VecDeque<Sample>,
    /// Set when the server speaks another protocol version.
    pub reload: Option<String>,
    pub snapshots: u64,
    /// The server wants a presenter login before it takes commands.
    pub presenter_required: bool,
    /// This page may send commands (no login needed, or logged in).
    pub presenter: bool,
    pub partitions: Vec<PartitionView>,
    /// The topic as the broker sees it (offsets, groups, lag), about once a second.
    pub topic_view: Option<TopicView>,
    /// The balance calculator's members and rebalances.
    pub group: GroupStatus,
    /// Real records followed (oldest first, at most [`MAX_DOTS`]).
    pub flow: VecDeque<FlowDot>,
    /// Those of them this page was sent while they still waited in their partition.
    flow_waiting: std::collections::BTreeSet<(i32, i64)>,
    /// The newest dead letters (newest first, at most
    /// [`DEAD_LETTERS_SHOWN`](crate::poison::DEAD_LETTERS_SHOWN)).
    pub dead_letters: Vec<crate::poison::DeadLetterView>,
    /// The replay lesson's latest run.
    pub replay: crate::replay::ReplayStatus,
    /// The delivery-semantics lesson's naive calculator.
    pub naive: crate::naive::NaiveStatus,
    /// The outage lesson's latest outage.
    pub outage: crate::outage::OutageStatus,
    /// The guided lessons' checks.
    pub lessons: crate::lessons::LessonsStatus,
}

/// What a message means for the person at the page, besides the state change.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    Ok { id: Option<u64>, text: String },
    Error { id: Option<u64>, text: String },
}

impl Dashboard {
    /// Whether `account`'s figures are only as last seen: its partition now belongs to another
    /// member of the balance calculator's group (a second cashflow took it).
    pub fn is_stale(&self, account: AccountId) -> bool {
        let Some(p) = self.accounts.get(&account).and_then(|a| a.partition) else {
            return false;
        };
        self.partitions
            .iter()
            .find(|v| v.partition == p)
            .is_some_and(|v| !v.owned)
    }

    pub fn apply(&mut self, msg: ServerMsg) -> Option<Notice> {
        match msg {
            ServerMsg::Presenter { id } => {
                self.presenter = true;
                Some(Notice::Ok {
                    id,
                    text: "logged in as presenter".into(),
                })
            }
            ServerMsg::Hello {
                protocol,
                presenter_required,
                ..
            } => {
                self.presenter_required = presenter_required;
                self.presenter = !presenter_required;
                if protocol != PROTOCOL_VERSION {
                    self.reload = Some(format!(
                        "the server speaks protocol {protocol}, this page {PROTOCOL_VERSION}: reload the page"
                    ));
                }
                None
            }
            ServerMsg::Reload { reason } => {
                self.reload = Some(reason);
                None
            }
            ServerMsg::Snapshot(s) => {
                self.topic = s.topic;
                self.opening_balance = s.opening_balance;
                self.accounts = s
                    .accounts
                    .into_iter()
                    .take(MAX_SHOWN_ACCOUNTS)
                    .map(|a| (a.account, a))
                    .collect();
                self.counters = s.counters;
                self.generator = Some(s.generator);
                self.broker_reachable = s.broker_reachable;
                self.broker_managed = s.broker_managed;
                self.store = s.store;
                self.log = s.log.into_iter().take(LOG_CAPACITY).collect();
                self.history = s
                    .history
                    .into_iter()
                    .rev()
                    .take(HISTORY_SAMPLES)
                    .rev()
                    .collect();
                self.partitions = s.partitions;
                self.partitions.truncate(MAX_SHOWN_PARTITIONS);
                self.set_topic_view(s.topic_view);
                self.group = s.group;
                self.flow.clear();
                self.flow_waiting.clear();
                for dot in s.flow.into_iter().rev().take(MAX_DOTS).rev() {
                    self.follow_record(dot);
                }
                self.dead_letters = s.dead_letters;
                self.replay = s.replay;
                self.naive = s.naive;
                self.outage = s.outage;
                self.lessons = s.lessons;
                self.dead_letters
                    .truncate(crate::poison::DEAD_LETTERS_SHOWN);
                self.snapshots += 1;
                None
            }
            ServerMsg::Delta(d) => {
                self.apply_delta(*d);
                None
            }
            ServerMsg::Ack {
                id,
                generator,
                transaction,
            } => {
                // The generator in force comes with the deltas (compared with what the hub
                // sent, so a reply's copy could be one the deltas never correct).
                let _ = generator;
                let text = match transaction {
                    Some(t) => format!(
                        "sent {} {} to account {}",
                        t.transaction_type,
                        format_money(t.amount),
                        t.account
                    ),
                    None => "done".to_owned(),
                };
                Some(Notice::Ok { id, text })
            }
            ServerMsg::Replay { id, replay } => {
                let text = replay.describe();
                self.replay = replay;
                Some(Notice::Ok { id, text })
            }
            ServerMsg::Reset { id } => Some(Notice::Ok {
                id,
                text: "resetting the demo: a fresh topic and groups, every check started over"
                    .into(),
            }),
            ServerMsg::Outage { id, outage } => {
                let text = outage.describe();
                self.outage = outage;
                Some(Notice::Ok { id, text })
            }
            ServerMsg::Naive { id, naive } => {
                let text = naive.describe();
                self.naive = naive;
                Some(Notice::Ok { id, text })
            }
            ServerMsg::Calculator { id, group } => {
                let text = format!(
                    "the calculator has {} member{}{}",
                    group.members.len(),
                    if group.members.len() == 1 { "" } else { "s" },
                    if group.paused { ", paused" } else { "" }
                );
                // Only said: the group comes as patches of what the hub sent (a reply's copy
                // could hold a passing state no patch would undo).
                Some(Notice::Ok { id, text })
            }
            ServerMsg::Error { id, message } => Some(Notice::Error { id, text: message }),
        }
    }
    /// Whether the followed record at `partition` and `offset` was sent to this page while it
    /// still waited in its partition (else the page first learnt of it applied).
    pub fn flow_was_waiting(&self, partition: i32, offset: i64) -> bool {
        self.flow_waiting.contains(&(partition, offset))
    }

    /// How many accounts the history charts (accounts 1..=n).
    pub fn charted_accounts(&self) -> usize {
        self.history.back().map(|s| s.balances.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
