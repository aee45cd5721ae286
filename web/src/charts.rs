//! SVG charts. Each takes what it draws as a [`Part`] ([`Ctx::select`]): the cards and bars once a
//! frame, the lines once a second (the charted history). Each draws a bounded number of
//! elements: at most 300 points per line, 100 bars.

use cashflow_shared::AccountId;
use cashflow_shared::dashboard::{
    Dashboard, Scale, format_money, history_range, line_points, money_label, series_style,
    sparkline_points,
};
use cashflow_shared::protocol::Counters as Figures;
use leptos::prelude::*;

mod bars;

pub use bars::{BalanceBars, CountBars};

use crate::socket::{Ctx, Part};

const LINE_W: f64 = 820.0;
const LINE_H: f64 = 330.0;
const MAX_POINTS: usize = 300;

/// One card: its figure from the counters, a memo of its own so that its text is set only when
/// that figure changed.
fn card(
    c: Part<Figures>,
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
