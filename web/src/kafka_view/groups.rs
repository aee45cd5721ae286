//! Every consumer group reading the topic, as the broker lists them, with its lag over time.

use cashflow_shared::dashboard::sparkline_points;
use leptos::prelude::*;

use crate::socket::Ctx;

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
            <ol class="groups">{crate::list::each(rows, |g| group_row(g).into_any())}</ol>
            {move || error.get().map(|e| view! { <p class="reason">{format!("the broker did not answer: {e}")}</p> })}
            <p class="legend">"Start any consumer on this topic (e.g. kafka-console-consumer --group mine) and its group appears here."</p>
        }
        .into_any()
    }
}
