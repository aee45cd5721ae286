//! One look of the hub: what changed since the last frame, as a [`Delta`], and [`Sent`]
//! brought up to it. Each part keeps to its own rate (account rows, log lines, counters, the
//! group); the look's state is what each part last sent or saw.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cashflow_shared::AccountId;
use cashflow_shared::dashboard::patch_topic_view;
use cashflow_shared::patch;
use cashflow_shared::protocol::{
    AccountRow, Delta, MAX_SHOWN_ACCOUNTS, SNAPSHOT_LOG_LINES, SampleChange,
};

use super::budget::Allowance;
use super::{
    ACCOUNT_ROWS_PER_SECOND, COUNTERS_EVERY, GROUP_EVERY, Hub, LOG_LINES_PER_SECOND, Sent,
    without_lag_history,
};
use crate::kafka::topic_view::TopicViews;

pub(super) struct Look {
    rows: Allowance,
    lines: Allowance,
    counters_at: Option<Instant>,
    group_at: Option<Instant>,
    topic_views: TopicViews,
    flow_version: u64,
    letters_version: u64,
    lessons_seen: Vec<u64>,
    checks_version: u64,
    log_seq: u64,
    shown: Vec<AccountId>,
    shown_at: Instant,
    /// (when, applied) over the last second, for the applied-per-second rate.
    window: VecDeque<(Instant, u64)>,
}

impl Look {
    pub(super) fn new(hub: &Hub, start: Instant) -> Look {
        Look {
            rows: Allowance::new(ACCOUNT_ROWS_PER_SECOND, MAX_SHOWN_ACCOUNTS as f64, start),
            lines: Allowance::new(LOG_LINES_PER_SECOND, LOG_LINES_PER_SECOND, start),
            counters_at: None,
            group_at: None,
            topic_views: hub.topic_view.clone(),
            flow_version: 0,
            letters_version: hub.shared.feed().dead_letters().2,
            lessons_seen: hub.lessons.seen_now(),
            checks_version: hub.shared.lessons().checks().version(),
            log_seq: 0,
            shown: hub.choose_shown(),
            shown_at: start,
            window: VecDeque::new(),
        }
    }

    /// What changed since the last look, each part at its own rate; `sent` follows.
    pub(super) fn delta(&mut self, hub: &Hub, sent: &mut Sent, now: Instant) -> Delta {
        let mut delta = Delta::default();
        self.accounts(hub, sent, now, &mut delta);
        self.counters(hub, sent, now, &mut delta);
        self.sample(hub, sent, &mut delta);
        self.log(hub, sent, now, &mut delta);
        hub.whole_parts(sent, &mut delta);
        self.topic_view(hub, sent, &mut delta);
        self.group(hub, sent, now, &mut delta);
        let (flow, v) = hub.shared.flow().since(self.flow_version);
        self.flow_version = v;
        delta.flow = flow;
        delta.dead_letters = hub
            .shared
            .feed()
            .dead_letters_since(self.letters_version)
            .map(|(letters, v)| {
                self.letters_version = v;
                letters
            });
        hub.lessons.changes(&mut self.lessons_seen, &mut delta);
        delta.lessons = hub
            .shared
            .lessons()
            .checks()
            .changed_since(&mut self.checks_version);
        delta
    }

    /// The accounts and partitions, exact, at most [`ACCOUNT_ROWS_PER_SECOND`] rows a second.
    fn accounts(&mut self, hub: &Hub, sent: &mut Sent, now: Instant, delta: &mut Delta) {
        let l = hub.shared.ledger();
        // A new account is shown at once while there is room (else up to a second late).
        if now.duration_since(self.shown_at) >= Duration::from_secs(1)
            || (self.shown.len() < MAX_SHOWN_ACCOUNTS && l.account_count() > self.shown.len())
        {
            self.shown = hub.choose_shown();
            self.shown_at = now;
        }
        let changed = l.changed(&self.shown, &sent.accounts);
        if !self.rows.take(changed.len() as f64, now) {
            return;
        }
        delta.dropped = sent
            .accounts
            .keys()
            .filter(|a| !self.shown.contains(a))
            .copied()
            .collect();
        for a in &delta.dropped {
            sent.accounts.remove(a);
        }
        delta.accounts = changed.iter().map(AccountRow::from).collect();
        for a in changed {
            sent.accounts.insert(a.account, a);
        }
        let partitions = hub.shared.partition_views();
        let same_ids = partitions.len() == sent.partitions.len()
            && partitions
                .iter()
                .zip(&sent.partitions)
                .all(|(a, b)| a.partition == b.partition);
        if !same_ids {
            delta.partitions = Some(partitions.clone());
        } else {
            delta.partitions_changed = partitions
                .iter()
                .zip(&sent.partitions)
                .filter(|(a, b)| a != b)
                .map(|(a, _)| *a)
                .collect();
        }
        sent.partitions = partitions;
    }

