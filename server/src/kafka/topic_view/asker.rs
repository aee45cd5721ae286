//! Asking the broker: the topic's offsets, the groups reading it, their members and their
//! committed offsets, with blocking clients that never join a group.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use cashflow_shared::api::{GroupView, LAG_HISTORY, MAX_GROUPS_SHOWN, PartitionOffsets, TopicView};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Settings;
use crate::kafka::ffi::list_offsets;
use crate::kafka::{Context, base_config};
use crate::state::Shared;

use super::groups::{committed_on, describe};
use super::{LIST_ALL_UP_TO, LIST_EVERY, PROBE_AGAIN, PROBES, TIMEOUT};

/// Blocking clients: one to ask about the topic and list groups, and one per group (kept, at
/// most [`MAX_GROUPS_SHOWN`]) to fetch its committed offsets without joining it.
pub(super) struct Asker {
    settings: Settings,
    brokers: String,
    pub(super) shared: Arc<Shared>,
    admin: BaseConsumer<Context>,
    groups: BTreeMap<String, BaseConsumer<Context>>,
    /// Groups seen with a member on the topic (or cashflow's own): an empty one is still
    /// shown, with its committed offsets and lag. Others on the broker are not asked about, so
    /// a busy shared broker costs one request a second, not one per group.
    known: std::collections::BTreeSet<String>,
    /// Other groups asked once whether they committed on the topic (a broker need not say
    /// what a member is assigned), and when: asked again 15 s
    /// later, at most [`PROBES`] a refresh.
    probed: BTreeMap<String, Instant>,
    /// When every group was last listed, and how many there were.
    listed: Option<(Instant, usize)>,
    /// Each partition's log start and when it was asked: it moves only when retention deletes
    /// a segment, so it is asked every [`LIST_EVERY`], not every refresh.
    starts: Option<(Instant, BTreeMap<i32, i64>)>,
    /// Each shown group's total lag at the last refreshes.
    lag_history: BTreeMap<String, std::collections::VecDeque<i64>>,
    /// End offsets at the previous refresh, for records/s.
    last: Option<(Instant, BTreeMap<i32, i64>)>,
}

/// A client that never joins a group: committed offsets are fetched by group id alone.
fn client(
    settings: &Settings,
    brokers: &str,
    shared: &Arc<Shared>,
    group: Option<&str>,
) -> Result<BaseConsumer<Context>, KafkaError> {
    let mut cfg = base_config(brokers, &settings.kafka);
    cfg.set("group.id", group.unwrap_or("cashflow-topic-view"))
        .set("enable.auto.commit", "false");
    cfg.create_with_context(Context::new(shared, "topic view"))
}

impl Asker {
    pub(super) fn new(
        settings: Settings,
        brokers: String,
        shared: Arc<Shared>,
    ) -> anyhow::Result<Asker> {
        Ok(Asker {
            admin: client(&settings, &brokers, &shared, None)?,
            settings,
            brokers,
            shared,
            groups: BTreeMap::new(),
            known: Default::default(),
            probed: BTreeMap::new(),
            listed: None,
            starts: None,
            last: None,
            lag_history: BTreeMap::new(),
        })
    }

    pub(super) fn ask(&mut self) -> Result<TopicView, KafkaError> {
        let topic = self.settings.topic.clone();
        let metadata = self.admin.fetch_metadata(Some(&topic), TIMEOUT)?;
        let placement: BTreeMap<i32, (i32, Vec<i32>, Vec<i32>)> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions())
            .map(|p| {
                (
                    p.id(),
                    (p.leader(), p.replicas().to_vec(), p.isr().to_vec()),
                )
            })
            .collect();
        let count = placement.len() as i32;
        let mut brokers: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
        brokers.sort_unstable();
        let now = Instant::now();
        let mut partitions = Vec::with_capacity(count as usize);
        let mut ends = BTreeMap::new();
        let native = self.admin.client().native_client();
        let latest = list_offsets(native, &topic, count, Offset::End, TIMEOUT)?;
        let fresh = self.starts.as_ref().is_some_and(|(at, s)| {
            at.elapsed() < LIST_EVERY
                && s.len() == count as usize
                && s.iter()
                    .all(|(p, start)| latest.get(p).is_some_and(|e| e >= start))
        });
        if !fresh {
            let s = list_offsets(native, &topic, count, Offset::Beginning, TIMEOUT)?;
            self.starts = Some((now, s));
        }
        let starts = self
            .starts
            .as_ref()
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        for p in 0..count {
            let (log_start, end) = match (starts.get(&p), latest.get(&p)) {
                (Some(s), Some(e)) => (*s, *e),
                // A partition the batch did not answer for: asked on its own.
                _ => self.admin.fetch_watermarks(&topic, p, TIMEOUT)?,
            };
            let records_per_second = match &self.last {
                Some((at, before)) if now > *at => {
                    let moved = end - before.get(&p).copied().unwrap_or(end);
                    moved.max(0) as f64 / now.duration_since(*at).as_secs_f64()
                }
                _ => 0.0,
            };
            ends.insert(p, end);
            let (leader, replicas, isr) = placement.get(&p).cloned().unwrap_or_default();
            partitions.push(PartitionOffsets {
                partition: p,
                log_start,
                end,
                records_per_second: (records_per_second * 10.0).round() / 10.0,
                leader,
                replicas,
                isr,
            });
        }
        self.last = Some((now, ends));

