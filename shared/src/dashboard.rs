//! The page's state, kept pure so it is tested natively.
//!
//! [`Dashboard::apply`] is the reducer the page feeds every server message into. Chart geometry
//! ([`crate::chart`]) and formatting ([`crate::format`]) are modules of their own, re-exported
//! here for the page.

use std::collections::{BTreeMap, VecDeque};

use crate::api::{AccountBalance, LogLine, MAX_GROUPS_ON_PAGE, TopicView};
use crate::flow::{FlowDot, MAX_DOTS};
use crate::group::GroupStatus;
use crate::money::Money;
use crate::patch;
use crate::protocol::{
    Counters, Delta, GeneratorStatus, HISTORY_SAMPLES, MAX_SHOWN_ACCOUNTS, MAX_SHOWN_PARTITIONS,
    PROTOCOL_VERSION, PartitionView, Sample, ServerMsg, StoreStatus,
};
use crate::transaction::AccountId;

pub use crate::chart::{
    PALETTE, Scale, history_range, line_points, series_style, sparkline_points,
};
pub use crate::format::{clock, format_money, money_label};

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

    fn apply_delta(&mut self, d: Delta) {
        for a in d.dropped {
            self.accounts.remove(&a);
        }
        for row in d.accounts {
            self.accounts.insert(row.0, row.into());
        }
        // A server keeps this bounded; a page does too, whatever it is sent.
        while self.accounts.len() > MAX_SHOWN_ACCOUNTS {
            self.accounts.pop_last();
        }
        // A patch that does not fit leaves the part as it was, until the next snapshot.
        if let Some(p) = &d.counters {
            let _ = patch::apply(&mut self.counters, p);
        }
        if let Some(g) = d.generator {
            self.generator = Some(g);
        }
        if let Some(r) = d.broker_reachable {
            self.broker_reachable = r;
        }
        if let Some(s) = d.store {
            self.store = s;
        }
        if let Some(p) = &d.topic_view {
            self.patch_topic_view(p);
        }
        if let Some(p) = &d.group {
            let _ = patch::apply(&mut self.group, p);
        }
        for dot in d.flow {
            self.follow_record(dot);
        }
        if let Some(r) = d.replay {
            self.replay = r;
        }
        if let Some(n) = d.naive {
            self.naive = n;
        }
        if let Some(o) = d.outage {
            self.outage = o;
        }
        if let Some(l) = d.lessons {
            self.lessons = l;
        }
        if let Some(mut letters) = d.dead_letters {
            letters.truncate(crate::poison::DEAD_LETTERS_SHOWN);
            self.dead_letters = letters;
        }
        if let Some(mut p) = d.partitions {
            p.truncate(MAX_SHOWN_PARTITIONS);
            self.partitions = p;
        }
        for p in d.partitions_changed {
            if let Some(v) = self
                .partitions
                .iter_mut()
                .find(|v| v.partition == p.partition)
            {
                *v = p;
            }
        }
        for line in d.log.into_iter().rev() {
            self.log.push_front(line);
        }
        self.log.truncate(LOG_CAPACITY);
        if let Some(c) = d.sample {
            let s = c.apply(self.history.back());
            if self.history.len() == HISTORY_SAMPLES {
                self.history.pop_front();
            }
            self.history.push_back(s);
        }
    }

    fn patch_topic_view(&mut self, p: &serde_json::Value) {
        let mut view = self.topic_view.take();
        patch_topic_view(&mut view, p);
        self.set_topic_view(view);
    }

    /// Whether the followed record at `partition` and `offset` was sent to this page while it
    /// still waited in its partition (else the page first learnt of it applied).
    pub fn flow_was_waiting(&self, partition: i32, offset: i64) -> bool {
        self.flow_waiting.contains(&(partition, offset))
    }

    /// A followed record, new or now applied (the same partition and offset is one record).
    fn follow_record(&mut self, dot: FlowDot) {
        if dot.applied_ms.is_none() {
            self.flow_waiting.insert((dot.partition, dot.offset));
        }
        match self
            .flow
            .iter_mut()
            .find(|d| d.partition == dot.partition && d.offset == dot.offset)
        {
            Some(d) => *d = dot,
            None => {
                if self.flow.len() == MAX_DOTS
                    && let Some(old) = self.flow.pop_front()
                {
                    self.flow_waiting.remove(&(old.partition, old.offset));
                }
                self.flow.push_back(dot);
            }
        }
    }

    /// Keeps the topic view bounded, whatever the server sends.
    fn set_topic_view(&mut self, v: Option<TopicView>) {
        self.topic_view = v.map(|mut v| {
            v.partitions.truncate(MAX_SHOWN_PARTITIONS);
            v.groups.truncate(MAX_GROUPS_ON_PAGE);
            for g in &mut v.groups {
                let n = g.lag_history.len();
                g.lag_history
                    .drain(..n.saturating_sub(crate::api::LAG_HISTORY));
            }
            v
        });
    }

    /// How many accounts the history charts (accounts 1..=n).
    pub fn charted_accounts(&self) -> usize {
        self.history.back().map(|s| s.balances.len()).unwrap_or(0)
    }
}

/// The broker's view, patched (a patch from [`patch::diff_of`] of views without their groups'
/// lag histories); a new `taken_ms` is a refresh, which adds each group's `total_lag` to its
/// `lag_history`. Histories follow their group by name, wherever the list puts it. The page
/// and the hub's record of what it sent both go through here, so a new viewer's snapshot holds
/// the same histories as the pages already open. A patch that does not fit changes nothing.
pub fn patch_topic_view(view: &mut Option<TopicView>, p: &serde_json::Value) {
    let before = view.as_ref().map(|v| v.taken_ms);
    let mut histories: BTreeMap<String, Vec<i64>> = view
        .iter_mut()
        .flat_map(|v| v.groups.iter_mut())
        .map(|g| (g.group.clone(), std::mem::take(&mut g.lag_history)))
        .collect();
    let mut patched = view.clone();
    let fits = patch::apply(&mut patched, p).is_ok();
    if fits {
        *view = patched;
    }
    if let Some(v) = view {
        let refreshed = Some(v.taken_ms) != before;
        for g in &mut v.groups {
            g.lag_history = histories.remove(&g.group).unwrap_or_default();
            if fits && refreshed {
                g.lag_history.push(g.total_lag);
            }
            let n = g.lag_history.len();
            g.lag_history
                .drain(..n.saturating_sub(crate::api::LAG_HISTORY));
        }
    }
}

#[cfg(test)]
mod tests;
