//! Generator commands. Inputs are parsed here (exact money) and validated with the same
//! [`Command::validate`] the server applies again, so a bad value is refused before it is sent;
//! every command's ack or error is shown under the controls.
//!
//! Each row is a small component; what they share (sending, the panel's own error line) is a
//! [`Say`] in the context, and the generator's status one [`Part`] they read.

mod settings;

use cashflow_shared::command::Command;
use cashflow_shared::dashboard::Notice;
use cashflow_shared::protocol::GeneratorStatus;
use leptos::prelude::*;

use crate::socket::{Ctx, Part};
use settings::{
    Amounts, Batching, Burst, Keys, MaxLag, NumberSetting, OneTransaction, RateSetting,
};

/// Sends the panel's commands and says why one was not sent.
#[derive(Clone, Copy)]
struct Say {
    ctx: Ctx,
    local_error: RwSignal<Option<String>>,
    generator: Part<Option<GeneratorStatus>>,
}

impl Say {
    fn send(self, c: Command) {
        self.local_error.set(None);
        if self.ctx.send(c).is_none() {
            self.local_error.set(Some("not connected".into()));
        }
    }

    /// Sends `r`'s command once [`Command::validate`] takes it; else says why, naming `what`.
    fn parse_or_say(self, what: &str, r: Result<Command, String>) {
        match r.and_then(|c| c.validate().map(|()| c).map_err(|e| e.to_string())) {
            Ok(c) => self.send(c),
            Err(e) => self.local_error.set(Some(format!("{what}: {e}"))),
        }
    }

    fn off(self) -> impl Fn() -> bool + Copy + Send + Sync + 'static {
        move || !self.ctx.can_command()
    }

    fn running(self) -> bool {
        self.generator
            .with(|g| g.as_ref().is_some_and(|g| g.running))
    }
}

fn field(initial: &str) -> RwSignal<String> {
    RwSignal::new(initial.to_owned())
}

/// The whole number typed into `field`, or what to say instead (`what` names the field where
/// one command has several).
fn whole<T: std::str::FromStr>(field: RwSignal<String>, what: &str) -> Result<T, String> {
    let sep = if what.is_empty() { "" } else { ": " };
    field
        .get()
        .trim()
        .parse()
        .map_err(|_| format!("{what}{sep}a whole number"))
}

/// A text input, never `type="number"`: the browser reports a number field holding "0." or
/// "-" as "", and writing that back moved the cursor, so "0.5" became "50". `inputmode` still
/// brings up a number keyboard on a tablet; every value is parsed (and refused with a reason)
/// on Set.
fn input(
    say: Say,
    sig: RwSignal<String>,
    testid: &'static str,
    mode: &'static str,
) -> impl IntoView {
    view! { <input type="text" inputmode=mode autocomplete="off" data-testid=testid prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) disabled=say.off()/> }
}

/// The inputs the server's settings fill in whenever a (re)connection brings them.
#[derive(Clone, Copy)]
struct Filled {
    rate: RwSignal<String>,
    accounts: RwSignal<String>,
    credit: RwSignal<String>,
    min: RwSignal<String>,
    max: RwSignal<String>,
}

impl Filled {
    fn new(ctx: Ctx) -> Filled {
        let f = Filled {
            rate: field("2"),
            accounts: field("5"),
            credit: field("50"),
            min: field("1"),
            max: field("20"),
        };
        // Once per snapshot (a connection's first message), when it has the generator: what
        // the presenter types is not overwritten by the frames after it.
        let fresh = ctx.select(|d| {
            d.generator
                .as_ref()
                .map(|g| (d.snapshots, g.settings.clone(), g.rate))
        });
        let filled_for = StoredValue::new(0u64);
        Effect::new(move |_| {
            let Some((snapshots, s, rate)) = fresh.get() else {
                return;
            };
            if filled_for.get_value() == snapshots {
                return;
            }
            filled_for.set_value(snapshots);
            f.rate
                .set(rate.map(|r| r.to_string()).unwrap_or_else(|| "max".into()));
            f.accounts.set(s.accounts.to_string());
            f.credit.set(s.credit_percent.to_string());
            f.min.set(s.min_amount.to_string());
            f.max.set(s.max_amount.to_string());
        });
        f
    }
}

