//! The lessons' statuses the page shows: each lesson's latest run and the guided checks.
//!
//! Each status has one writer, which holds its [`Writer`] (made with the stores by
//! [`Shared::new`](super::Shared::new), not `Clone`): the replay lesson
//! ([`crate::lessons::replay`]), the delivery lesson's naive calculator
//! ([`crate::lessons::naive_calculator`]), the outage lesson ([`crate::lessons::outage`]) and
//! the monitor's lesson tracker ([`crate::monitor`], the checks). The demo's reset asks each
//! lesson to forget its run, and the monitor to start the checks over
//! ([`LessonBoard::start_checks_over`]); [`LessonBoard`] itself only reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cashflow_shared::lessons::LessonsStatus;
use cashflow_shared::naive::NaiveStatus;
use cashflow_shared::outage::OutageStatus;
use cashflow_shared::replay::ReplayStatus;

use super::lock;

pub struct LessonBoard {
    replay: Arc<Versioned<ReplayStatus>>,
    naive: Arc<Versioned<NaiveStatus>>,
    outage: Arc<Versioned<OutageStatus>>,
    checks: Arc<Versioned<LessonsStatus>>,
    /// Bumped by a reset of the demo: the monitor starts its lesson tracker over.
    epoch: AtomicU64,
}

/// The writing halves of the lessons' statuses, one for each status's writer.
pub struct LessonWriters {
    pub replay: Writer<ReplayStatus>,
    pub naive: Writer<NaiveStatus>,
    pub outage: Writer<OutageStatus>,
    pub checks: Writer<LessonsStatus>,
}

impl LessonBoard {
    pub(super) fn new() -> (LessonBoard, LessonWriters) {
        let board = LessonBoard {
            replay: Arc::default(),
            naive: Arc::default(),
            outage: Arc::default(),
            checks: Arc::default(),
            epoch: AtomicU64::new(0),
        };
        let writers = LessonWriters {
            replay: Writer(board.replay.clone()),
            naive: Writer(board.naive.clone()),
            outage: Writer(board.outage.clone()),
            checks: Writer(board.checks.clone()),
        };
        (board, writers)
    }

    /// The replay lesson's latest run.
    pub fn replay(&self) -> &Versioned<ReplayStatus> {
        &self.replay
    }

    /// The delivery-semantics lesson's naive calculator.
    pub fn naive(&self) -> &Versioned<NaiveStatus> {
        &self.naive
    }

    /// The outage lesson's latest outage.
    pub fn outage(&self) -> &Versioned<OutageStatus> {
        &self.outage
    }

    /// The guided lessons' checks.
    pub fn checks(&self) -> &Versioned<LessonsStatus> {
        &self.checks
    }

    /// The lessons' checks start over (a reset of the demo, a re-created topic): the monitor,
    /// their writer, empties them at its next look (a quarter of a second).
    pub fn start_checks_over(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Changes with every [`start_checks_over`](Self::start_checks_over).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

/// A status and a version that changes with every change, so the hub sends it only when it
/// changed. Read here; written only through its one [`Writer`].
#[derive(Default)]
pub struct Versioned<T> {
    inner: Mutex<(T, u64)>,
}

impl<T: Clone> Versioned<T> {
    pub fn get(&self) -> T {
        lock(&self.inner).0.clone()
    }

    /// Its version now.
    pub fn version(&self) -> u64 {
        lock(&self.inner).1
    }

    /// It, if it changed since version `seen` (which then moves on to its version now).
    pub fn changed_since(&self, seen: &mut u64) -> Option<T> {
        let (value, version) = self.since(*seen)?;
        *seen = version;
        Some(value)
    }

    /// It and its version, if the version is not `seen`.
    pub fn since(&self, seen: u64) -> Option<(T, u64)> {
        let v = lock(&self.inner);
        (v.1 != seen).then(|| (v.0.clone(), v.1))
    }
}

/// The one writing half of a [`Versioned`] status.
pub struct Writer<T>(Arc<Versioned<T>>);

impl<T: Clone> Writer<T> {
    pub fn get(&self) -> T {
        self.0.get()
    }

    pub fn set(&self, value: T) {
        self.update(|v| *v = value);
    }

    /// Changes it with `f` (under its lock, for as long as `f` runs: `f` takes no other).
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut v = lock(&self.0.inner);
        v.1 += 1;
        f(&mut v.0)
    }
}
