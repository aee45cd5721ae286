//! The replay lesson's panel: rebuild the balances from the log start in a fresh consumer group,
//! and watch it converge to the live balances, partition by partition.

use cashflow_shared::command::Command;
use cashflow_shared::lessons::LessonId;
use cashflow_shared::replay::ReplayState;
use leptos::prelude::*;

use super::{Buttons, Lesson, Panel};
use crate::socket::Ctx;

pub(super) const LESSON: Lesson = Lesson {
    id: LessonId::Replay,
    actions,
    panel: Some(Panel {
        heading: "Replay · rebuild the balances from the log",
        view: || view! { <ReplayPanel/> }.into_any(),
    }),
};

fn actions(b: Buttons) -> AnyView {
    b.button(
        "do-replay",
        "Rebuild from the beginning",
        &[Command::StartReplay],
    )
}

#[component]
fn ReplayPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let off = move || !ctx.can_command();
    let replay = ctx.select(|d| d.replay.clone());
    // A memo: the buttons are made again when it changes, not whenever a count does.
    let running = Memo::new(move |_| replay.with(|r| r.state == ReplayState::Running));
    view! {
        <div class="replay">
            <div class="row presenter-only">
                {move || if running.get() {
                    view! { <button data-testid="stop-replay" disabled=off on:click=move |_| { ctx.send(Command::StopReplay); }>"Stop"</button> }.into_any()
                } else {
                    view! { <button data-testid="start-replay" disabled=off on:click=move |_| { ctx.send(Command::StartReplay); }>"Rebuild from the beginning"</button> }.into_any()
                }}
            </div>
            {move || {
                let r = replay.get();
                let pct = if r.total == 0 { 0.0 } else { (r.read as f64 * 100.0 / r.total as f64).min(100.0) };
                let class = match r.state {
                    ReplayState::Converged => "invariant ok",
                    ReplayState::Partial | ReplayState::Failed => "invariant bad",
                    _ => "invariant",
                };
                view! {
                    <div class="lane replay-bar"><span class="end" style=format!("width: {pct:.1}%")></span></div>
                    <p class=class data-testid="replay" data-state=format!("{:?}", r.state) data-read=r.read data-matched=r.matched>
                        {r.describe()}</p>
                    {(!r.group.is_empty()).then(|| view! { <p class="legend">{format!("consumer group {} (deleted when it is over)", r.group)}</p> })}
                }
            }}
            <p class="legend">"Balances are a function of the log: a new consumer group reading the topic from its first offset computes the same balances, whatever happened to the live calculator. Its lag shows in the groups panel while it catches up."</p>
        </div>
    }
}
