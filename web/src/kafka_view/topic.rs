//! The topic's partitions as lanes, and the lines about ordering and the invariant above them.

use cashflow_shared::AccountId;
use cashflow_shared::dashboard::{Dashboard, series_style};
use cashflow_shared::invariant::InvariantState;
use leptos::prelude::*;

use super::{account_path, calculator_view, keys_of, member_name};
use crate::socket::Ctx;

/// The topic's partitions as lanes: offsets from log start to end, the calculator's committed
/// offset on each, its lag, its owner; above them the ordering and the invariant, below the
/// replicas and the followed account's path. Each part is a component of its own, redrawn when
/// its own part changes.
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
            {crate::list::each(lanes, |l| lane_view(l).into_any())}
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
