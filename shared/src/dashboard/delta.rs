//! Applying a [`Delta`] to the page's dashboard: each part it carries replaces or patches the
//! part held, the log and the history grow within their bounds.

use std::collections::BTreeMap;

use super::{Dashboard, LOG_CAPACITY};
use crate::api::{MAX_GROUPS_ON_PAGE, TopicView};
use crate::flow::{FlowDot, MAX_DOTS};
use crate::patch;
use crate::protocol::{Delta, HISTORY_SAMPLES, MAX_SHOWN_ACCOUNTS, MAX_SHOWN_PARTITIONS};

impl Dashboard {
    pub(super) fn apply_delta(&mut self, d: Delta) {
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

    pub(super) fn patch_topic_view(&mut self, p: &serde_json::Value) {
        let mut view = self.topic_view.take();
        patch_topic_view(&mut view, p);
        self.set_topic_view(view);
    }

    /// A followed record, new or now applied (the same partition and offset is one record).
    pub(super) fn follow_record(&mut self, dot: FlowDot) {
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
    pub(super) fn set_topic_view(&mut self, v: Option<TopicView>) {
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
