//! SVG charts. Each takes what it draws as a memo ([`Ctx::select`]): the cards and bars once a
//! frame, the lines once a second (the charted history). Each draws a bounded number of
//! elements: at most 300 points per line, 100 bars.

use cashflow_shared::AccountId;
use cashflow_shared::api::AccountBalance;
use cashflow_shared::dashboard::{
    Dashboard, Scale, format_money, history_range, line_points, money_label, series_style,
    sparkline_points,
};
use cashflow_shared::protocol::Counters as Figures;
use leptos::prelude::*;

use crate::socket::Ctx;

const LINE_W: f64 = 820.0;
const LINE_H: f64 = 330.0;
const MAX_POINTS: usize = 300;
const MAX_BARS: usize = 100;

/// One card: its figure from the counters, a memo of its own so that its text is set only when
/// that figure changed.
fn card(
    c: Memo<Figures>,
    label: &'static str,
    testid: &'static str,
    value: fn(&Figures) -> String,
) -> impl IntoView {
    let text = Memo::new(move |_| c.with(value));
    view! { <div class="card"><div class="value" data-testid=testid>{move || text.get()}</div><div class="label">{label}</div></div> }
}

#[component]
pub fn Counters() -> impl IntoView {
    let c = expect_context::<Ctx>().select(|d| d.counters);
    let total = Memo::new(move |_| match c.get().totals.balance {
        Some(b) => format!("accounts · {} in all", format_money(b)),
        None => "accounts · total too large to show".to_owned(),
    });
    let skipped = Memo::new(move |_| {
        let l = c.get().ledger;
        format!(
            "producer balance mismatches · {} unchecked · {} replays skipped",
            l.unchecked, l.replayed
        )
    });
    view! {
        <div class="counters">
            <div class="card tps">
                <div class="value" data-testid="tps">{move || format!("{:.1}", c.get().applied_per_second)}</div>
                <div class="label">"transactions / s"</div>
                <Sparkline/>
            </div>
            // What each counts: the calculator's counters live in its state store (all of this
            // topic's records, across restarts); the producer's are this server's run.
            {card(c, "applied by the calculator · the whole topic", "applied", |c| c.ledger.applied.to_string())}
            {card(c, "delivered to Kafka · since this server started", "delivered", |c| c.delivered.to_string())}
            {card(c, "bad records → dead-letter topic", "malformed", |c| match c.ledger.dead_letter_failed {
                0 => c.malformed.to_string(),
                failed => format!("{} ({failed} not written)", c.malformed),
            })}
            <div class="card">
                <div class="value" data-testid="accounts">{move || c.get().totals.accounts.to_string()}</div>
                <div class="label">{move || total.get()}</div>
            </div>
            <div class="card">
                <div class="value" data-testid="mismatches">{move || c.get().ledger.mismatches.to_string()}</div>
                <div class="label" data-testid="skipped">{move || skipped.get()}</div>
            </div>
            // The unit in the label: "ms" alone on a second line was what a narrow card showed.
            {card(c, "ms, produce → applied, p50 / p99 over 10 s", "latency", |c| {
                match (c.latency.p50_ms, c.latency.p99_ms) {
                    (Some(a), Some(b)) => format!("{a} / {b}"),
                    _ => "–".to_owned(),
                }
            })}
        </div>
    }
}

#[component]
fn Sparkline() -> impl IntoView {
    let points = expect_context::<Ctx>().select_history(|d| {
        let n = d.history.len().min(120);
        let tail: Vec<f64> = d
            .history
            .iter()
            .skip(d.history.len() - n)
            .map(|s| s.applied_per_second)
            .collect();
        sparkline_points(&tail, 200.0, 40.0)
    });
    view! {
        <svg class="spark" viewBox="0 0 200 40" preserveAspectRatio="none" aria-label="transactions per second, last 2 minutes">
            <polyline points=move || points.get() fill="none" stroke="#0072B2" stroke-width="2"/>
        </svg>
    }
}

/// What the line chart draws: grid lines, each charted account's line, the time it spans.
#[derive(Clone, Debug, PartialEq)]
struct Lines {
    /// (y, label) of each grid line.
    grid: Vec<(f64, String)>,
    /// (account, points) of each line.
    lines: Vec<(AccountId, String)>,
    span_s: f64,
    charted: usize,
}

fn lines_of(d: &Dashboard) -> Option<Lines> {
    let (lo, hi) = history_range(&d.history)?;
    let scale = Scale::nice(lo, hi, 5);
    let grid = scale
        .ticks()
        .map(|v| (scale.y(v, LINE_H), money_label(v)))
        .collect();
    let span_s = match (d.history.front(), d.history.back()) {
        (Some(a), Some(b)) => (b.t_ms - a.t_ms) as f64 / 1000.0,
        _ => 0.0,
    };
    let charted = d.charted_accounts();
    let lines = (0..charted)
        .filter_map(|i| {
            let pts = line_points(&d.history, i, &scale, LINE_W, LINE_H, MAX_POINTS)?;
            Some((i as AccountId + 1, pts))
        })
        .collect();
    Some(Lines {
        grid,
        lines,
        span_s,
        charted,
    })
}

