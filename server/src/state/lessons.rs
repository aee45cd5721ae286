//! The lessons' statuses the page shows: each lesson's latest run and the guided checks.
//!
//! Each status has one writer: the replay lesson ([`crate::lessons::replay`]), the delivery lesson's
//! naive calculator ([`crate::lessons::naive_calculator`]), the outage lesson ([`crate::lessons::outage`]) and
//! the monitor's lesson tracker ([`crate::monitor`], the checks); the demo's reset sets them
//! back once their tasks have stopped.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cashflow_shared::lessons::LessonsStatus;
use cashflow_shared::naive::NaiveStatus;
use cashflow_shared::outage::OutageStatus;
use cashflow_shared::replay::ReplayStatus;

use super::lock;

#[derive(Default)]
pub struct LessonBoard {
    replay: Versioned<ReplayStatus>,
    naive: Versioned<NaiveStatus>,
    outage: Versioned<OutageStatus>,
    checks: Versioned<LessonsStatus>,
    /// Bumped by a reset of the demo: the monitor starts its lesson tracker over.
    epoch: AtomicU64,
}

impl LessonBoard {
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

    /// The lessons' checks start over (a reset of the demo, a re-created topic).
    pub fn reset_checks(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.checks.set(Default::default());
    }

    /// Changes with every [`reset_checks`](Self::reset_checks).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

/// A lesson's status and a version that changes with every change, so the hub sends it only
/// when it changed.
#[derive(Default)]
pub struct Versioned<T> {
    inner: Mutex<(T, u64)>,
}

impl<T: Clone> Versioned<T> {
    pub fn get(&self) -> T {
        lock(&self.inner).0.clone()
    }

    pub fn set(&self, value: T) {
        self.update(|v| *v = value);
    }

    /// Changes it with `f` (under its lock, for as long as `f` runs: `f` takes no other).
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut v = lock(&self.inner);
        v.1 += 1;
        f(&mut v.0)
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
