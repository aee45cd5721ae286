//! What the presenter set, kept in the data dir across restarts: a teacher who paused the
//! demo, chose 20 accounts and two members and ran three lessons yesterday finds it so today.
//!
//! Kept in `<data dir>/presenter-settings.json` (nothing with `--ephemeral`), for one topic:
//! generation running or paused, its rate, accounts, credit share and amounts, the producer's
//! keys, the calculator's members and the lessons' checks. They come back when cashflow starts
//! again on the same topic (another topic is another demo); a flag given on the command line
//! or in the environment wins over what was kept ([`Explicit`](crate::config::Explicit)); *Reset the demo* clears the
//! checks (the next write keeps them cleared).
//!
//! Only the `cashflow` binary keeps them (`Settings::explicit` is `Some`); tests and embedding
//! programs get exactly the settings they give. One writer: [`keep`] looks once a second and rewrites the file (aside, then renamed) when
//! anything changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cashflow_shared::Money;
use cashflow_shared::lessons::{LessonsStatus, Tracker};
use cashflow_shared::ordering::KeyStrategy;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::{Rate, Settings};
use crate::state::Shared;

/// The file in the data dir.
pub const FILE: &str = "presenter-settings.json";

/// Most calculator members restored (the topic's partitions bound them again when added).
const MAX_MEMBERS: u32 = 6;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    pub running: bool,
    /// Transactions per second; `None`: as fast as possible.
    pub rate: Option<f64>,
    pub accounts: u32,
    pub credit_percent: u8,
    pub min_amount: Money,
    pub max_amount: Money,
    pub keys: KeyStrategy,
    pub members: u32,
    /// The topic the checks are about.
    pub topic: String,
    pub lessons: LessonsStatus,
}

/// What was kept in `data_dir`, if anything readable (an unreadable file is reported and
/// ignored: the flags' defaults then apply).
pub fn load(data_dir: &Path) -> Option<Kept> {
    let path = data_dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(file = %path.display(), "cannot read the presenter's settings ({e}); starting from the flags");
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| warn!(file = %path.display(), "the presenter's settings are unreadable ({e}); starting from the flags"))
        .ok()
}

/// `settings` with what was kept, where no flag said otherwise. Values a flag would refuse
/// are left out (the file is the user's to edit).
pub fn apply(kept: &Kept, settings: &mut Settings) {
    let e = settings.explicit.unwrap_or_default();
    if !e.paused {
        settings.paused = !kept.running;
    }
    if !e.rate
        && let Ok(r) = Rate::from_option(kept.rate)
    {
        settings.rate = r;
    }
    let mut g = settings.generator.clone();
    if !e.accounts {
        g.accounts = kept.accounts;
    }
    if !e.credit_percent {
        g.credit_percent = kept.credit_percent;
    }
    if !e.amounts {
        g.min_amount = kept.min_amount;
        g.max_amount = kept.max_amount;
    }
    if g.validate().is_ok() {
        settings.generator = g;
    }
}

/// The lessons' checks to start from: those kept, settled ones only.
pub fn lessons(kept: &Kept) -> LessonsStatus {
    Tracker::resumed(kept.lessons.clone()).status().clone()
}

/// Calculator members to add at start beyond the first.
pub fn extra_members(kept: &Kept) -> u32 {
    kept.members.clamp(1, MAX_MEMBERS) - 1
}

fn now(shared: &Shared) -> Option<Kept> {
    let g = shared.producer().generator()?;
    Some(Kept {
        running: g.running,
        rate: g.rate,
        accounts: g.settings.accounts,
        credit_percent: g.settings.credit_percent,
        min_amount: g.settings.min_amount,
        max_amount: g.settings.max_amount,
        keys: g.keys,
        members: (shared.group().status().members.len() as u32).max(1),
        topic: shared.topic().to_owned(),
        lessons: shared.lessons().checks().get(),
    })
}

