//! Kafka made visible: the topic's partitions as the broker reports them (log start, end,
//! records/s, who owns each, the calculator's lag on it), every consumer group reading the
//! topic with its lag over time, and the balance calculator's members with the presenter's
//! controls and the rebalance timeline. Everything here comes from the broker or from the
//! members' own callbacks, never from a simulation.

use cashflow_shared::AccountId;
use cashflow_shared::api::GroupView;
use cashflow_shared::command::Command;
use cashflow_shared::dashboard::{Dashboard, clock, series_style, sparkline_points};
use cashflow_shared::group::{GroupStatus, Rebalance};
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
/// offset on each, its lag, its owner.
#[component]
pub fn TopicPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    move || {
        ctx.version.get();
        let follow = ctx.highlighted();
        ctx.dash.with_value(|d| {
            if d.partitions.is_empty() {
                return view! { <p class="empty">"Waiting for the topic."</p> }.into_any();
            }
            let offsets = d.topic_view.as_ref().map(|v| v.partitions.clone()).unwrap_or_default();
            let calc = calculator_view(d);
            let max_end = offsets.iter().map(|p| p.end).max().unwrap_or(0).max(1);
            let brokers = d.topic_view.as_ref().map(|v| v.brokers.clone()).unwrap_or_default();
            // Leaders and in-sync replicas are worth showing on a cluster only.
            let cluster = brokers.len() > 1;
            let replication = cluster.then(|| {
                let led = |b: i32| offsets.iter().filter(|o| o.leader == b).count();
                let under = offsets.iter().filter(|o| o.isr.len() < o.replicas.len()).count();
                format!(
                    "Brokers {} · partitions led: {} · {under} under-replicated (fewer in-sync replicas than replicas)",
                    brokers.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", "),
                    brokers.iter().map(|b| format!("b{b} ×{}", led(*b))).collect::<Vec<_>>().join(", "),
                )
            });
            let followed = follow.and_then(|a| {
                keys_of(d).partition_of(a, d.partitions.len() as u32).map(|p| (a, p))
            });
            let rows = d
                .partitions
                .iter()
                .map(|p| {
                    let o = offsets.iter().find(|o| o.partition == p.partition);
                    let (start, end, rate) = o.map_or((0, 0, 0.0), |o| (o.log_start, o.end, o.records_per_second));
                    let (leader, isr) = o.map_or((-1, String::new()), |o| {
                        (o.leader, o.isr.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(","))
                    });
                    let under = o.is_some_and(|o| o.isr.len() < o.replicas.len());
                    let committed = calc.and_then(|g| g.committed.get(&p.partition).copied());
                    let lag = calc.and_then(|g| g.lag.get(&p.partition).copied());
                    let owner = d.group.owner(p.partition);
                    let fill = format!("width: {:.1}%", end as f64 * 100.0 / max_end as f64);
                    let mark = committed.map(|c| format!("left: {:.1}%", c as f64 * 100.0 / max_end as f64));
                    let here = followed.filter(|(_, fp)| *fp == p.partition).map(|(a, _)| a);
                    let colour = here.map(|a| format!("outline-color: {}", series_style(a).0));
                    view! {
                        <li class:owned=p.owned class:followed=here.is_some() style=colour
                            data-testid=format!("partition-{}", p.partition) data-value=p.records
                            data-owned=p.owned.to_string() data-end=end data-lag=lag.unwrap_or(-1)
                            data-member=owner.unwrap_or(0) data-leader=leader data-isr=isr.clone()
                            title=format!("partition {}: offsets {start}–{end} in the log, {rate:.0} records/s in; the balance calculator committed {}, lag {}; owned by {}",
                                p.partition, committed.map_or("nothing yet".into(), |c| c.to_string()),
                                lag.map_or("?".into(), |l| l.to_string()), member_name(owner))>
                            <span class="pname">{format!("p{}", p.partition)}
                                {cluster.then(|| view! {
                                    <small class="leader" class:under=under
                                        title=format!("leader: broker {leader}; in-sync replicas: {isr}")>
                                        {if leader < 0 { "no leader".to_owned() } else { format!("L{leader} {{{isr}}}") }}</small>
                                })}</span>
                            <span class="lane"><span class="end" style=fill></span>
                                {mark.map(|m| view! { <span class="committed" style=m></span> })}</span>
                            <span class="pnum">{end}</span>
                            <span class="pnum">{format!("{rate:.0}/s")}</span>
                            <span class="pnum" class:lagging=lag.is_some_and(|l| l > 0)>{lag.map_or("–".into(), |l| l.to_string())}</span>
                            <span class="owner">{owner.map_or_else(|| "–".to_owned(), |m| format!("M{m}"))}
                                {here.map(|a| format!(" ★{a}"))}</span>
                        </li>
                    }
                })
                .collect_view();
            let path = follow.and_then(|a| account_path(d, a));
            let inv = d.counters.invariant;
            let inv_class = match inv.state {
                InvariantState::Holds => "invariant ok",
                InvariantState::Broken => "invariant bad",
                _ => "invariant",
            };
            let foreign = if inv.foreign_records > 0 {
                format!(" · {} records from other producers counted apart", inv.foreign_records)
            } else {
                String::new()
            };
            let ord = d.counters.ordering;
            let keys = keys_of(d);
            let ord_class = if ord.violations > 0 { "ordering bad" } else { "ordering" };
            // The count (since the topic began) and what the keys in force do, as two
            // sentences: one line read "38 applied after a later one … applied in order".
            let ord_text = format!(
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
            let ord_explain = keys.explain();
            view! {
                <p class=ord_class data-testid="ordering" data-violations=ord.violations data-keys=keys.name()>{ord_text}</p>
                <p class="legend" data-testid="keys-explain">{ord_explain}</p>
                <p class=inv_class data-testid="invariant" data-state=format!("{:?}", inv.state)
                    title="Per account, the net Kafka acknowledged to this server's producer (delivery reports) against the net the balance calculator applied from that producer's records">
                    {format!("Producer → calculator: {}{foreign}", inv.describe())}</p>
                <div class="lanehead"><span>"part."</span><span>"offsets (log start → end), ▏ committed by the calculator"</span>
                    <span>"end"</span><span>"in"</span><span>"lag"</span><span>"owner"</span></div>
                <ol class="lanes">{rows}</ol>
                {replication.map(|r| view! { <p class="legend" data-testid="replication">{r}</p> })}
                <p class="legend" data-testid="follow">{path.unwrap_or_else(|| {
                    "Lag = end offset − committed offset: records written that the group has not yet processed. \
                     Point at (or tap) an account's bar to follow its key to a partition and a member.".to_owned()
                })}</p>
            }
            .into_any()
        })
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

/// Every consumer group reading the topic, as the broker lists them.
#[component]
pub fn GroupsPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    move || {
        ctx.version.get();
        ctx.dash.with_value(|d| {
            let Some(v) = &d.topic_view else {
                return view! { <p class="empty">"Asking the broker…"</p> }.into_any();
            };
            let rows = v
                .groups
                .iter()
                .map(|g| {
                    let ours = g.group == d.group.group;
                    let members = if g.members.is_empty() { "no members".to_owned() } else { format!("{} member{}", g.members.len(), if g.members.len() == 1 { "" } else { "s" }) };
                    view! {
                        <li data-testid=format!("group-{}", g.group) data-lag=g.total_lag data-members=g.members.len() class:ours=ours>
                            <span class="gname" title=g.group.clone()>{if ours { "balance calculator".to_owned() } else { g.group.clone() }}
                                <span class="gstate">{format!("{} · {members}", g.state)}</span></span>
                            <span class="pnum">{format!("lag {}", g.total_lag)}</span>
                            {lag_sparkline(&g.lag_history)}
                        </li>
                    }
                })
                .collect_view();
            let error = v.error.clone().map(|e| view! { <p class="reason">{format!("the broker did not answer: {e}")}</p> });
            view! {
                <ol class="groups">{rows}</ol>
                {error}
                <p class="legend">"Start any consumer on this topic (e.g. kafka-console-consumer --group mine) and its group appears here."</p>
            }
            .into_any()
        })
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
    let group = move || {
        ctx.version.get();
        ctx.dash.with_value(|d| d.group.clone())
    };
    let partitions = move || {
        ctx.version.get();
        ctx.dash.with_value(|d| d.partitions.len())
    };
    let send = move |c: Command| {
        ctx.send(c);
    };
    let full = move || group().members.len() >= partitions().max(1);
    let alone = move || group().members.len() <= 1;
    view! {
        <div class="members">
            <div class="row presenter-only">
                <button data-testid="add-member" disabled=move || off() || full()
                    on:click=move |_| send(Command::AddMember)>"Add member"</button>
                <button data-testid="remove-member" disabled=move || off() || alone()
                    on:click=move |_| send(Command::RemoveMember)>"Remove member"</button>
                {move || if group().paused {
                    view! { <button data-testid="resume-consumption" disabled=off on:click=move |_| send(Command::ResumeConsumption)>"Resume consuming"</button> }.into_any()
                } else {
                    view! { <button data-testid="pause-consumption" disabled=off on:click=move |_| send(Command::PauseConsumption)>"Pause consuming"</button> }.into_any()
                }}
            </div>
            {move || members_list(&group())}
        </div>
    }
}

fn members_list(g: &GroupStatus) -> impl IntoView + use<> {
    let members = g
        .members
        .iter()
        .map(|m| {
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
        })
        .collect_view();
    let timeline = g
        .rebalances
        .iter()
        .rev()
        .take(TIMELINE_SHOWN)
        .map(|r| view! { <li data-testid="rebalance" data-cause=r.cause.clone()>{describe_rebalance(r)}</li> })
        .collect_view();
    let state = if g.paused {
        "Consuming paused: the members stay in the group, fetching stopped, so lag grows."
    } else {
        "Each member is its own Kafka consumer in one group; the broker gives each partition to exactly one."
    };
    view! {
        <p class="legend" data-testid="members-state">{state}</p>
        <ol class="memberlist">{members}</ol>
        <h3>"Rebalances, newest first"</h3>
        <ol class="timeline">{timeline}</ol>
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
