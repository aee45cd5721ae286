//! The cashflow dashboard: a Leptos client-side app.
//!
//! - [`socket`] keeps one WebSocket to `/ws`, reconnecting with back-off, and feeds every server
//!   message into the [`Dashboard`](cashflow_shared::dashboard::Dashboard) reducer (from
//!   `shared/`, where it is unit-tested). The views re-render at most once per animation frame.
//! - [`charts`] draws the balance history, the balance and count bars and the throughput
//!   sparkline as SVG, with a bounded number of points per series.
//! - [`kafka_view`] shows the topic as the broker reports it (offsets, lag, groups) and the
//!   balance calculator's members with their rebalances.
//! - [`flow_view`] animates real records from the producer through the partitions and members
//!   into the ledger.
//! - [`controls`] sends the generator commands; every control is disabled, with the reason,
//!   while the page is not connected.

mod charts;
mod controls;
mod dead_letter_view;
mod flow_view;
mod kafka_view;
mod lessons;
mod list;
mod socket;

use leptos::prelude::*;

use socket::{Conn, Ctx};

fn main() {
    leptos::mount::mount_to_body(App);
}

#[component]
fn App() -> impl IntoView {
    let ctx = Ctx::new();
    provide_context(ctx);
    if let Some(token) = socket::presenter_link_token() {
        // Sent as the first command of every connection (see `socket::session`).
        ctx.token.set_value(Some(token));
    }
    socket::connect(ctx);
    let large = preference("cashflow.large-text");
    let dark = preference("cashflow.dark-theme");
    view! {
        <div class="page" class:large=move || large.get() class:dark=move || dark.get()
            class:readonly=move || !ctx.is_presenter()>
            <header>
                <h1>"cashflow"<span class="sub">" — a bank on Kafka"</span></h1>
                <Status/>
                <label class="toggle">
                    <input type="checkbox" data-testid="large-text" prop:checked=move || large.get()
                        on:change=move |ev| large.set(event_target_checked(&ev))/>
                    " large text"
                </label>
                <label>
                    <input type="checkbox" data-testid="dark-theme" prop:checked=move || dark.get()
                        on:change=move |ev| dark.set(event_target_checked(&ev))/>
                    " projector (dark)"
                </label>
            </header>
            <Reload/>
            <Recreated/>
            <charts::Counters/>
            <lessons::LessonPanel/>
            <main>
                <section class="panel lines">
                    <h2>"Balances over time"</h2>
                    <charts::LineChart/>
                </section>
                <section class="panel controls-panel">
                    <h2>"Controls"</h2>
                    <controls::Controls/>
                </section>
                <section class="panel topic">
                    <h2>"Topic partitions · from the broker"</h2>
                    <kafka_view::TopicPanel/>
                </section>
                <section class="panel">
                    <h2>"Balance calculator · consumer group members"</h2>
                    <kafka_view::MembersPanel/>
                </section>
                <section class="panel wide2">
                    <h2>"Record flow · real records, their partition and offset"</h2>
                    <flow_view::FlowView/>
                </section>
                <lessons::LessonPanels/>
                <section class="panel">
                    <h2>"Dead letters · poison pills and duplicates"</h2>
                    <dead_letter_view::DeadLetterPanel/>
                </section>
                <section class="panel">
                    <h2>"Consumer groups on the topic · lag"</h2>
                    <kafka_view::GroupsPanel/>
                </section>
                <section class="panel">
                    <h2>"Balance per account"</h2>
                    <charts::BalanceBars/>
                </section>
                <section class="panel">
                    <h2>"Transactions per account"</h2>
                    <charts::CountBars/>
                </section>
                <section class="panel wide">
                    <h2>"Logging consumer · newest first"</h2>
                    <LogFeed/>
                </section>
            </main>
        </div>
    }
}

/// A presenter's on/off preference, kept in the browser's local storage (gloo-storage) so the
/// page opens the way the projector needs it.
fn preference(key: &'static str) -> RwSignal<bool> {
    use gloo_storage::Storage;
    let value = RwSignal::new(gloo_storage::LocalStorage::get::<bool>(key).unwrap_or(false));
    Effect::new(move |_| {
        // Storage may be unavailable (private mode, quota): the page works without it.
        let _ = gloo_storage::LocalStorage::set(key, value.get());
    });
    value
}

#[component]
fn Status() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let broker = ctx.select(|d| {
        let kafka = cashflow_shared::outage::describe_kafka(d.broker_managed, &d.outage.nodes);
        (
            d.broker_reachable,
            d.store.restoring,
            d.store.percent,
            kafka,
        )
    });
    let text = move || {
        let (reachable, restoring, percent, kafka) = broker.get();
        match ctx.conn.get() {
            Conn::Connecting => ("connecting", "connecting…".to_owned()),
            Conn::Open if !reachable => ("warn", format!("connected · {kafka} · unreachable")),
            Conn::Open if restoring => {
                ("warn", format!("connected · restoring balances {percent}%"))
            }
            Conn::Open => ("ok", format!("connected · {kafka}")),
            Conn::Retrying { in_secs, attempt } => (
                "bad",
                format!("disconnected · retry {attempt} in {in_secs:.1} s"),
            ),
        }
    };
    view! {
        <span class=move || format!("status {}", text().0) data-testid="status">{move || text().1}</span>
    }
}

#[component]
fn Reload() -> impl IntoView {
    let reload = expect_context::<Ctx>().select(|d| d.reload.clone());
    move || {
        reload
            .get()
            .map(|r| view! { <div class="reload">{r}" "<a href="">"Reload"</a></div> })
    }
}

/// Says so when the topic was deleted and created again: the balances started afresh.
#[component]
fn Recreated() -> impl IntoView {
    let recreated = expect_context::<Ctx>().select(|d| d.store.recreated);
    move || {
        let n = recreated.get();
        (n > 0).then(|| {
            let times = if n == 1 { String::new() } else { format!(" ({n} times)") };
            view! {
                <div class="reload" data-testid="recreated">
                    "The topic was deleted and created again" {times}
                    ": its offsets started over, so the balances started afresh from its new records."
                </div>
            }
        })
    }
}

/// Lines shown at most, newest first.
const LOG_SHOWN: usize = 60;

#[component]
fn LogFeed() -> impl IntoView {
    let lines = expect_context::<Ctx>()
        .select(|d| d.log.iter().take(LOG_SHOWN).cloned().collect::<Vec<_>>());
    // Keyed by the whole line: a frame adds the new lines and drops the oldest.
    let line = |l: cashflow_shared::api::LogLine| {
        let malformed = l.text.starts_with("skipped");
        view! {
            <li class:malformed=malformed>
                <span class="pos">{format!("p{}@{}", l.partition, l.offset)}</span>" "{l.text}
            </li>
        }
        .into_any()
    };
    view! { <ol class="log" data-testid="log">{list::each(lines, line)}</ol> }
}
