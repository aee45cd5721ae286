//! The guided lesson panel: one lesson at a time, with what it is about, the buttons that run
//! it (the presenter's only), what to watch, and its checks, which the server turns from the
//! data ([`cashflow_shared::lessons`]); each lesson's control case beside its experiment.

use cashflow_shared::command::Command;
use cashflow_shared::dashboard::Notice;
use cashflow_shared::lessons::{Case, CaseState, LessonId};
use cashflow_shared::naive::Delivery;
use cashflow_shared::ordering::KeyStrategy;
use cashflow_shared::poison::Poison;
use leptos::prelude::*;

use crate::socket::Ctx;

#[component]
pub fn LessonPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let current = RwSignal::new(LessonId::Ordering);
    let lessons = move || {
        ctx.version.get();
        ctx.dash.with_value(|d| d.lessons.clone())
    };
    view! {
        <section class="panel lessons-panel" data-testid="lessons">
            <h2>"Lessons · each check turns from the data, not from a click"</h2>
            <nav class="steps-nav">
                {LessonId::ALL.map(|id| view! {
                    <button data-testid=format!("lesson-{}", id.name())
                        class:current=move || current.get() == id
                        class:done=move || lessons().get(id).is_some_and(|l| l.done())
                        data-done=move || lessons().get(id).is_some_and(|l| l.done()).to_string()
                        on:click=move |_| current.set(id)>{id.title()}</button>
                }).collect_view()}
                <button class="presenter-only" data-testid="lesson-slow-motion" disabled=move || !ctx.can_command()
                    on:click=move |_| { ctx.send(Command::SetRate { rate: Some(0.5) }); }>"Slow motion (0.5 tx/s)"</button>
                <ResetButton/>
            </nav>
            // The lesson's text and buttons change with the lesson only: made again on every
            // frame, a button could not be clicked (it is replaced under the pointer).
            {move || {
                let id = current.get();
                view! {
                    <p class="explain">{id.explain()}</p>
                    <ol class="lesson-steps" data-testid="lesson-steps">
                        {id.steps().iter().map(|s| view! { <li>{*s}</li> }).collect_view()}
                    </ol>
                    <Actions id=id/>
                    <p class="watch">{format!("Watch: {}", id.watch())}</p>
                }
            }}
            {move || {
                let id = current.get();
                let status = lessons().get(id).cloned();
                view! {
                    <ul class="checks">
                        <CheckRow name=id.name() control=None case=status.as_ref().map(|s| s.experiment.clone()).unwrap_or_default()/>
                        {id.control().map(|what| view! {
                            <CheckRow name=id.name() control=Some(what)
                                case=status.as_ref().and_then(|s| s.control.clone()).unwrap_or_default()/>
                        })}
                    </ul>
                }
            }}
        </section>
    }
}

/// "Reset the demo", asked twice: the topic's records, the lessons' groups and every check go.
#[component]
fn ResetButton() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let asked = RwSignal::new(false);
    view! {
        <button class="presenter-only" data-testid="reset-demo" class:danger=move || asked.get()
            disabled=move || !ctx.can_command()
            on:click=move |_| {
                if asked.get() {
                    asked.set(false);
                    let topic = ctx.dash.with_value(|d| d.topic.clone());
                    ctx.send(Command::ResetDemo { topic });
                } else {
                    asked.set(true);
                }
            }>
            {move || if asked.get() { "Click again: delete the topic and start afresh" } else { "Reset the demo" }}
        </button>
    }
}

/// One check: ✓ the outcome happened; for a control, ✗ it did not (as it should).
#[component]
fn CheckRow(name: &'static str, control: Option<&'static str>, case: Case) -> impl IntoView {
    let (mark, class) = match (case.state, control.is_some()) {
        (CaseState::Happened, false) => ("✓", "happened"),
        (CaseState::Happened, true) => ("⚠", "happened"),
        (CaseState::DidNotHappen, false) => ("✗", "failed"),
        (CaseState::DidNotHappen, true) => ("✗", "did-not-happen"),
        (CaseState::Running, _) => ("…", "running"),
        (CaseState::NotRun, _) => ("○", "not-run"),
    };
    let label = match control {
        None => "Outcome".to_owned(),
        Some(what) => format!("Control ({what})"),
    };
    let detail = match (case.state, control.is_some()) {
        (CaseState::NotRun, _) if case.detail.is_empty() => "not run yet".to_owned(),
        (CaseState::DidNotHappen, true) => format!("did not happen, as it should: {}", case.detail),
        _ => case.detail,
    };
    let testid = match control {
        None => format!("check-{name}"),
        Some(_) => format!("control-{name}"),
    };
    view! {
        <li class=format!("{class}{}", if control.is_some() { " control" } else { "" })
            data-testid=testid data-state=format!("{:?}", case.state)>
            <span class="mark">{mark}</span>{format!("{label}: {detail}")}
        </li>
    }
}