        // Listing groups describes every group on the broker: on one with many (a shared
        // cluster, a long-lived test broker) that is done every LIST_EVERY, to find new ones;
        // in between only the groups already known are described.
        let listing = self
            .listed
            .is_none_or(|(at, n)| n <= LIST_ALL_UP_TO || at.elapsed() >= LIST_EVERY);
        let described = if listing {
            let all = self.admin.fetch_group_list(None, TIMEOUT)?;
            self.listed = Some((Instant::now(), all.groups().len()));
            describe(all.groups(), &topic)
        } else {
            let mut d = Vec::new();
            for name in self.known.iter().take(MAX_GROUPS_SHOWN) {
                let one = self.admin.fetch_group_list(Some(name), TIMEOUT)?;
                d.extend(describe(one.groups(), &topic));
            }
            d
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..count {
            tpl.add_partition_offset(&topic, p, Offset::Invalid)?;
        }
        let mut probes = 0;
        let mut groups = Vec::new();
        let mut wanted = Vec::new();
        for (name, state, members) in described {
            let on_topic = members.iter().any(|m| !m.partitions.is_empty())
                || name.starts_with(&format!("{}-", self.settings.group_prefix));
            if on_topic && self.known.len() < MAX_GROUPS_SHOWN * 4 {
                self.known.insert(name.clone());
            }
            let due = self
                .probed
                .get(&name)
                .is_none_or(|at| at.elapsed() >= PROBE_AGAIN);
            if !self.known.contains(&name) && due && probes < PROBES {
                probes += 1;
                let c = client(&self.settings, &self.brokers, &self.shared, Some(&name))?;
                if committed_on(&c, &tpl, &topic).is_empty() {
                    if self.probed.len() >= 1024 {
                        self.probed.clear();
                    }
                    self.probed.insert(name.clone(), Instant::now());
                } else if self.known.len() < MAX_GROUPS_SHOWN * 4 {
                    self.known.insert(name.clone());
                    self.groups.insert(name.clone(), c);
                }
            }
            if !self.known.contains(&name) {
                continue;
            }
            wanted.push(name.clone());
            groups.push((name, state, members));
        }
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        groups.truncate(MAX_GROUPS_SHOWN);
        self.groups.retain(|name, _| wanted.contains(name));

        let mut views = Vec::new();
        for (group, state, members) in groups {
            if !self.groups.contains_key(&group) {
                let c = client(&self.settings, &self.brokers, &self.shared, Some(&group))?;
                self.groups.insert(group.clone(), c);
            }
            let committed = committed_on(&self.groups[&group], &tpl, &topic);
            let reads_topic =
                !committed.is_empty() || members.iter().any(|m| !m.partitions.is_empty());
            if !reads_topic {
                continue;
            }
            let lag: BTreeMap<i32, i64> = partitions
                .iter()
                .map(|p| {
                    let from = committed.get(&p.partition).copied().unwrap_or(p.log_start);
                    (p.partition, (p.end - from.max(p.log_start)).max(0))
                })
                .collect();
            let total_lag = lag.values().sum();
            let h = self.lag_history.entry(group.clone()).or_default();
            if h.len() == LAG_HISTORY {
                h.pop_front();
            }
            h.push_back(total_lag);
            views.push(GroupView {
                lag_history: h.iter().copied().collect(),
                group,
                state,
                members,
                total_lag,
                committed,
                lag,
            });
        }
        self.lag_history
            .retain(|g, _| views.iter().any(|v| &v.group == g));
        Ok(TopicView {
            topic,
            taken_ms: crate::state::now_ms(),
            partitions,
            brokers,
            groups: views,
            error: None,
            ..TopicView::default()
        })
    }
}
