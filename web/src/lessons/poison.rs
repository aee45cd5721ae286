//! Poison pills go to a dead-letter topic: one record of each malformed kind, injected.
//! (The dead letters themselves are the page's dead-letter panel, not this lesson's.)

use cashflow_shared::command::Command;
use cashflow_shared::lessons::LessonId;
use cashflow_shared::poison::Poison;
use leptos::prelude::*;

use super::{Buttons, Lesson};

pub(super) const LESSON: Lesson = Lesson {
    id: LessonId::Poison,
    actions,
    panel: None,
};

fn actions(b: Buttons) -> AnyView {
    const fn inject(i: usize) -> Command {
        Command::Inject {
            poison: Poison::ALL[i],
        }
    }
    // One of each kind (`Poison::ALL` has six).
    static EACH: [Command; 6] = [
        inject(0),
        inject(1),
        inject(2),
        inject(3),
        inject(4),
        inject(5),
    ];
    b.button("do-poison", "Inject one of each kind", &EACH)
}
