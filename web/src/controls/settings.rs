//! The generator's settings, one small component a row: each parses what was typed and sends
//! it with [`Say`], which refuses it with the reason when it does not validate.

use cashflow_shared::command::{Command, Rate};
use cashflow_shared::ordering::KeyStrategy;
use cashflow_shared::{Money, TxType};
use leptos::prelude::*;

use super::{Say, field, input, whole};

#[component]
pub(super) fn RateSetting(rate: RwSignal<String>) -> impl IntoView {
    let say = expect_context::<Say>();
    let set = move |_| {
        let r = Rate::parse(&rate.get())
            .map(|r| Command::SetRate {
                rate: r.as_option(),
            })
            .map_err(|e| e.to_string());
        say.parse_or_say("rate", r)
    };
    view! {
        <div class="setting">
            <label>"Rate (tx/s)"{input(say, rate, "rate", "decimal")}</label>
            <button data-testid="rate-set" disabled=say.off() on:click=set>"Set"</button>
            <button disabled=say.off() on:click=move |_| say.send(Command::SetRate { rate: None })>"Max"</button>
        </div>
    }
}

/// One whole-number setting: its input, and a Set button sending what `make` makes of it.
#[component]
pub(super) fn NumberSetting(
    label: &'static str,
    testid: &'static str,
    value: RwSignal<String>,
    what: &'static str,
    make: fn(&str) -> Result<Command, String>,
) -> impl IntoView {
    let say = expect_context::<Say>();
    view! {
        <div class="setting">
            <label>{label}{input(say, value, testid, "numeric")}</label>
            <button data-testid=format!("{testid}-set") disabled=say.off()
                on:click=move |_| say.parse_or_say(what, make(&value.get()))>"Set"</button>
        </div>
    }
}

#[component]
pub(super) fn Amounts(min: RwSignal<String>, max: RwSignal<String>) -> impl IntoView {
    let say = expect_context::<Say>();
    let set = move |_| {
        let parse = |s: RwSignal<String>| s.get().parse::<Money>().map_err(|e| e.to_string());
        let r = parse(min).and_then(|min| {
            Ok(Command::SetAmounts {
                min,
                max: parse(max)?,
            })
        });
        say.parse_or_say("amounts", r)
    };
    view! {
        <div class="row presenter-only">
            <label>"Amounts"{input(say, min, "min", "decimal")}</label>
            <label>"to"{input(say, max, "max", "decimal")}</label>
            <button data-testid="amounts-set" disabled=say.off() on:click=set>"Set"</button>
        </div>
    }
}

#[component]
pub(super) fn Keys() -> impl IntoView {
    let say = expect_context::<Say>();
    let keys = move || {
        say.generator
            .with(|g| g.as_ref().map_or(KeyStrategy::default(), |g| g.keys))
    };
    view! {
        <div class="row presenter-only">
            <label title="How the producer keys its records: by account keeps each account on one partition, in order">"Keys"
                <select data-testid="keys" disabled=say.off()
                    prop:value=move || keys().name()
                    on:change=move |ev| if let Some(keys) = KeyStrategy::from_name(&event_target_value(&ev)) {
                        say.send(Command::SetKeys { keys });
                    }>
                    {KeyStrategy::ALL.map(|k| view! { <option value=k.name()>{k.label()}</option> }).collect_view()}
                </select>
            </label>
        </div>
    }
}

#[component]
pub(super) fn MaxLag() -> impl IntoView {
    let say = expect_context::<Say>();
    let max_lag = field("1000");
    let set = move |_| {
        let r = whole(max_lag, "").map(|n| Command::SetMaxLag { max_lag: Some(n) });
        say.parse_or_say("max lag", r)
    };
    view! {
        <div class="row presenter-only">
            <label title="Back-pressure: the producer waits while the balance calculator is this many records behind">"Max lag"{input(say, max_lag, "max-lag", "numeric")}</label>
            <button data-testid="max-lag-set" disabled=say.off() on:click=set>"Set"</button>
            <button data-testid="max-lag-off" disabled=say.off() on:click=move |_| say.send(Command::SetMaxLag { max_lag: None })>"Off"</button>
        </div>
    }
}

#[component]
pub(super) fn Batching() -> impl IntoView {
    let say = expect_context::<Say>();
    let (linger, batch) = (field("5"), field("1000000"));
    let set = move |_| {
        let r = whole(linger, "linger.ms").and_then(|linger_ms| {
            Ok(Command::SetBatching {
                linger_ms,
                batch_size: whole(batch, "batch bytes")?,
            })
        });
        say.parse_or_say("batching", r)
    };
    view! {
        <div class="row presenter-only">
            <label title="How long the producer waits to fill a batch, and how large a batch may grow">"linger.ms"{input(say, linger, "linger", "numeric")}</label>
            <label>"batch bytes"{input(say, batch, "batch-size", "numeric")}</label>
            <button data-testid="batching-set" disabled=say.off() on:click=set>"Set"</button>
        </div>
    }
}

#[component]
pub(super) fn OneTransaction() -> impl IntoView {
    let say = expect_context::<Say>();
    let (account, kind, amount) = (field("1"), field("Credit"), field("10.00"));
    let set = move |_| {
        let r = whole(account, "account").and_then(|account| {
            let transaction_type = if kind.get() == "Debit" {
                TxType::Debit
            } else {
                TxType::Credit
            };
            let amount = amount.get().parse::<Money>().map_err(|e| e.to_string())?;
            Ok(Command::Manual {
                account,
                transaction_type,
                amount,
            })
        });
        say.parse_or_say("transaction", r)
    };
    view! {
        <fieldset>
            <legend>"One transaction"</legend>
            <label>"Account"{input(say, account, "manual-account", "numeric")}</label>
            <select data-testid="manual-type" disabled=say.off() on:change=move |ev| kind.set(event_target_value(&ev))>
                <option value="Credit">"Credit"</option>
                <option value="Debit">"Debit"</option>
            </select>
            <label>"Amount"{input(say, amount, "manual-amount", "decimal")}</label>
            <button data-testid="manual-send" disabled=say.off() on:click=set>"Send"</button>
        </fieldset>
    }
}

#[component]
pub(super) fn Burst() -> impl IntoView {
    let say = expect_context::<Say>();
    let burst = field("100");
    let set = move |_| {
        let r = whole(burst, "").map(|count| Command::Burst { count });
        say.parse_or_say("burst", r)
    };
    view! {
        <div class="row presenter-only">
            <label>"Burst of"{input(say, burst, "burst", "numeric")}</label>
            <button data-testid="burst-send" disabled=say.off() on:click=set>"Send burst"</button>
        </div>
    }
}