#[component]
pub fn LineChart() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let chart = ctx.select_history(lines_of);
    move || {
        let Some(c) = chart.get() else {
            return view! { <p class="empty">"Waiting for the first second of data…"</p> }
                .into_any();
        };
        let grid = c
            .grid
            .into_iter()
            .map(|(y, label)| {
                view! {
                    <line x1="0" x2=LINE_W y1=y y2=y class="grid"/>
                    <text x="-8" y=y + 4.0 class="axis" text-anchor="end">{label}</text>
                }
            })
            .collect_view();
        let lines = c
            .lines
            .into_iter()
            .map(|(a, pts)| {
                let (colour, dash) = series_style(a);
                // The followed account's line is drawn thicker (its path across the page).
                let width = move || if ctx.highlighted() == Some(a) { "5" } else { "2" };
                view! { <polyline points=pts fill="none" stroke=colour stroke-dasharray=dash stroke-width=width><title>{format!("account {a}")}</title></polyline> }
            })
            .collect_view();
        let n = c.charted;
        let legend = (n <= 16).then(|| {
            (1..=n as AccountId)
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
                    <text x="0" y=LINE_H + 20.0 class="axis">{format!("−{}", fmt_span(c.span_s))}</text>
                    <text x=LINE_W y=LINE_H + 20.0 class="axis" text-anchor="end">"now"</text>
                </g>
            </svg>
            <div class="legend">{legend}{(n > 16).then(|| format!("{n} accounts charted"))}</div>
        }
        .into_any()
    }
}

fn fmt_span(s: f64) -> String {
    if s >= 90.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

/// One bar as drawn: where it stands among the bars, its value on the scale, and what its
/// tooltip says. The bars are keyed by it, so a frame replaces only the bars that changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bar {
    slot: usize,
    of: usize,
    account: AccountId,
    value: i64,
    scale: Scale,
    stale: bool,
    path: Option<String>,
}

/// The bars and their legend.
#[derive(Clone, Debug, Default, PartialEq)]
struct Bars {
    bars: Vec<Bar>,
    legend: String,
}

const BARS_W: f64 = 400.0;
const BARS_H: f64 = 200.0;

fn bars_of(d: &Dashboard, value: fn(&AccountBalance) -> i64) -> Bars {
    let shown: Vec<_> = d.accounts.values().take(MAX_BARS).collect();
    let max = shown.iter().map(|a| value(a)).max().unwrap_or(1).max(1);
    let min = shown.iter().map(|a| value(a)).min().unwrap_or(0).min(0);
    let scale = Scale::nice(min, max, 4);
    let bars = shown
        .iter()
        .enumerate()
        .map(|(slot, a)| Bar {
            slot,
            of: shown.len(),
            account: a.account,
            value: value(a),
            scale,
            stale: d.is_stale(a.account),
            path: crate::kafka_view::account_path(d, a.account),
        })
        .collect::<Vec<_>>();
    let total = d.counters.totals.accounts;
    let more = (total > shown.len() as u64).then(|| {
        format!(
            "{} of {total} accounts: the generator's, then the most active",
            shown.len()
        )
    });
    let stale = bars
        .iter()
        .any(|b| b.stale)
        .then_some("faded: as last seen, their partition is with another member of the group");
    let legend = more
        .into_iter()
        .chain(stale.map(String::from))
        .collect::<Vec<_>>()
        .join(" · ");
    Bars { bars, legend }
}

fn bar_view(ctx: Ctx, kind: &'static str, label: fn(i64) -> String, b: Bar) -> impl IntoView {
    let slot = BARS_W / b.of as f64;
    let zero = b.scale.y(0, BARS_H);
    let y = b.scale.y(b.value, BARS_H);
    let (colour, _) = series_style(b.account);
    let (top, height) = if y < zero {
        (y, zero - y)
    } else {
        (zero, y - zero)
    };
    let text = label(b.value);
    // Hatched-looking (faded, dashed outline) rather than a colour change alone.
    let note = if b.stale {
        " (as last seen: its partition is with another member)"
    } else {
        ""
    };
    let path = b.path.map(|p| format!("\n{p}")).unwrap_or_default();
    let account = b.account;
    let x = b.slot as f64 * slot;
    // Reactive on its own: pointing at a bar must not redraw (and replace) it.
    let followed = move || ctx.highlighted() == Some(account);
    view! {
        <rect x=x + slot * 0.1 y=top width=slot * 0.8 height=height.max(0.5) fill=colour
              class:stale=b.stale class:followed=followed data-testid=format!("{kind}-{account}") data-value=b.value data-stale=b.stale.to_string()
              on:click=move |_| ctx.follow.update(|f| *f = if *f == Some(account) { None } else { Some(account) })
              on:pointerenter=move |_| ctx.hover.set(Some(account))
              on:pointerleave=move |_| ctx.hover.set(None)>
            <title>{format!("account {account}: {text}{note}{path}")}</title>
        </rect>
        {(b.of <= 12).then(|| view! {
            <text x=x + slot / 2.0 y=BARS_H + 14.0 class="axis" text-anchor="middle">{account}</text>
            <text x=x + slot / 2.0 y=top - 4.0 class="barlabel" text-anchor="middle">{text.clone()}</text>
        })}
    }
}

/// Bars for up to [`MAX_BARS`] accounts; `value` picks what is drawn, in minor units or counts.
fn bars(
    ctx: Ctx,
    kind: &'static str,
    value: fn(&AccountBalance) -> i64,
    label: fn(i64) -> String,
) -> impl IntoView {
    let shown = ctx.select(move |d| bars_of(d, value));
    let empty = Memo::new(move |_| shown.with(|s| s.bars.is_empty()));
    move || {
        if empty.get() {
            return view! { <p class="empty">"No transactions yet."</p> }.into_any();
        }
        view! {
            <svg class="chart" viewBox=format!("-10 -20 {} {}", BARS_W + 20.0, BARS_H + 40.0) role="img">
                // Keyed by the whole bar (each account once): only the bars that changed are
                // made again.
                <For each=move || shown.with(|s| s.bars.clone()) key=|b| b.clone()
                    children=move |b| bar_view(ctx, kind, label, b)/>
            </svg>
            <div class="legend">{move || shown.with(|s| s.legend.clone())}</div>
        }
        .into_any()
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
