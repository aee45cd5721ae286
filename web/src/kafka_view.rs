//! Kafka made visible: the topic's partitions as the broker reports them (log start, end,
//! records/s, who owns each, the calculator's lag on it), every consumer group reading the
//! topic with its lag over time, and the balance calculator's members with the presenter's
//! controls and the rebalance timeline. Everything here comes from the broker or from the
//! members' own callbacks, never from a simulation.

use cashflow_shared::AccountId;
use cashflow_shared::api::GroupView;
use cashflow_shared::command::Command;
use cashflow_shared::dashboard::{Dashboard, clock, series_style, sparkline_points};
use cashflow_shared::group::Rebalance;
use cashflow_shared::invariant::InvariantState;
use cashflow_shared::ordering::KeyStrategy;
use leptos::prelude::*;

use crate::socket::Ctx;

/// Rebalances listed at most (the newest).
const TIMELINE_SHOWN: usize = 5;

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

/// The topic's partitions as lanes: offsets from log start to end, the calculator's committed
/// offset on each, its lag, its owner; above them the ordering and the invariant, below the
/// replicas and the followed account's path. Each part is a component of its own, redrawn when
/// its own memo changes.
#[component]
pub fn TopicPanel() -> impl IntoView {
    let waiting = expect_context::<Ctx>().select(|d| d.partitions.is_empty());
    move || {
        if waiting.get() {
            return view! { <p class="empty">"Waiting for the topic."</p> }.into_any();
        }
        view! {
            <OrderingLine/>
            <InvariantLine/>
            <div class="lanehead"><span>"part."</span><span>"offsets (log start → end), ▏ committed by the calculator"</span>
                <span>"end"</span><span>"in"</span><span>"lag"</span><span>"owner"</span></div>
            <Lanes/>
            <Replication/>
            <FollowPath/>
        }
        .into_any()
    }
}

/// How many records were applied out of order, and what the keys in force do.
#[component]
fn OrderingLine() -> impl IntoView {
    let ordering = expect_context::<Ctx>().select(|d| (d.counters.ordering, keys_of(d)));
    move || {
        let (ord, keys) = ordering.get();
        let class = if ord.violations > 0 {
            "ordering bad"
        } else {
            "ordering"
        };
        // The count (since the topic began) and what the keys in force do, as two
        // sentences: one line read "38 applied after a later one … applied in order".
        let text = format!(
            "Keys now: {}. Out of order so far: {}.",
            keys.label(),
            match (ord.violations, ord.worst) {
                (0, _) => "none".to_owned(),
                (n, Some((a, w))) => format!(
                    "{n} transaction{} applied after a later one of the same account ({} account{}; account {a}: {w})",
                    if n == 1 { "" } else { "s" },
                    ord.accounts,
                    if ord.accounts == 1 { "" } else { "s" }
                ),
                (n, None) => format!("{n}"),
            },
        );
        view! {
            <p class=class data-testid="ordering" data-violations=ord.violations data-keys=keys.name()>{text}</p>
            <p class="legend" data-testid="keys-explain">{keys.explain()}</p>
        }
    }
}

/// The producer's acknowledged records against what the calculator applied.
#[component]
fn InvariantLine() -> impl IntoView {
    let inv = expect_context::<Ctx>().select(|d| d.counters.invariant);
    move || {
        let inv = inv.get();
        let class = match inv.state {
            InvariantState::Holds => "invariant ok",
            InvariantState::Broken => "invariant bad",
            _ => "invariant",
        };
        let foreign = if inv.foreign_records > 0 {
            format!(
                " · {} records from other producers counted apart",
                inv.foreign_records
            )
        } else {
            String::new()
        };
        view! {
            <p class=class data-testid="invariant" data-state=format!("{:?}", inv.state)
                title="Per account, the net Kafka acknowledged to this server's producer (delivery reports) against the net the balance calculator applied from that producer's records">
                {format!("Producer → calculator: {}{foreign}", inv.describe())}</p>
        }
    }
}

/// One partition's lane as drawn. The lanes are keyed by it: a frame makes again only the
/// lanes whose figures changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Lane {
    partition: i32,
    records: i64,
    owned: bool,
    start: i64,
    end: i64,
    rate: String,
    leader: i32,
    isr: String,
    under: bool,
    cluster: bool,
    committed: Option<i64>,
    lag: Option<i64>,
    owner: Option<u32>,
    fill: String,
    mark: Option<String>,
    followed: Option<AccountId>,
}

