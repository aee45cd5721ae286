//! The balance calculator's members, the presenter's buttons for them, and the rebalances.

use cashflow_shared::command::Command;
use cashflow_shared::dashboard::clock;
use cashflow_shared::group::{MemberInfo, Rebalance};
use leptos::prelude::*;

use super::member_name;
use crate::socket::Ctx;

/// Rebalances listed at most (the newest).
const TIMELINE_SHOWN: usize = 5;

fn describe_rebalance(r: &Rebalance) -> String {
    let moved: Vec<String> = r
        .moves
        .iter()
        .map(|m| {
            format!(
                "p{} {} → {}",
                m.partition,
                member_name(m.from),
                member_name(m.to)
            )
        })
        .collect();
    let moved = if moved.len() > 6 {
        format!("{} partitions", moved.len())
    } else {
        moved.join(", ")
    };
    let when = clock(r.started_ms);
    let fresh = r.moves.iter().all(|m| m.from.is_none());
    match r.ended_ms {
        Some(_) if fresh => format!("{when} {}: {moved}", r.cause),
        Some(_) => format!(
            "{when} {}: {moved}; processing stood still {:.1} s",
            r.cause,
            r.paused_ms as f64 / 1000.0
        ),
        None => format!("{when} {}: {moved} (in progress)", r.cause),
    }
}

/// The balance calculator's members, the presenter's buttons and the rebalance timeline.
#[component]
pub fn MembersPanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let off = move || !ctx.can_command();
    let counts = ctx.select(|d| (d.group.members.len(), d.partitions.len()));
    let paused = ctx.select(|d| d.group.paused);
    let send = move |c: Command| {
        ctx.send(c);
    };
    let full = move || counts.with(|(members, partitions)| *members >= (*partitions).max(1));
    let alone = move || counts.with(|(members, _)| *members <= 1);
    let state = move || {
        if paused.get() {
            "Consuming paused: the members stay in the group, fetching stopped, so lag grows."
        } else {
            "Each member is its own Kafka consumer in one group; the broker gives each partition to exactly one."
        }
    };
    view! {
        <div class="members">
            <div class="row presenter-only">
                <button data-testid="add-member" disabled=move || off() || full()
                    on:click=move |_| send(Command::AddMember)>"Add member"</button>
                <button data-testid="remove-member" disabled=move || off() || alone()
                    on:click=move |_| send(Command::RemoveMember)>"Remove member"</button>
                {move || if paused.get() {
                    view! { <button data-testid="resume-consumption" disabled=off on:click=move |_| send(Command::ResumeConsumption)>"Resume consuming"</button> }.into_any()
                } else {
                    view! { <button data-testid="pause-consumption" disabled=off on:click=move |_| send(Command::PauseConsumption)>"Pause consuming"</button> }.into_any()
                }}
            </div>
            <p class="legend" data-testid="members-state">{state}</p>
            <MemberList/>
            <h3>"Rebalances, newest first"</h3>
            <Timeline/>
        </div>
    }
}

/// Each member, its partitions and its records (keyed by them: a member's row is made again
/// only when it changed).
#[component]
fn MemberList() -> impl IntoView {
    let members = expect_context::<Ctx>().select(|d| d.group.members.clone());
    view! {
        <ol class="memberlist">
            {crate::list::each(members, |m| member_row(m).into_any())}
        </ol>
    }
}

fn member_row(m: MemberInfo) -> impl IntoView {
    let parts = m
        .partitions
        .iter()
        .map(|p| format!("p{p}"))
        .collect::<Vec<_>>()
        .join(" ");
    let list = m
        .partitions
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let id = if m.member_id.is_empty() {
        "(joining)"
    } else {
        m.member_id.as_str()
    };
    let title = format!("Kafka member id {id}");
    view! {
        <li data-testid=format!("member-{}", m.member) data-partitions=list title=title>
            <b>{format!("M{}", m.member)}</b>" "{if parts.is_empty() { "no partitions".to_owned() } else { parts }}
            <span class="pnum">{format!("{} records", m.records)}</span>
        </li>
    }
}

/// The newest rebalances, each as a sentence.
#[component]
fn Timeline() -> impl IntoView {
    let entries = expect_context::<Ctx>().select(|d| {
        d.group
            .rebalances
            .iter()
            .rev()
            .take(TIMELINE_SHOWN)
            .map(|r| (r.cause.clone(), describe_rebalance(r)))
            .collect::<Vec<_>>()
    });
    move || {
        let items = entries
            .get()
            .into_iter()
            .map(|(cause, text)| view! { <li data-testid="rebalance" data-cause=cause>{text}</li> })
            .collect_view();
        view! { <ol class="timeline">{items}</ol> }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn clock_and_rebalance_text() {
        let r = Rebalance {
            started_ms: 0,
            ended_ms: Some(1_500),
            cause: "member 2 added".into(),
            moves: vec![cashflow_shared::group::Move {
                partition: 3,
                from: Some(1),
                to: Some(2),
                paused_ms: 1_500,
            }],
            paused_ms: 1_500,
        };
        assert_eq!(
            describe_rebalance(&r),
            "00:00:00 member 2 added: p3 member 1 → member 2; processing stood still 1.5 s"
        );
    }
}