    /// The counters' patch, at most every [`COUNTERS_EVERY`], with the applied rate over the
    /// last second.
    fn counters(&mut self, hub: &Hub, sent: &mut Sent, now: Instant, delta: &mut Delta) {
        let applied = hub.shared.ledger().stats().applied;
        self.window.push_back((now, applied));
        while self
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(1))
        {
            self.window.pop_front();
        }
        let per_second = match (self.window.front(), self.window.back()) {
            (Some((t0, a0)), Some((t1, a1))) if t1 > t0 => {
                // (Applied drops to 0 when a re-created topic starts the balances afresh.)
                a1.saturating_sub(*a0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        };
        let counters = hub.counters((per_second * 10.0).round() / 10.0);
        if self
            .counters_at
            .is_none_or(|t| now.duration_since(t) >= COUNTERS_EVERY)
            && let Some(p) = patch::diff_of(&sent.counters, &counters)
        {
            delta.counters = Some(p);
            sent.counters = counters;
            self.counters_at = Some(now);
        }
    }

    /// The charts' newest point (the monitor adds one a second), as a change of the point sent
    /// before it.
    fn sample(&mut self, hub: &Hub, sent: &mut Sent, delta: &mut Delta) {
        if let Some((seq, s)) = hub.shared.feed().newest_sample()
            && sent
                .sample
                .as_ref()
                .is_none_or(|(sent_seq, _)| *sent_seq != seq)
        {
            delta.sample = Some(SampleChange::between(
                sent.sample.as_ref().map(|(_, s)| s),
                &s,
            ));
            sent.sample = Some((seq, s));
        }
    }

    /// The feed: every line at classroom rates, the newest few a second above.
    fn log(&mut self, hub: &Hub, sent: &mut Sent, now: Instant, delta: &mut Delta) {
        let room = self.lines.available(now).floor();
        if room < 1.0 {
            return;
        }
        let (log, newest) = hub.shared.feed().recent_since(self.log_seq, room as usize);
        self.log_seq = newest;
        self.lines.take(log.len() as f64, now);
        for line in log.iter().rev() {
            sent.log.push_front(line.clone());
        }
        sent.log.truncate(SNAPSHOT_LOG_LINES);
        delta.log = log;
    }

    /// The topic view's patch, when the broker's view changed.
    fn topic_view(&mut self, hub: &Hub, sent: &mut Sent, delta: &mut Delta) {
        if !matches!(self.topic_views.has_changed(), Ok(true)) {
            return;
        }
        self.topic_views.mark_unchanged();
        let view = hub.topic_view();
        delta.topic_view = patch::diff_of(
            &without_lag_history(&sent.topic_view),
            &without_lag_history(&view),
        );
        // The pages' rule, not the server's histories: a snapshot holds what they hold.
        if let Some(p) = &delta.topic_view {
            patch_topic_view(&mut sent.topic_view, p);
        }
    }

    /// The group's patch, at most every [`GROUP_EVERY`].
    fn group(&mut self, hub: &Hub, sent: &mut Sent, now: Instant, delta: &mut Delta) {
        if self
            .group_at
            .is_some_and(|t| now.duration_since(t) < GROUP_EVERY)
        {
            return;
        }
        let group = hub.shared.group().status();
        delta.group = patch::diff_of(&sent.group, &group);
        if delta.group.is_some() {
            sent.group = group;
            self.group_at = Some(now);
        }
    }
}
