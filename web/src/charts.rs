//! SVG charts. Each reads the dashboard when `version` changes (at most once per frame) and
//! draws a bounded number of elements: at most 300 points per line, 100 bars.

use cashflow_shared::dashboard::{
    Scale, format_money, history_range, line_points, money_label, series_style, sparkline_points,
};
use leptos::prelude::*;

use crate::socket::Ctx;

const LINE_W: f64 = 820.0;
const LINE_H: f64 = 330.0;
const MAX_POINTS: usize = 300;
const MAX_BARS: usize = 100;

#[component]
pub fn Counters() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let card = move |label: &'static str,
                     testid: &'static str,
                     value: Box<dyn Fn() -> String + Send + Sync>| {
        view! { <div class="card"><div class="value" data-testid=testid>{move || { ctx.version.get(); value() }}</div><div class="label">{label}</div></div> }
    };
    let c = move || ctx.dash.with_value(|d| d.counters);
    view! {
        <div class="counters">
            <div class="card tps">
                <div class="value" data-testid="tps">{move || { ctx.version.get(); format!("{:.1}", c().applied_per_second) }}</div>
                <div class="label">"transactions / s"</div>
                <Sparkline/>
            </div>
            // What each counts: the calculator's counters live in its state store (all of this
            // topic's records, across restarts); the producer's are this server's run.
            {card("applied by the calculator · the whole topic", "applied", Box::new(move || c().ledger.applied.to_string()))}
            {card("delivered to Kafka · since this server started", "delivered", Box::new(move || c().delivered.to_string()))}
            {card("bad records → dead-letter topic", "malformed", Box::new(move || match c().ledger.dead_letter_failed {
                0 => c().malformed.to_string(),
                failed => format!("{} ({failed} not written)", c().malformed),
            }))}
            <div class="card">
                <div class="value" data-testid="accounts">{move || { ctx.version.get(); c().totals.accounts.to_string() }}</div>
                <div class="label">{move || {
                    ctx.version.get();
                    match c().totals.balance {
                        Some(b) => format!("accounts · {} in all", format_money(b)),
                        None => "accounts · total too large to show".to_owned(),
                    }
                }}</div>
            </div>
            <div class="card">
                <div class="value" data-testid="mismatches">{move || { ctx.version.get(); c().ledger.mismatches.to_string() }}</div>
                <div class="label" data-testid="skipped">{move || { ctx.version.get(); {
                    let l = c().ledger;
                    format!("producer balance mismatches · {} unchecked · {} replays skipped", l.unchecked, l.replayed)
                } }}</div>
            </div>
            // The unit in the label: "ms" alone on a second line was what a narrow card showed.
            {card("ms, produce → applied, p50 / p99 over 10 s", "latency", Box::new(move || {
                let l = c().latency;
                match (l.p50_ms, l.p99_ms) {
                    (Some(a), Some(b)) => format!("{a} / {b}"),
                    _ => "–".to_owned(),
                }
            }))}
        </div>
    }
}

#[component]
fn Sparkline() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let points = move || {
        ctx.history_version.get();
        ctx.dash.with_value(|d| {
            let n = d.history.len().min(120);
            let tail: Vec<f64> = d
                .history
                .iter()
                .skip(d.history.len() - n)
                .map(|s| s.applied_per_second)
                .collect();
            sparkline_points(&tail, 200.0, 40.0)
        })
    };
    view! {
        <svg class="spark" viewBox="0 0 200 40" preserveAspectRatio="none" aria-label="transactions per second, last 2 minutes">
            <polyline points=points fill="none" stroke="#0072B2" stroke-width="2"/>
        </svg>
    }
}

#[component]
pub fn LineChart() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    move || {
        ctx.history_version.get();
        // The followed account's line is drawn thicker (its path across the page).
        let follow = ctx.highlighted();
        ctx.dash.with_value(|d| {
            let Some((lo, hi)) = history_range(&d.history) else {
                return view! { <p class="empty">"Waiting for the first second of data…"</p> }.into_any();
            };
            let scale = Scale::nice(lo, hi, 5);
            let grid = scale
                .ticks()
                .map(|v| {
                    let y = scale.y(v, LINE_H);
                    view! {
                        <line x1="0" x2=LINE_W y1=y y2=y class="grid"/>
                        <text x="-8" y=y + 4.0 class="axis" text-anchor="end">{money_label(v)}</text>
                    }
                })
                .collect_view();
            let span_s = match (d.history.front(), d.history.back()) {
                (Some(a), Some(b)) => (b.t_ms - a.t_ms) as f64 / 1000.0,
                _ => 0.0,
            };
            let n = d.charted_accounts();
            let lines = (0..n)
                .filter_map(|i| {
                    let pts = line_points(&d.history, i, &scale, LINE_W, LINE_H, MAX_POINTS)?;
                    let (colour, dash) = series_style(i as u32 + 1);
                    let width = if follow == Some(i as u32 + 1) { "5" } else { "2" };
                    Some(view! { <polyline points=pts fill="none" stroke=colour stroke-dasharray=dash stroke-width=width><title>{format!("account {}", i + 1)}</title></polyline> })
                })
                .collect_view();
            let legend = (n <= 16).then(|| {
                (1..=n as u32)
                    .map(|a| {
                        let (colour, dash) = series_style(a);
                        view! { <span class="chip"><svg width="22" height="10"><line x1="0" x2="22" y1="5" y2="5" stroke=colour stroke-dasharray=dash stroke-width="3"/></svg>{a}</span> }
                    })
                    .collect_view()
            });
            view! {
                <svg class="chart" viewBox=format!("0 0 {} {}", LINE_W + 80.0, LINE_H + 30.0) role="img" aria-label="balance of each account over time">
                    <g transform="translate(70,8)">
                        {grid}
                        {lines}
                        <text x="0" y=LINE_H + 20.0 class="axis">{format!("−{}", fmt_span(span_s))}</text>
                        <text x=LINE_W y=LINE_H + 20.0 class="axis" text-anchor="end">"now"</text>
                    </g>
                </svg>
                <div class="legend">{legend}{(n > 16).then(|| format!("{n} accounts charted"))}</div>
            }
            .into_any()
        })
    }
}

