//! Each lesson's status as the page shows it: its outcome and its control case, each a
//! [`Case`] with a state and a sentence.

use serde::{Deserialize, Serialize};

use super::LessonId;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Its conditions have not been met yet.
    #[default]
    NotRun,
    /// Its conditions hold; no outcome yet.
    Running,
    /// The outcome happened (in the data).
    Happened,
    /// The conditions held long enough and the outcome did not happen.
    DidNotHappen,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub state: CaseState,
    /// What the data showed.
    pub detail: String,
}

impl Case {
    pub(super) fn set(&mut self, state: CaseState, detail: String) {
        self.state = state;
        self.detail = detail;
    }

    pub(super) fn settled(&self) -> bool {
        matches!(self.state, CaseState::Happened | CaseState::DidNotHappen)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessonStatus {
    pub id: LessonId,
    pub experiment: Case,
    pub control: Option<Case>,
}

impl LessonStatus {
    /// The experiment's outcome happened and the control's (if any) did not.
    pub fn done(&self) -> bool {
        self.experiment.state == CaseState::Happened
            && self
                .control
                .as_ref()
                .is_none_or(|c| c.state == CaseState::DidNotHappen)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessonsStatus {
    pub lessons: Vec<LessonStatus>,
}

impl Default for LessonsStatus {
    fn default() -> Self {
        LessonsStatus {
            lessons: LessonId::ALL
                .iter()
                .map(|id| LessonStatus {
                    id: *id,
                    experiment: Case::default(),
                    control: id.control().map(|_| Case::default()),
                })
                .collect(),
        }
    }
}

impl LessonsStatus {
    pub fn get(&self, id: LessonId) -> Option<&LessonStatus> {
        self.lessons.iter().find(|l| l.id == id)
    }

    pub(super) fn get_mut(&mut self, id: LessonId) -> &mut LessonStatus {
        let i = self.lessons.iter().position(|l| l.id == id).unwrap_or(0);
        &mut self.lessons[i]
    }
}