/// The buttons that run a lesson (hidden for read-only students).
#[component]
fn Actions(id: LessonId) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let off = move || !ctx.can_command();
    // The ids of the commands this panel sent: an answer refusing one is shown here, beside
    // the button, not only in the notice under the controls (below the fold).
    let sent = StoredValue::new(std::collections::VecDeque::<u64>::new());
    let send = move |c: Command| {
        if let Some(id) = ctx.send(c) {
            sent.update_value(|s| {
                s.push_back(id);
                if s.len() > 32 {
                    s.pop_front();
                }
            });
        }
    };
    let refused = move || match ctx.notice.get() {
        Some(Notice::Error { id: Some(id), text }) if sent.with_value(|s| s.contains(&id)) => {
            Some(text)
        }
        _ => None,
    };
    let button = move |testid: &'static str, label: &'static str, commands: Vec<Command>| {
        view! {
            <button data-testid=testid disabled=off on:click=move |_| {
                for c in &commands { send(c.clone()); }
            }>{label}</button>
        }
    };
    // Memos: a button is made again only when the answer changes, not on every frame (a
    // button replaced 20 times a second cannot be clicked).
    let managed = Memo::new(move |_| {
        ctx.version.get();
        ctx.dash.with_value(|d| d.broker_managed)
    });
    let cluster = Memo::new(move |_| {
        ctx.version.get();
        ctx.dash
            .with_value(|d| d.topic_view.as_ref().is_some_and(|v| v.brokers.len() > 1))
    });
    let buttons = match id {
        LessonId::Ordering => view! {
            {button("do-keys-by-account", "Keys by account (control)", vec![Command::SetKeys { keys: KeyStrategy::ByAccount }, Command::Start])}
            {button("do-add-member", "Add a member", vec![Command::AddMember])}
            {button("do-keys-random", "Random keys", vec![Command::SetKeys { keys: KeyStrategy::Random }, Command::Start])}
            <button data-testid="do-fall-behind" disabled=off on:click=move |_| {
                // Members that fall behind and catch up apply their partitions' backlogs one
                // after the other, as a slow or restarted consumer does: with random keys an
                // account's later transactions then often come first.
                send(Command::PauseConsumption);
                leptos::task::spawn_local(async move {
                    gloo_timers::future::sleep(std::time::Duration::from_secs(2)).await;
                    send(Command::ResumeConsumption);
                });
            }>"Let the members fall behind for 2 s"</button>
        }.into_any(),
        LessonId::Delivery => view! {
            {button("do-naive-alo", "Start the naive consumer (at-least-once)", vec![Command::Start, Command::StartNaive { delivery: Delivery::AtLeastOnce }])}
            {button("do-naive-amo", "Switch to at-most-once", vec![Command::StartNaive { delivery: Delivery::AtMostOnce }])}
            {button("do-naive-crash", "Crash it between its two steps", vec![Command::CrashNaive])}
            {button("do-naive-stop", "Stop it", vec![Command::StopNaive])}
        }.into_any(),
        LessonId::Replay => view! {
            {button("do-replay", "Rebuild from the beginning", vec![Command::StartReplay])}
        }.into_any(),
        LessonId::Poison => view! {
            {button("do-poison", "Inject one of each kind", Poison::ALL.map(|poison| Command::Inject { poison }).to_vec())}
        }.into_any(),
        LessonId::Outage => view! {
            {move || match (managed.get(), cluster.get()) {
                (true, true) => view! {
                    {button("do-stop-node", "Stop node 2", vec![Command::Start, Command::StopNode { node: 2 }])}
                    {button("do-start-node", "Start node 2", vec![Command::StartNode { node: 2 }])}
                    {button("do-outage", "Stop all three for 10 s", vec![Command::Start, Command::StopBroker { seconds: 10 }])}
                }.into_any(),
                (true, false) => button("do-outage", "Stop the broker for 10 s", vec![Command::Start, Command::StopBroker { seconds: 10 }]).into_any(),
                (false, true) => view! { <span class="reason" data-testid="outage-elsewhere">"On the cluster: scripts/kafka.sh kill N (then revive N) in a terminal."</span> }.into_any(),
                (false, false) => view! { <span class="reason" data-testid="outage-elsewhere">"This server uses a Kafka it does not run (--brokers), so it cannot stop it: stop that broker from its own terminal, or start cashflow without --brokers for this lesson."</span> }.into_any(),
            }}
        }.into_any(),
        LessonId::BackPressure => view! {
            {button("do-max-lag", "Max lag 100, and pause the calculator", vec![Command::Start, Command::SetMaxLag { max_lag: Some(100) }, Command::PauseConsumption])}
            {button("do-resume", "Resume the calculator", vec![Command::ResumeConsumption])}
            {button("do-max-lag-off", "Max lag off", vec![Command::SetMaxLag { max_lag: None }])}
        }.into_any(),
    };
    view! {
        <div class="actions presenter-only">{buttons}</div>
        <p class="lesson-error err" data-testid="lesson-error">{refused}</p>
    }
}