fn fmt_span(s: f64) -> String {
    if s >= 90.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

/// Bars for up to [`MAX_BARS`] accounts; `value` picks what is drawn, in minor units or counts.
fn bars(
    ctx: Ctx,
    kind: &'static str,
    value: fn(&cashflow_shared::api::AccountBalance) -> i64,
    label: fn(i64) -> String,
) -> impl IntoView {
    move || {
        ctx.version.get();
        ctx.dash.with_value(|d| {
            if d.accounts.is_empty() {
                return view! { <p class="empty">"No transactions yet."</p> }.into_any();
            }
            let shown: Vec<_> = d.accounts.values().take(MAX_BARS).collect();
            let max = shown.iter().map(|a| value(a)).max().unwrap_or(1).max(1);
            let min = shown.iter().map(|a| value(a)).min().unwrap_or(0).min(0);
            let scale = Scale::nice(min, max, 4);
            let (w, h) = (400.0, 200.0);
            let slot = w / shown.len() as f64;
            let zero = scale.y(0, h);
            let items = shown
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let v = value(a);
                    let y = scale.y(v, h);
                    let (colour, _) = series_style(a.account);
                    let (top, height) = if y < zero { (y, zero - y) } else { (zero, y - zero) };
                    let text = label(v);
                    // Hatched-looking (faded, dashed outline) rather than a colour change alone.
                    let stale = d.is_stale(a.account);
                    let note = if stale { " (as last seen: its partition is with another member)" } else { "" };
                    let path = crate::kafka_view::account_path(d, a.account).map(|p| format!("\n{p}")).unwrap_or_default();
                    let account = a.account;
                    // Reactive on its own: pointing at a bar must not redraw (and replace) it.
                    let followed = move || ctx.highlighted() == Some(account);
                    view! {
                        <rect x=i as f64 * slot + slot * 0.1 y=top width=slot * 0.8 height=height.max(0.5) fill=colour
                              class:stale=stale class:followed=followed data-testid=format!("{kind}-{}", a.account) data-value=v data-stale=stale.to_string()
                              on:click=move |_| ctx.follow.update(|f| *f = if *f == Some(account) { None } else { Some(account) })
                              on:pointerenter=move |_| ctx.hover.set(Some(account))
                              on:pointerleave=move |_| ctx.hover.set(None)>
                            <title>{format!("account {}: {text}{note}{path}", a.account)}</title>
                        </rect>
                        {(shown.len() <= 12).then(|| view! {
                            <text x=i as f64 * slot + slot / 2.0 y=h + 14.0 class="axis" text-anchor="middle">{a.account}</text>
                            <text x=i as f64 * slot + slot / 2.0 y=top - 4.0 class="barlabel" text-anchor="middle">{text.clone()}</text>
                        })}
                    }
                })
                .collect_view();
            let total = d.counters.totals.accounts;
            let more = (total > shown.len() as u64).then(|| {
                format!("{} of {total} accounts: the generator's, then the most active", shown.len())
            });
            let stale = shown
                .iter()
                .any(|a| d.is_stale(a.account))
                .then_some("faded: as last seen, their partition is with another member of the group");
            let legend = more.into_iter().chain(stale.map(String::from)).collect::<Vec<_>>().join(" · ");
            view! {
                <svg class="chart" viewBox=format!("-10 -20 {} {}", w + 20.0, h + 40.0) role="img">{items}</svg>
                <div class="legend">{legend}</div>
            }
            .into_any()
        })
    }
}

#[component]
pub fn BalanceBars() -> impl IntoView {
    bars(
        expect_context::<Ctx>(),
        "balance",
        |a| a.balance.minor(),
        money_label,
    )
}

#[component]
pub fn CountBars() -> impl IntoView {
    bars(
        expect_context::<Ctx>(),
        "count",
        |a| a.count as i64,
        |v| v.to_string(),
    )
}