fn lanes_of(d: &Dashboard, follow: Option<AccountId>) -> Vec<Lane> {
    let offsets = d
        .topic_view
        .as_ref()
        .map(|v| v.partitions.as_slice())
        .unwrap_or_default();
    let calc = calculator_view(d);
    let max_end = offsets.iter().map(|p| p.end).max().unwrap_or(0).max(1);
    // Leaders and in-sync replicas are worth showing on a cluster only.
    let cluster = d.topic_view.as_ref().is_some_and(|v| v.brokers.len() > 1);
    let followed = follow.and_then(|a| {
        keys_of(d)
            .partition_of(a, d.partitions.len() as u32)
            .map(|p| (a, p))
    });
    d.partitions
        .iter()
        .map(|p| {
            let o = offsets.iter().find(|o| o.partition == p.partition);
            let (start, end, rate) =
                o.map_or((0, 0, 0.0), |o| (o.log_start, o.end, o.records_per_second));
            let committed = calc.and_then(|g| g.committed.get(&p.partition).copied());
            Lane {
                partition: p.partition,
                records: p.records,
                owned: p.owned,
                start,
                end,
                rate: format!("{rate:.0}"),
                leader: o.map_or(-1, |o| o.leader),
                isr: o
                    .map(|o| {
                        o.isr
                            .iter()
                            .map(|b| b.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
                under: o.is_some_and(|o| o.isr.len() < o.replicas.len()),
                cluster,
                committed,
                lag: calc.and_then(|g| g.lag.get(&p.partition).copied()),
                owner: d.group.owner(p.partition),
                fill: format!("width: {:.1}%", end as f64 * 100.0 / max_end as f64),
                mark: committed.map(|c| format!("left: {:.1}%", c as f64 * 100.0 / max_end as f64)),
                followed: followed
                    .filter(|(_, fp)| *fp == p.partition)
                    .map(|(a, _)| a),
            }
        })
        .collect()
}

fn lane_view(l: Lane) -> impl IntoView {
    let Lane {
        partition,
        start,
        end,
        ref rate,
        leader,
        ref isr,
        committed,
        lag,
        owner,
        ..
    } = l;
    let colour = l
        .followed
        .map(|a| format!("outline-color: {}", series_style(a).0));
    let title = format!(
        "partition {partition}: offsets {start}–{end} in the log, {rate} records/s in; the balance calculator committed {}, lag {}; owned by {}",
        committed.map_or("nothing yet".into(), |c| c.to_string()),
        lag.map_or("?".into(), |l| l.to_string()),
        member_name(owner)
    );
    view! {
        <li class:owned=l.owned class:followed=l.followed.is_some() style=colour
            data-testid=format!("partition-{partition}") data-value=l.records
            data-owned=l.owned.to_string() data-end=end data-lag=lag.unwrap_or(-1)
            data-member=owner.unwrap_or(0) data-leader=leader data-isr=isr.clone() title=title>
            <span class="pname">{format!("p{partition}")}
                {l.cluster.then(|| view! {
                    <small class="leader" class:under=l.under
                        title=format!("leader: broker {leader}; in-sync replicas: {isr}")>
                        {if leader < 0 { "no leader".to_owned() } else { format!("L{leader} {{{isr}}}") }}</small>
                })}</span>
            <span class="lane"><span class="end" style=l.fill.clone()></span>
                {l.mark.clone().map(|m| view! { <span class="committed" style=m></span> })}</span>
            <span class="pnum">{end}</span>
            <span class="pnum">{format!("{rate}/s")}</span>
            <span class="pnum" class:lagging=lag.is_some_and(|l| l > 0)>{lag.map_or("–".into(), |l| l.to_string())}</span>
            <span class="owner">{owner.map_or_else(|| "–".to_owned(), |m| format!("M{m}"))}
                {l.followed.map(|a| format!(" ★{a}"))}</span>
        </li>
    }
}

#[component]
fn Lanes() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let lanes = ctx.select(move |d| lanes_of(d, ctx.highlighted()));
    view! {
        <ol class="lanes">
            <For each=move || lanes.get() key=|l| l.clone() children=lane_view/>
        </ol>
    }
}

/// On a cluster: the brokers, the partitions each leads, the under-replicated ones.
#[component]
fn Replication() -> impl IntoView {
    let text = expect_context::<Ctx>().select(|d| {
        let v = d.topic_view.as_ref().filter(|v| v.brokers.len() > 1)?;
        let led = |b: i32| v.partitions.iter().filter(|o| o.leader == b).count();
        let under = v.partitions.iter().filter(|o| o.isr.len() < o.replicas.len()).count();
        Some(format!(
            "Brokers {} · partitions led: {} · {under} under-replicated (fewer in-sync replicas than replicas)",
            v.brokers.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", "),
            v.brokers.iter().map(|b| format!("b{b} ×{}", led(*b))).collect::<Vec<_>>().join(", "),
        ))
    });
    move || {
        text.get()
            .map(|r| view! { <p class="legend" data-testid="replication">{r}</p> })
    }
}

/// The followed account's path (key → partition → member), or how to follow one.
#[component]
fn FollowPath() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let path = ctx.select(move |d| ctx.highlighted().and_then(|a| account_path(d, a)));
    view! {
        <p class="legend" data-testid="follow">{move || path.get().unwrap_or_else(|| {
            "Lag = end offset − committed offset: records written that the group has not yet processed. \
             Point at (or tap) an account's bar to follow its key to a partition and a member.".to_owned()
        })}</p>
    }
}

