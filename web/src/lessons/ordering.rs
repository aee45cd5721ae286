//! Keys decide ordering: the control (keys by account), a second member, random keys, and
//! members that fall behind and catch up.

use cashflow_shared::command::Command;
use cashflow_shared::lessons::LessonId;
use cashflow_shared::ordering::KeyStrategy;
use leptos::prelude::*;

use super::{Buttons, Lesson};

pub(super) const LESSON: Lesson = Lesson {
    id: LessonId::Ordering,
    actions,
    panel: None,
};

fn actions(b: Buttons) -> AnyView {
    const BY_ACCOUNT: &[Command] = &[
        Command::SetKeys {
            keys: KeyStrategy::ByAccount,
        },
        Command::Start,
    ];
    const RANDOM: &[Command] = &[
        Command::SetKeys {
            keys: KeyStrategy::Random,
        },
        Command::Start,
    ];
    view! {
        {b.button("do-keys-by-account", "Keys by account (control)", BY_ACCOUNT)}
        {b.button("do-add-member", "Add a member", &[Command::AddMember])}
        {b.button("do-keys-random", "Random keys", RANDOM)}
        <button data-testid="do-fall-behind" disabled=b.off() on:click=move |_| {
            // Members that fall behind and catch up apply their partitions' backlogs one
            // after the other, as a slow or restarted consumer does: with random keys an
            // account's later transactions then often come first.
            b.send(Command::PauseConsumption);
            leptos::task::spawn_local(async move {
                gloo_timers::future::sleep(std::time::Duration::from_secs(2)).await;
                b.send(Command::ResumeConsumption);
            });
        }>"Let the members fall behind for 2 s"</button>
    }
    .into_any()
}