fn write(path: &PathBuf, kept: &Kept) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Aside under a name of this process's own: two servers on one data dir (tests on other
    // topics) never rename each other's half-written file.
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(kept).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

/// Keeps what the presenter set in `data_dir` until `token` is cancelled: looks once a
/// second, writes when it changed. Stops before shutdown takes generation down, so the file
/// holds what the presenter last set, not the stopping server's state.
pub async fn keep(shared: Arc<Shared>, data_dir: PathBuf, token: CancellationToken) {
    let path = data_dir.join(FILE);
    let mut written = load(&data_dir);
    let mut warned = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(now) = now(&shared) else { continue };
        if written.as_ref() == Some(&now) {
            continue;
        }
        match write(&path, &now) {
            Ok(()) => {
                written = Some(now);
                warned = false;
            }
            Err(e) if !warned => {
                warn!(file = %path.display(), "cannot keep the presenter's settings: {e}");
                warned = true;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Explicit;
    use cashflow_shared::lessons::{CaseState, LessonId};

    fn kept() -> Kept {
        let mut lessons = LessonsStatus::default();
        if let Some(l) = lessons
            .lessons
            .iter_mut()
            .find(|l| l.id == LessonId::Poison)
        {
            l.experiment.state = CaseState::Happened;
            l.experiment.detail = "6 dead letters".into();
        }
        if let Some(l) = lessons
            .lessons
            .iter_mut()
            .find(|l| l.id == LessonId::Ordering)
        {
            l.experiment.state = CaseState::Running;
        }
        Kept {
            running: false,
            rate: Some(0.5),
            accounts: 20,
            credit_percent: 30,
            min_amount: Money::from_minor(25),
            max_amount: Money::from_major(7),
            keys: KeyStrategy::Random,
            members: 3,
            topic: "transactions".into(),
            lessons,
        }
    }

    #[test]
    fn kept_settings_apply_unless_a_flag_said_otherwise() {
        let mut s = Settings::for_tests(None, "transactions");
        s.paused = false;
        apply(&kept(), &mut s);
        assert!(s.paused);
        assert_eq!(s.rate, Rate::PerSecond(0.5));
        assert_eq!((s.generator.accounts, s.generator.credit_percent), (20, 30));
        assert_eq!(s.generator.min_amount, Money::from_minor(25));

        let mut s = Settings::for_tests(None, "transactions");
        s.paused = false;
        s.explicit = Some(Explicit {
            rate: true,
            paused: true,
            accounts: true,
            credit_percent: false,
            amounts: false,
        });
        let before = (s.rate, s.generator.accounts);
        apply(&kept(), &mut s);
        assert!(!s.paused, "the flags (or their environment) decided paused");
        assert_eq!((s.rate, s.generator.accounts), before);
        assert_eq!(s.generator.credit_percent, 30);
    }

    #[test]
    fn invalid_kept_values_are_left_out() {
        let mut k = kept();
        k.accounts = 0;
        k.rate = Some(-1.0);
        let mut s = Settings::for_tests(None, "transactions");
        let before = (s.rate, s.generator.clone());
        apply(&k, &mut s);
        assert_eq!((s.rate, s.generator), before);
    }

    #[test]
    fn settled_checks_come_back() {
        let l = lessons(&kept());
        let poison = l.get(LessonId::Poison).expect("poison");
        assert_eq!(poison.experiment.state, CaseState::Happened);
        assert!(poison.experiment.detail.contains("6 dead letters"));
        let ordering = l.get(LessonId::Ordering).expect("ordering");
        assert_eq!(
            ordering.experiment.state,
            CaseState::NotRun,
            "a check under way starts over"
        );
        assert_eq!(extra_members(&kept()), 2);
    }

    #[tokio::test]
    async fn written_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(&dir.path().join(FILE), &kept()).expect("write");
        assert_eq!(load(dir.path()), Some(kept()));
        std::fs::write(dir.path().join(FILE), b"{").expect("garbage");
        assert_eq!(load(dir.path()), None);
    }
}
