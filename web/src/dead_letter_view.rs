//! The dead-letter panel: the presenter injects a poison pill (or the last transaction again),
//! and the newest records of `<topic>.dlq`, as the server read them back, are listed with their
//! reason, where they came from and a bounded preview.

use cashflow_shared::command::Command;
use cashflow_shared::dashboard::clock;
use cashflow_shared::poison::{DeadLetterView, Poison};
use leptos::prelude::*;

use crate::socket::Ctx;

#[component]
pub fn DeadLetterPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let off = move || !ctx.can_command();
    let kind = RwSignal::new(Poison::NotJson);
    let letters = ctx.select(|d| d.dead_letters.clone());
    let dead_lettered = ctx.select(|d| d.counters.ledger.dead_lettered);
    view! {
        <div class="dead-letters">
            <div class="row presenter-only">
                <select data-testid="poison" disabled=off
                    on:change=move |ev| if let Some(p) = Poison::from_name(&event_target_value(&ev)) { kind.set(p) }>
                    {Poison::ALL.map(|p| view! { <option value=p.name()>{p.label()}</option> }).collect_view()}
                </select>
                <button data-testid="inject" disabled=off
                    on:click=move |_| { ctx.send(Command::Inject { poison: kind.get() }); }>"Inject"</button>
                <span class="pnum" data-testid="dead-lettered" data-value=move || dead_lettered.get()>
                    {move || format!("{} dead-lettered", dead_lettered.get())}</span>
            </div>
            <ol class="letters" data-testid="letters">
                // Keyed by the letter: a new one is added, the ones shown stay.
                {crate::list::each(letters, |l| letter(l).into_any())}
            </ol>
            <p class="legend">"A record the calculator cannot apply (not a transaction, or a transaction id seen moments ago on its partition) goes to the dead-letter topic untouched, with the reason in its headers; balances do not move and the consumer goes on. These are read back from that topic."</p>
        </div>
    }
}

fn letter(l: DeadLetterView) -> impl IntoView {
    view! {
        <li data-testid="letter" data-partition=l.partition data-offset=l.offset title=l.preview.clone()>
            <span class="when">{clock(l.timestamp_ms)}</span>
            <span class="why">{l.reason.clone()}</span>
            <span class="where">{format!("p{} @ {} · {} B", l.partition, l.offset, l.bytes)}</span>
            <code class="preview">{l.preview.clone()}</code>
        </li>
    }
}
