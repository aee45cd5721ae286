//! The outage lesson's panel: stop the Apache Kafka broker cashflow runs for a few seconds and watch generation
//! hold, then every transaction delivered exactly once; on a cluster, the leaders and in-sync
//! replicas in the topic panel move instead.

use cashflow_shared::command::Command;
use cashflow_shared::outage::{MAX_OUTAGE_SECONDS, MIN_OUTAGE_SECONDS, OutageState};
use leptos::prelude::*;

use crate::socket::Ctx;

#[component]
pub fn OutagePanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let off = move || !ctx.can_command();
    // Long enough for the broker watch (a check every 2 s, each with its time-out) to see it.
    let seconds = RwSignal::new(10u32);
    let outage = move || {
        ctx.version.get();
        ctx.dash.with_value(|d| d.outage.clone())
    };
    let managed = move || {
        ctx.version.get();
        ctx.dash.with_value(|d| d.broker_managed)
    };
    view! {
        <div class="outage">
            <div class="row presenter-only" class:hidden=move || !managed()>
                <label>"Stop the broker for "
                    <input type="number" data-testid="outage-seconds" min=MIN_OUTAGE_SECONDS max=MAX_OUTAGE_SECONDS
                        prop:value=move || seconds.get().to_string()
                        on:change=move |ev| if let Ok(s) = event_target_value(&ev).parse() { seconds.set(s) }/>
                    " s"</label>
                <button data-testid="stop-broker" disabled=move || off() || !outage().finished()
                    on:click=move |_| { ctx.send(Command::StopBroker { seconds: seconds.get() }); }>"Stop the broker"</button>
            </div>
            {move || {
                let o = outage();
                let class = match o.state {
                    OutageState::Recovered => "invariant ok",
                    OutageState::Failed => "invariant bad",
                    OutageState::Down => "invariant bad",
                    _ => "invariant",
                };
                view! {
                    <p class=class data-testid="outage" data-state=format!("{:?}", o.state)
                        data-recovery-ms=o.recovery_ms data-failed=o.failed data-duplicates=o.duplicates
                        data-held=o.held.to_string()>{o.describe()}</p>
                }
            }}
            <p class="legend">{move || if managed() {
                "The producer is idempotent (acks=all): while the broker is away its sends wait and retry, and the broker drops a retry it already wrote. Nothing is lost, nothing is written twice; the invariant says so."
            } else {
                "On a Kafka cashflow does not run (--brokers), stop a broker from its own terminal (on the 3-broker cluster: scripts/kafka.sh kill N): the partitions it led get new leaders from the in-sync replicas (topic panel), and nothing is lost."
            }}</p>
        </div>
    }
}