/// A small line of a group's total lag over the last minute.
fn lag_sparkline(history: &[i64]) -> impl IntoView + use<> {
    let values: Vec<f64> = history.iter().map(|v| *v as f64).collect();
    let points = sparkline_points(&values, 120.0, 24.0);
    view! {
        <svg class="lagspark" viewBox="0 0 120 24" preserveAspectRatio="none" aria-label="total lag over the last minute">
            <polyline points=points fill="none" stroke="#D55E00" stroke-width="2"/>
        </svg>
    }
}

/// One group's row as drawn (keyed by it: a row is made again only when it changed).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupRow {
    group: String,
    ours: bool,
    state: String,
    members: usize,
    total_lag: i64,
    lag_history: Vec<i64>,
}

fn group_row(g: GroupRow) -> impl IntoView {
    let members = match g.members {
        0 => "no members".to_owned(),
        1 => "1 member".to_owned(),
        n => format!("{n} members"),
    };
    view! {
        <li data-testid=format!("group-{}", g.group) data-lag=g.total_lag data-members=g.members class:ours=g.ours>
            <span class="gname" title=g.group.clone()>{if g.ours { "balance calculator".to_owned() } else { g.group.clone() }}
                <span class="gstate">{format!("{} · {members}", g.state)}</span></span>
            <span class="pnum">{format!("lag {}", g.total_lag)}</span>
            {lag_sparkline(&g.lag_history)}
        </li>
    }
}

/// Every consumer group reading the topic, as the broker lists them.
#[component]
pub fn GroupsPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let asked = ctx.select(|d| d.topic_view.is_some());
    let rows = ctx.select(|d| {
        let Some(v) = &d.topic_view else {
            return Vec::new();
        };
        v.groups
            .iter()
            .map(|g| GroupRow {
                group: g.group.clone(),
                ours: g.group == d.group.group,
                state: g.state.clone(),
                members: g.members.len(),
                total_lag: g.total_lag,
                lag_history: g.lag_history.clone(),
            })
            .collect::<Vec<_>>()
    });
    let error = ctx.select(|d| d.topic_view.as_ref().and_then(|v| v.error.clone()));
    move || {
        if !asked.get() {
            return view! { <p class="empty">"Asking the broker…"</p> }.into_any();
        }
        view! {
            <ol class="groups"><For each=move || rows.get() key=|g| g.clone() children=group_row/></ol>
            {move || error.get().map(|e| view! { <p class="reason">{format!("the broker did not answer: {e}")}</p> })}
            <p class="legend">"Start any consumer on this topic (e.g. kafka-console-consumer --group mine) and its group appears here."</p>
        }
        .into_any()
    }
}

