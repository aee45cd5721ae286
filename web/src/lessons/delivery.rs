//! The delivery-semantics lesson's panel: a naive calculator beside the exact one, which saves
//! its balances and commits its offsets as two steps. The presenter picks the order and crashes
//! it between them; the panel shows the records it lost or read twice and its balances next to
//! the exact ones.

use cashflow_shared::command::Command;
use cashflow_shared::lessons::LessonId;
use cashflow_shared::naive::{Delivery, NaiveState, NaiveStatus};
use leptos::prelude::*;

use super::{Buttons, Lesson, Panel};
use crate::socket::Ctx;

pub(super) const LESSON: Lesson = Lesson {
    id: LessonId::Delivery,
    actions,
    panel: Some(Panel {
        heading: "Delivery semantics · a naive consumer beside the exact one",
        view: || view! { <NaivePanel/> }.into_any(),
    }),
};

fn actions(b: Buttons) -> AnyView {
    const ALO: &[Command] = &[
        Command::Start,
        Command::StartNaive {
            delivery: Delivery::AtLeastOnce,
        },
    ];
    const AMO: &[Command] = &[Command::StartNaive {
        delivery: Delivery::AtMostOnce,
    }];
    view! {
        {b.button("do-naive-alo", "Start the naive consumer (at-least-once)", ALO)}
        {b.button("do-naive-amo", "Switch to at-most-once", AMO)}
        {b.button("do-naive-crash", "Crash it between its two steps", &[Command::CrashNaive])}
        {b.button("do-naive-stop", "Stop it", &[Command::StopNaive])}
    }
    .into_any()
}

fn delivery_name(d: Delivery) -> &'static str {
    match d {
        Delivery::AtLeastOnce => "at_least_once",
        Delivery::AtMostOnce => "at_most_once",
    }
}

#[component]
fn NaivePanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let off = move || !ctx.can_command();
    let naive = ctx.select(|d| d.naive.clone());
    // A memo: the buttons are made again when it changes, not whenever a count does.
    let running = Memo::new(move |_| {
        naive.with(|n| !matches!(n.state, NaiveState::Off | NaiveState::Failed))
    });
    let chosen = RwSignal::new(Delivery::AtLeastOnce);
    view! {
        <div class="naive">
            <div class="row presenter-only">
                <select data-testid="delivery" disabled=off
                    on:change=move |ev| {
                        let d = if event_target_value(&ev) == "at_most_once" { Delivery::AtMostOnce } else { Delivery::AtLeastOnce };
                        chosen.set(d);
                        // Switching a running one takes effect from its next batch.
                        if running.get() { ctx.send(Command::StartNaive { delivery: d }); }
                    }>
                    <option value="at_least_once" selected=move || chosen.get() == Delivery::AtLeastOnce>"at-least-once (commit after saving)"</option>
                    <option value="at_most_once" selected=move || chosen.get() == Delivery::AtMostOnce>"at-most-once (commit before saving)"</option>
                </select>
                {move || if running.get() {
                    view! {
                        <button data-testid="crash-naive" disabled=move || off() || naive.with(|n| n.crash_armed)
                            on:click=move |_| { ctx.send(Command::CrashNaive); }>"Crash the naive consumer"</button>
                        <button data-testid="stop-naive" disabled=off
                            on:click=move |_| { ctx.send(Command::StopNaive); }>"Stop"</button>
                    }.into_any()
                } else {
                    view! {
                        <button data-testid="start-naive" disabled=off
                            on:click=move |_| { ctx.send(Command::StartNaive { delivery: chosen.get() }); }>"Start the naive consumer"</button>
                    }.into_any()
                }}
            </div>
            {move || {
                let n = naive.get();
                let class = if n.lost > 0 || n.doubled > 0 || n.differing_accounts > 0 { "invariant bad" } else { "invariant" };
                view! {
                    <p class=class data-testid="naive" data-state=format!("{:?}", n.state)
                        data-delivery=delivery_name(n.delivery) data-crashes=n.crashes
                        data-lost=n.lost data-doubled=n.doubled data-compared=n.compared
                        data-count-difference=n.count_difference>
                        {n.lines().into_iter().map(|l| view! { <span class="line">{l}</span> }).collect_view()}</p>
                    <Steps n=n.clone()/>
                    <Comparison n=n/>
                }
            }}
            <p class="legend">"Both read the same topic. The exact calculator keeps its balances and the offsets they cover as one cut (a snapshot names its offsets), so a crash costs it nothing. The naive one writes its balances to a file and commits its offsets to Kafka separately: whichever comes second is missing after a crash in between."</p>
        </div>
    }
}

/// The naive calculator's two steps per batch, in the chosen order, and where a crash falls.
#[component]
fn Steps(n: NaiveStatus) -> impl IntoView {
    let [first, second] = n.delivery.steps();
    let armed = if n.crash_armed {
        " crash armed: it dies here on its next batch"
    } else {
        ""
    };
    view! {
        <ol class="steps" data-testid="naive-steps">
            <li>"poll a batch (1 s of records)"</li>
            <li>{first}</li>
            <li class="gap">{format!("⚡ crash point{armed}")}</li>
            <li>{second}</li>
        </ol>
    }
}

/// The balances of the accounts where the two calculators disagree, side by side.
#[component]
fn Comparison(n: NaiveStatus) -> impl IntoView {
    if n.accounts.is_empty() {
        return view! { <p class="legend">"No account differs (compared where both stand at the same offset)."</p> }.into_any();
    }
    let scale = n
        .accounts
        .iter()
        .flat_map(|a| [a.exact.minor().abs(), a.naive.minor().abs()])
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    // Bars of one scale, all starting where their column's numbers end (right-aligned,
    // tabular figures), so rows line up.
    let width = move |m: i64| format!("width: {:.1}px", m.abs() as f64 * 60.0 / scale);
    view! {
        <table class="naive-accounts" data-testid="naive-accounts">
            <tr><th>"account"</th><th class="money">"exact"</th><th class="money">"naive"</th><th>"naive − exact"</th></tr>
            {n.accounts.iter().map(|a| {
                let diff = cashflow_shared::Money::from_minor(a.naive.minor().saturating_sub(a.exact.minor()));
                view! {
                    <tr data-account=a.account>
                        <td>{a.account}</td>
                        <td class="money"><span class="n">{a.exact.to_string()}</span><span class="bar exact" style=width(a.exact.minor())></span></td>
                        <td class="money"><span class="n">{a.naive.to_string()}</span><span class="bar naive" style=width(a.naive.minor())></span></td>
                        <td class="bad">{diff.to_string()}</td>
                    </tr>
                }
            }).collect_view()}
        </table>
        {(n.differing_accounts > n.accounts.len() as u64).then(|| view! {
            <p class="legend">{format!("and {} more accounts", n.differing_accounts - n.accounts.len() as u64)}</p>
        })}
    }.into_any()
}