#[component]
pub fn Controls() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let say = Say {
        ctx,
        local_error: RwSignal::new(None),
        generator: ctx.select(|d| d.generator.clone()),
    };
    provide_context(say);
    let f = Filled::new(ctx);
    view! {
        <div class="controls">
            <GeneratorLine/>
            {move || (!ctx.connected()).then(|| view! { <p class="reason">"Disconnected: the controls come back when the server does."</p> })}
            <LoginRow/>
            <StartPause/>
            <div class="flow">
                <RateSetting rate=f.rate/>
                <NumberSetting label="Accounts" testid="accounts" value=f.accounts what="accounts"
                    make=|t| t.trim().parse().map(|accounts| Command::SetAccounts { accounts }).map_err(|_| "a whole number".into())/>
                <NumberSetting label="Credits (%)" testid="credit" value=f.credit what="credits"
                    make=|t| t.trim().parse().map(|credit_percent| Command::SetMix { credit_percent }).map_err(|_| "0 to 100".into())/>
            </div>
            <Amounts min=f.min max=f.max/>
            <Keys/>
            <MaxLag/>
            <Batching/>
            <OneTransaction/>
            <Burst/>
            <NoticeLine/>
        </div>
    }
}

/// What the generator does now, in one line.
#[component]
fn GeneratorLine() -> impl IntoView {
    let say = expect_context::<Say>();
    let reachable = say.ctx.select(|d| d.broker_reachable);
    let describe = move || match say.generator.get() {
        Some(g) => format!(
            "{} · {} · {} accounts · {}% credits · amounts {}–{} · linger {} ms, batches ≤ {} B",
            match (g.running, reachable.get(), g.held_by_lag) {
                (true, true, false) => "running".to_owned(),
                (true, true, true) => format!(
                    "running, held: the calculator is {} or more records behind",
                    g.max_lag.unwrap_or_default()
                ),
                (true, false, _) => "running, held until the broker is back".to_owned(),
                (false, _, _) => "paused".to_owned(),
            },
            g.rate
                .map(|r| format!("{r} tx/s"))
                .unwrap_or_else(|| "max rate".into()),
            g.settings.accounts,
            g.settings.credit_percent,
            g.settings.min_amount,
            g.settings.max_amount,
            g.linger_ms,
            g.batch_size
        ),
        None => "—".into(),
    };
    view! { <p class="state" data-testid="generator">{describe}</p> }
}

/// The presenter's login, while the server wants one and this page has none.
#[component]
fn LoginRow() -> impl IntoView {
    let say = expect_context::<Say>();
    let ctx = say.ctx;
    let token = field("");
    // A memo: the login row is built when it becomes needed and stays, not once a frame (a
    // presenter typing the token while the row was rebuilt lost the keystrokes: an e2e test
    // then sent the wrong token again).
    let wanted = ctx.select(|d| d.presenter_required && !d.presenter);
    let needs_login = Memo::new(move |_| ctx.connected() && wanted.get());
    move || {
        needs_login.get().then(|| view! {
            <div class="row login">
                <p class="reason">"Read-only: the presenter logs in to send commands."</p>
                <label>"Presenter token"
                    <input type="password" data-testid="token" prop:value=move || token.get() on:input=move |ev| token.set(event_target_value(&ev))/>
                </label>
                <button data-testid="login" on:click=move |_| {
                    let t = token.get();
                    ctx.token.set_value(Some(t.clone()));
                    say.send(Command::Login { token: t });
                }>"Log in"</button>
            </div>
        })
    }
}

#[component]
fn StartPause() -> impl IntoView {
    let say = expect_context::<Say>();
    let off = say.off();
    view! {
        <div class="row presenter-only">
            <button data-testid="start" disabled=move || off() || say.running() on:click=move |_| say.send(Command::Start)>"Start"</button>
            <button data-testid="pause" disabled=move || off() || !say.running() on:click=move |_| say.send(Command::Pause)>"Pause"</button>
        </div>
    }
}

/// The answer to the last command: this panel's own refusal first, else the server's.
#[component]
fn NoticeLine() -> impl IntoView {
    let say = expect_context::<Say>();
    view! {
        <p class="notice" data-testid="notice">{move || match (say.local_error.get(), say.ctx.notice.get()) {
            (Some(e), _) => view! { <span class="err">{e}</span> }.into_any(),
            (None, Some(Notice::Error { text, .. })) => view! { <span class="err">{text}</span> }.into_any(),
            (None, Some(Notice::Ok { text, .. })) => view! { <span class="ok">{text}</span> }.into_any(),
            (None, None) => ().into_any(),
        }}</p>
    }
}
