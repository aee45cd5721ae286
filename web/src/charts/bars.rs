//! Bars of each account's balance and transaction count: at most [`MAX_BARS`] accounts, each
//! bar keyed by what it shows, so a frame redraws only the bars that changed.

use cashflow_shared::AccountId;
use cashflow_shared::api::AccountBalance;
use cashflow_shared::dashboard::{Dashboard, Scale, money_label, series_style};
use leptos::prelude::*;

use crate::socket::Ctx;

const MAX_BARS: usize = 100;

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

const BARS_W: f64 = 400.0;
const BARS_H: f64 = 200.0;

fn bars_of(d: &Dashboard, value: fn(&AccountBalance) -> i64) -> Vec<Bar> {
    let shown: Vec<_> = d.accounts.values().take(MAX_BARS).collect();
    let max = shown.iter().map(|a| value(a)).max().unwrap_or(1).max(1);
    let min = shown.iter().map(|a| value(a)).min().unwrap_or(0).min(0);
    let scale = Scale::nice(min, max, 4);
    shown
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
        .collect()
}

/// What the bars leave out, and what their faded ones mean.
fn legend_of(d: &Dashboard) -> String {
    let shown = d.accounts.len().min(MAX_BARS);
    let total = d.counters.totals.accounts;
    let more = (total > shown as u64)
        .then(|| format!("{shown} of {total} accounts: the generator's, then the most active"));
    let stale = d
        .accounts
        .keys()
        .take(MAX_BARS)
        .any(|a| d.is_stale(*a))
        .then_some("faded: as last seen, their partition is with another member of the group");
    more.into_iter()
        .chain(stale.map(String::from))
        .collect::<Vec<_>>()
        .join(" · ")
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
    let legend = ctx.select(legend_of);
    let bars = ctx.select(move |d| bars_of(d, value));
    let empty = Memo::new(move |_| bars.with(|b| b.is_empty()));
    move || {
        if empty.get() {
            return view! { <p class="empty">"No transactions yet."</p> }.into_any();
        }
        view! {
            <svg class="chart" viewBox=format!("-10 -20 {} {}", BARS_W + 20.0, BARS_H + 40.0) role="img">
                // Keyed by the whole bar (each account once): only the bars that changed are
                // made again.
                {crate::list::each(bars, move |b| bar_view(ctx, kind, label, b).into_any())}
            </svg>
            <div class="legend">{move || legend.get()}</div>
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
