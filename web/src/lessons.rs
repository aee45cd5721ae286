//! The guided lesson panel: one lesson at a time, with what it is about, the buttons that run
//! it (the presenter's only), what to watch, and its checks, which the server turns from the
//! data ([`cashflow_shared::lessons`]); each lesson's control case beside its experiment.
//!
//! Each lesson is a module of its own (its buttons, and its panel where it has one), listed in
//! [`LESSONS`]; the texts and checks are the shared crate's.

mod back_pressure;
mod delivery;
mod ordering;
mod outage;
mod poison;
mod replay;

use cashflow_shared::command::Command;
use cashflow_shared::dashboard::Notice;
use cashflow_shared::lessons::{Case, CaseState, LessonId};
use leptos::prelude::*;

use crate::socket::Ctx;

#[component]
pub fn LessonPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let current = RwSignal::new(LessonId::Ordering);
    let lessons = ctx.select(|d| d.lessons.clone());
    view! {
        <section class="panel lessons-panel" data-testid="lessons">
            <h2>"Lessons · each check turns from the data, not from a click"</h2>
            <nav class="steps-nav">
                {LessonId::ALL.map(|id| view! {
                    <button data-testid=format!("lesson-{}", id.name())
                        class:current=move || current.get() == id
                        class:done=move || lessons.with(|l| l.get(id).is_some_and(|l| l.done()))
                        data-done=move || lessons.with(|l| l.get(id).is_some_and(|l| l.done())).to_string()
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
                let status = lessons.with(|l| l.get(id).cloned());
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
                    let topic = ctx.read(|d| d.topic.clone());
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

/// A lesson on the page: its buttons, and its panel where it has one.
struct Lesson {
    id: LessonId,
    actions: fn(Buttons) -> AnyView,
    panel: Option<Panel>,
}

/// A lesson's own panel on the page: its heading and its view.
struct Panel {
    heading: &'static str,
    view: fn() -> AnyView,
}

/// Every lesson, in the panel's order (the shared crate's [`cashflow_shared::lessons::LESSONS`]).
const LESSONS: [Lesson; 6] = [
    ordering::LESSON,
    delivery::LESSON,
    replay::LESSON,
    poison::LESSON,
    outage::LESSON,
    back_pressure::LESSON,
];

/// The panels of the lessons that have one, each in its section.
#[component]
pub fn LessonPanels() -> impl IntoView {
    let mut panels = Vec::new();
    for p in LESSONS.iter().filter_map(|l| l.panel.as_ref()) {
        panels.push(view! {
            <section class="panel">
                <h2>{p.heading}</h2>
                {(p.view)()}
            </section>
        });
    }
    panels
}

/// What a lesson's buttons are made with: each sends its commands and remembers their ids, so
/// an answer refusing one is shown beside the buttons.
#[derive(Clone, Copy)]
struct Buttons {
    ctx: Ctx,
    sent: StoredValue<std::collections::VecDeque<u64>>,
}

impl Buttons {
    fn off(self) -> impl Fn() -> bool + Copy {
        move || !self.ctx.can_command()
    }

    fn send(self, c: Command) {
        if let Some(id) = self.ctx.send(c) {
            self.sent.update_value(|s| {
                s.push_back(id);
                if s.len() > 32 {
                    s.pop_front();
                }
            });
        }
    }

    /// A button that sends `commands`, in order.
    fn button(
        self,
        testid: &'static str,
        label: &'static str,
        commands: &'static [Command],
    ) -> AnyView {
        view! {
            <button data-testid=testid disabled=self.off() on:click=move |_| {
                for c in commands { self.send(c.clone()); }
            }>{label}</button>
        }
        .into_any()
    }
}

/// The buttons that run a lesson (hidden for read-only students).
#[component]
fn Actions(id: LessonId) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    // The ids of the commands this panel sent: an answer refusing one is shown here, beside
    // the button, not only in the notice under the controls (below the fold).
    let b = Buttons {
        ctx,
        sent: StoredValue::new(std::collections::VecDeque::new()),
    };
    let refused = move || match ctx.notice.get() {
        Some(Notice::Error { id: Some(id), text }) if b.sent.with_value(|s| s.contains(&id)) => {
            Some(text)
        }
        _ => None,
    };
    let buttons = LESSONS.iter().find(|l| l.id == id).map(|l| (l.actions)(b));
    view! {
        <div class="actions presenter-only">{buttons}</div>
        <p class="lesson-error err" data-testid="lesson-error">{refused}</p>
    }
}
