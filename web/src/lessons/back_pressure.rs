//! Back-pressure: a maximum lag, the calculator paused and resumed.

use cashflow_shared::command::Command;
use cashflow_shared::lessons::LessonId;
use leptos::prelude::*;

use super::{Buttons, Lesson};

pub(super) const LESSON: Lesson = Lesson {
    id: LessonId::BackPressure,
    actions,
    panel: None,
};

fn actions(b: Buttons) -> AnyView {
    const HOLD: &[Command] = &[
        Command::Start,
        Command::SetMaxLag { max_lag: Some(100) },
        Command::PauseConsumption,
    ];
    view! {
        {b.button("do-max-lag", "Max lag 100, and pause the calculator", HOLD)}
        {b.button("do-resume", "Resume the calculator", &[Command::ResumeConsumption])}
        {b.button("do-max-lag-off", "Max lag off", &[Command::SetMaxLag { max_lag: None }])}
    }
    .into_any()
}
