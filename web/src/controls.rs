//! Generator commands. Inputs are parsed here (exact money) and validated with the same
//! [`Command::validate`] the server applies again, so a bad value is refused before it is sent;
//! every command's ack or error is shown under the controls.

use cashflow_shared::command::{Command, Rate};
use cashflow_shared::dashboard::Notice;
use cashflow_shared::ordering::KeyStrategy;
use cashflow_shared::{Money, TxType};
use leptos::prelude::*;

use crate::socket::Ctx;

fn field(initial: &str) -> RwSignal<String> {
    RwSignal::new(initial.to_owned())
}

#[component]
pub fn Controls() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let local_error = RwSignal::new(None::<String>);
    let off = move || !ctx.can_command();
    let token = field("");
    // A memo: the login row is built when it becomes needed and stays, not once a frame (a
    // presenter typing the token while the row was rebuilt lost the keystrokes: an e2e test
    // then sent the wrong token again).
    let needs_login = Memo::new(move |_| {
        ctx.version.get();
        ctx.connected()
            && ctx
                .dash
                .with_value(|d| d.presenter_required && !d.presenter)
    });
    let send = move |c: Command| {
        local_error.set(None);
        if ctx.send(c).is_none() {
            local_error.set(Some("not connected".into()));
        }
    };
    let parse_or_say = move |what: &str, r: Result<Command, String>| match r
        .and_then(|c| c.validate().map(|()| c).map_err(|e| e.to_string()))
    {
        Ok(c) => send(c),
        Err(e) => local_error.set(Some(format!("{what}: {e}"))),
    };

    let rate = field("2");
    let accounts = field("5");
    let credit = field("50");
    let min = field("1");
    let max = field("20");
    let m_account = field("1");
    let m_type = field("Credit");
    let m_amount = field("10.00");
    let burst = field("100");
    let max_lag = field("1000");
    let linger = field("5");
    let batch = field("1000000");

    let generator = move || {
        ctx.version.get();
        ctx.dash.with_value(|d| d.generator.clone())
    };
    let running = move || generator().is_some_and(|g| g.running);
    // Fill the inputs with the server's settings whenever a (re)connection brings them.
    let filled_for = StoredValue::new(0u64);
    Effect::new(move |_| {
        ctx.version.get();
        let (snapshots, g) = ctx.dash.with_value(|d| (d.snapshots, d.generator.clone()));
        if let Some(g) = g.filter(|_| filled_for.get_value() != snapshots) {
            filled_for.set_value(snapshots);
            rate.set(
                g.rate
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "max".into()),
            );
            accounts.set(g.settings.accounts.to_string());
            credit.set(g.settings.credit_percent.to_string());
            min.set(g.settings.min_amount.to_string());
            max.set(g.settings.max_amount.to_string());
        }
    });
    let broker_reachable = move || {
        ctx.version.get();
        ctx.dash.with_value(|d| d.broker_reachable)
    };
    let describe = move || match generator() {
        Some(g) => format!(
            "{} · {} · {} accounts · {}% credits · amounts {}–{} · linger {} ms, batches ≤ {} B",
            match (g.running, broker_reachable(), g.held_by_lag) {
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
    // Text inputs, never `type="number"`: the browser reports a number field holding "0." or
    // "-" as "", and writing that back moved the cursor, so "0.5" became "50". `inputmode`
    // still brings up a number keyboard on a tablet; every value is parsed (and refused with a
    // reason) on Set.
    let input = move |sig: RwSignal<String>, testid: &'static str, mode: &'static str| {
        view! { <input type="text" inputmode=mode autocomplete="off" data-testid=testid prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) disabled=off/> }
    };

    view! {
        <div class="controls">
            <p class="state" data-testid="generator">{describe}</p>
            {move || (!ctx.connected()).then(|| view! { <p class="reason">"Disconnected: the controls come back when the server does."</p> })}
            {move || needs_login.get().then(|| view! {
                <div class="row login">
                    <p class="reason">"Read-only: the presenter logs in to send commands."</p>
                    <label>"Presenter token"
                        <input type="password" data-testid="token" prop:value=move || token.get() on:input=move |ev| token.set(event_target_value(&ev))/>
                    </label>
                    <button data-testid="login" on:click=move |_| {
                        let t = token.get();
                        ctx.token.set_value(Some(t.clone()));
                        send(Command::Login { token: t });
                    }>"Log in"</button>
                </div>
            })}
            <div class="row presenter-only">
                <button data-testid="start" disabled=move || off() || running() on:click=move |_| send(Command::Start)>"Start"</button>
                <button data-testid="pause" disabled=move || off() || !running() on:click=move |_| send(Command::Pause)>"Pause"</button>
            </div>
            <div class="flow">
            <div class="setting">
                <label>"Rate (tx/s)"{input(rate, "rate", "decimal")}</label>
                <button data-testid="rate-set" disabled=off on:click=move |_| parse_or_say("rate", Rate::parse(&rate.get()).map(|r| Command::SetRate { rate: r.as_option() }).map_err(|e| e.to_string()))>"Set"</button>
                <button disabled=off on:click=move |_| send(Command::SetRate { rate: None })>"Max"</button>
            </div>
            <div class="setting">
                <label>"Accounts"{input(accounts, "accounts", "numeric")}</label>
                <button data-testid="accounts-set" disabled=off on:click=move |_| parse_or_say("accounts", accounts.get().trim().parse().map(|accounts| Command::SetAccounts { accounts }).map_err(|_| "a whole number".into()))>"Set"</button>
            </div>
            <div class="setting">
                <label>"Credits (%)"{input(credit, "credit", "numeric")}</label>
                <button data-testid="credit-set" disabled=off on:click=move |_| parse_or_say("credits", credit.get().trim().parse().map(|credit_percent| Command::SetMix { credit_percent }).map_err(|_| "0 to 100".into()))>"Set"</button>
            </div>
            </div>
            <div class="row presenter-only">
                <label>"Amounts"{input(min, "min", "decimal")}</label>
                <label>"to"{input(max, "max", "decimal")}</label>
                <button data-testid="amounts-set" disabled=off on:click=move |_| parse_or_say("amounts", (|| Ok(Command::SetAmounts { min: min.get().parse::<Money>().map_err(|e| e.to_string())?, max: max.get().parse::<Money>().map_err(|e| e.to_string())? }))())>"Set"</button>
            </div>
            <div class="row presenter-only">
                <label title="How the producer keys its records: by account keeps each account on one partition, in order">"Keys"
                    <select data-testid="keys" disabled=off
                        prop:value=move || generator().map_or(KeyStrategy::default(), |g| g.keys).name()
                        on:change=move |ev| if let Some(keys) = KeyStrategy::from_name(&event_target_value(&ev)) {
                            send(Command::SetKeys { keys });
                        }>
                        {KeyStrategy::ALL.map(|k| view! { <option value=k.name()>{k.label()}</option> }).collect_view()}
                    </select>
                </label>
            </div>
            <div class="row presenter-only">
                <label title="Back-pressure: the producer waits while the balance calculator is this many records behind">"Max lag"{input(max_lag, "max-lag", "numeric")}</label>
                <button data-testid="max-lag-set" disabled=off on:click=move |_| parse_or_say("max lag", max_lag.get().trim().parse().map(|n| Command::SetMaxLag { max_lag: Some(n) }).map_err(|_| "a whole number".into()))>"Set"</button>
                <button data-testid="max-lag-off" disabled=off on:click=move |_| send(Command::SetMaxLag { max_lag: None })>"Off"</button>
            </div>
            <div class="row presenter-only">
                <label title="How long the producer waits to fill a batch, and how large a batch may grow">"linger.ms"{input(linger, "linger", "numeric")}</label>
                <label>"batch bytes"{input(batch, "batch-size", "numeric")}</label>
                <button data-testid="batching-set" disabled=off on:click=move |_| parse_or_say("batching", (|| Ok(Command::SetBatching {
                    linger_ms: linger.get().trim().parse().map_err(|_| "linger.ms: a whole number".to_string())?,
                    batch_size: batch.get().trim().parse().map_err(|_| "batch bytes: a whole number".to_string())?,
                }))())>"Set"</button>
            </div>
            <fieldset>
                <legend>"One transaction"</legend>
                <label>"Account"{input(m_account, "manual-account", "numeric")}</label>
                <select data-testid="manual-type" disabled=off on:change=move |ev| m_type.set(event_target_value(&ev))>
                    <option value="Credit">"Credit"</option>
                    <option value="Debit">"Debit"</option>
                </select>
                <label>"Amount"{input(m_amount, "manual-amount", "decimal")}</label>
                <button data-testid="manual-send" disabled=off on:click=move |_| parse_or_say("transaction", (|| {
                    let account = m_account.get().trim().parse().map_err(|_| "account: a whole number".to_string())?;
                    let transaction_type = if m_type.get() == "Debit" { TxType::Debit } else { TxType::Credit };
                    let amount = m_amount.get().parse::<Money>().map_err(|e| e.to_string())?;
                    Ok(Command::Manual { account, transaction_type, amount })
                })())>"Send"</button>
            </fieldset>
            <div class="row presenter-only">
                <label>"Burst of"{input(burst, "burst", "numeric")}</label>
                <button data-testid="burst-send" disabled=off on:click=move |_| parse_or_say("burst", burst.get().trim().parse().map(|count| Command::Burst { count }).map_err(|_| "a whole number".into()))>"Send burst"</button>
            </div>
            <p class="notice" data-testid="notice">{move || match (local_error.get(), ctx.notice.get()) {
                (Some(e), _) => view! { <span class="err">{e}</span> }.into_any(),
                (None, Some(Notice::Error { text, .. })) => view! { <span class="err">{text}</span> }.into_any(),
                (None, Some(Notice::Ok { text, .. })) => view! { <span class="ok">{text}</span> }.into_any(),
                (None, None) => ().into_any(),
            }}</p>
        </div>
    }
}