fn describe_rebalance(r: &Rebalance) -> String {
    let moved: Vec<String> = r
        .moves
        .iter()
        .map(|m| {
            format!(
                "p{} {} → {}",
                m.partition,
                member_name(m.from),
                member_name(m.to)
            )
        })
        .collect();
    let moved = if moved.len() > 6 {
        format!("{} partitions", moved.len())
    } else {
        moved.join(", ")
    };
    let when = clock(r.started_ms);
    let fresh = r.moves.iter().all(|m| m.from.is_none());
    match r.ended_ms {
        Some(_) if fresh => format!("{when} {}: {moved}", r.cause),
        Some(_) => format!(
            "{when} {}: {moved}; processing stood still {:.1} s",
            r.cause,
            r.paused_ms as f64 / 1000.0
        ),
        None => format!("{when} {}: {moved} (in progress)", r.cause),
    }
}

/// The balance calculator's members, the presenter's buttons and the rebalance timeline.
#[component]
pub fn MembersPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let off = move || !ctx.can_command();
    let counts = ctx.select(|d| (d.group.members.len(), d.partitions.len()));
    let paused = ctx.select(|d| d.group.paused);
    let send = move |c: Command| {
        ctx.send(c);
    };
    let full = move || counts.with(|(members, partitions)| *members >= (*partitions).max(1));
    let alone = move || counts.with(|(members, _)| *members <= 1);
    let state = move || {
        if paused.get() {
            "Consuming paused: the members stay in the group, fetching stopped, so lag grows."
        } else {
            "Each member is its own Kafka consumer in one group; the broker gives each partition to exactly one."
        }
    };
    view! {
        <div class="members">
            <div class="row presenter-only">
                <button data-testid="add-member" disabled=move || off() || full()
                    on:click=move |_| send(Command::AddMember)>"Add member"</button>
                <button data-testid="remove-member" disabled=move || off() || alone()
                    on:click=move |_| send(Command::RemoveMember)>"Remove member"</button>
                {move || if paused.get() {
                    view! { <button data-testid="resume-consumption" disabled=off on:click=move |_| send(Command::ResumeConsumption)>"Resume consuming"</button> }.into_any()
                } else {
                    view! { <button data-testid="pause-consumption" disabled=off on:click=move |_| send(Command::PauseConsumption)>"Pause consuming"</button> }.into_any()
                }}
            </div>
            <p class="legend" data-testid="members-state">{state}</p>
            <MemberList/>
            <h3>"Rebalances, newest first"</h3>
            <Timeline/>
        </div>
    }
}

/// Each member, its partitions and its records (keyed by them: a member's row is made again
/// only when it changed).
#[component]
fn MemberList() -> impl IntoView {
    let members = expect_context::<Ctx>().select(|d| d.group.members.clone());
    view! {
        <ol class="memberlist">
            <For each=move || members.get() key=|m| m.clone() children=|m| {
                let parts = m.partitions.iter().map(|p| format!("p{p}")).collect::<Vec<_>>().join(" ");
                let list = m.partitions.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
                let id = if m.member_id.is_empty() { "(joining)" } else { m.member_id.as_str() };
                let title = format!("Kafka member id {id}");
                view! {
                    <li data-testid=format!("member-{}", m.member) data-partitions=list title=title>
                        <b>{format!("M{}", m.member)}</b>" "{if parts.is_empty() { "no partitions".to_owned() } else { parts }}
                        <span class="pnum">{format!("{} records", m.records)}</span>
                    </li>
                }
            }/>
        </ol>
    }
}

/// The newest rebalances, each as a sentence.
#[component]
fn Timeline() -> impl IntoView {
    let entries = expect_context::<Ctx>().select(|d| {
        d.group
            .rebalances
            .iter()
            .rev()
            .take(TIMELINE_SHOWN)
            .map(|r| (r.cause.clone(), describe_rebalance(r)))
            .collect::<Vec<_>>()
    });
    move || {
        let items = entries
            .get()
            .into_iter()
            .map(|(cause, text)| view! { <li data-testid="rebalance" data-cause=cause>{text}</li> })
            .collect_view();
        view! { <ol class="timeline">{items}</ol> }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn clock_and_rebalance_text() {
        let r = Rebalance {
            started_ms: 0,
            ended_ms: Some(1_500),
            cause: "member 2 added".into(),
            moves: vec![cashflow_shared::group::Move {
                partition: 3,
                from: Some(1),
                to: Some(2),
                paused_ms: 1_500,
            }],
            paused_ms: 1_500,
        };
        assert_eq!(
            describe_rebalance(&r),
            "00:00:00 member 2 added: p3 member 1 → member 2; processing stood still 1.5 s"
        );
    }
}
