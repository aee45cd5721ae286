//! The topic as the broker sees it, for `GET /api/topic` (and, next, the page): each
//! partition's log start and end offsets and records/s in, and every consumer group reading the
//! topic — cashflow's own and foreign ones — with its state, members and their partitions,
//! committed offsets and lag. Asked of the broker about once a second; the task owns the view
//! and publishes it through a `watch`, so readers never wait on the broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cashflow_shared::api::{
    GroupView, LAG_HISTORY, MAX_GROUPS_SHOWN, MemberView, PartitionOffsets, TopicView,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::groups::GroupInfo;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::kafka::ffi::list_offsets;
use crate::kafka::{Context, base_config};
use crate::state::Shared;

const EVERY: Duration = Duration::from_secs(1);
/// How often the view is refreshed while nobody watches it (no page open, no one reading
/// `/api/topic` or `/metrics`): an idle demo asks the broker little.
const UNWATCHED_EVERY: Duration = Duration::from_secs(5);
/// A reader of `/api/topic` or `/metrics` keeps the view fresh this long.
const ASKED_HOLDS: Duration = Duration::from_secs(10);
/// Up to this many groups on the broker, each refresh lists and describes them all in two
/// requests (fewer than describing the known ones one by one).
const LIST_ALL_UP_TO: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(3);
/// Unknown groups asked about per refresh, and how long an answer "not on this topic" holds.
const PROBES: usize = 4;
const PROBE_AGAIN: Duration = Duration::from_secs(15);
/// How often every group on the broker is listed (new groups appear within this).
const LIST_EVERY: Duration = Duration::from_secs(5);

/// The view's readers' end.
pub type TopicViews = watch::Receiver<Arc<TopicView>>;

/// Whether anyone watches the view: the page's viewers (counted by the hub), or a reader of
/// `/api/topic` or `/metrics` lately. Unwatched, it is refreshed every `UNWATCHED_EVERY`.
#[derive(Clone)]
pub struct Demand {
    viewers: Arc<dyn Fn() -> usize + Send + Sync>,
    /// When the view was last read over HTTP (ms since the epoch).
    asked_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl Demand {
    pub fn new(viewers: impl Fn() -> usize + Send + Sync + 'static) -> Demand {
        Demand {
            viewers: Arc::new(viewers),
            asked_ms: Arc::default(),
        }
    }

    /// Someone read the view over HTTP: keep it fresh for a while.
    pub fn asked(&self) {
        self.asked_ms
            .store(crate::state::now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    fn watched(&self) -> bool {
        let since =
            crate::state::now_ms() - self.asked_ms.load(std::sync::atomic::Ordering::Relaxed);
        (self.viewers)() > 0 || since < ASKED_HOLDS.as_millis() as i64
    }
}

/// Blocking clients: one to ask about the topic and list groups, and one per group (kept, at
/// most [`MAX_GROUPS_SHOWN`]) to fetch its committed offsets without joining it.
struct Asker {
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
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
    fn ask(&mut self) -> Result<TopicView, KafkaError> {
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

/// Consumer groups (name, state, members with their partitions of `topic`), owned.
fn describe(groups: &[GroupInfo], topic: &str) -> Vec<(String, String, Vec<MemberView>)> {
    groups
        .iter()
        // Not a consumer group (e.g. Kafka Connect's): no offsets on the topic to show.
        .filter(|g| matches!(g.protocol_type(), "consumer" | ""))
        .map(|g| {
            let members = g
                .members()
                .iter()
                .map(|m| MemberView {
                    member_id: m.id().to_owned(),
                    client_id: m.client_id().to_owned(),
                    host: m.client_host().to_owned(),
                    partitions: m
                        .assignment()
                        .and_then(cashflow_shared::assignment::parse)
                        .and_then(|mut a| a.remove(topic))
                        .map(|mut p| {
                            p.sort_unstable();
                            p
                        })
                        .unwrap_or_default(),
                })
                .collect();
            (g.name().to_owned(), g.state().to_owned(), members)
        })
        .collect()
}

/// The offsets `consumer`'s group committed on `topic` (none if it cannot say).
fn committed_on(
    consumer: &BaseConsumer<Context>,
    tpl: &TopicPartitionList,
    topic: &str,
) -> BTreeMap<i32, i64> {
    match consumer.committed_offsets(tpl.clone(), TIMEOUT) {
        Ok(c) => c
            .elements_for_topic(topic)
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// Creates the view's channel: the sender for [`run`], the receiver for readers.
pub fn channel() -> (watch::Sender<Arc<TopicView>>, TopicViews) {
    watch::channel(Arc::new(TopicView::default()))
}

/// Asks the broker about once a second until `token` is cancelled, once the topic is `ready`.
pub async fn run(
    settings: Settings,
    brokers: String,
    shared: Arc<Shared>,
    mut ready: watch::Receiver<bool>,
    view: watch::Sender<Arc<TopicView>>,
    demand: Demand,
    token: CancellationToken,
) -> anyhow::Result<()> {
    if !crate::kafka::topics::until_ready(&mut ready, &token).await {
        return Ok(());
    }
    let mut asker = Asker {
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
    };
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut asked: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        if !demand.watched() && asked.is_some_and(|t| t.elapsed() < UNWATCHED_EVERY) {
            continue;
        }
        asked = Some(Instant::now());
        let (back, result) = tokio::task::spawn_blocking(move || {
            let r = asker.ask();
            (asker, r)
        })
        .await?;
        asker = back;
        match result {
            Ok(mut v) => {
                v.calculator = asker.shared.group().status();
                v.latency = asker.shared.group().latency();
                v.invariant = asker.shared.invariant();
                v.ordering = asker.shared.ledger().ordering();
                v.keys = asker
                    .shared
                    .producer()
                    .generator()
                    .map(|g| g.keys)
                    .unwrap_or_default();
                v.replay = asker.shared.lessons().replay().get();
                v.naive = asker.shared.lessons().naive().get();
                view.send_replace(Arc::new(v));
            }
            Err(e) => view.send_modify(|v| {
                let mut stale = (**v).clone();
                stale.error = Some(e.to_string());
                *v = Arc::new(stale);
            }),
        }
    }
}
