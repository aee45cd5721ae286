//! What the page's feeds show: the logging consumer's recent lines, the charted history and
//! the newest dead letters. Every collection here is bounded.
//!
//! Written by the logging consumer ([`crate::pipeline::logging_consumer`]: lines), the monitor
//! ([`crate::monitor`]: a sample a second) and the dead-letter reader
//! ([`crate::pipeline::dead_letter_view`]).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cashflow_shared::api::LogLine;
use cashflow_shared::poison::{DeadLetterLog, DeadLetterView};
use cashflow_shared::protocol::{HISTORY_SAMPLES, Sample};

use super::lock;

/// Lines kept in the recent-transactions feed.
pub const RECENT_CAPACITY: usize = 500;

pub struct Feed {
    /// Newest first, each with a sequence number so the hub sends only new ones.
    recent: Mutex<VecDeque<(u64, LogLine)>>,
    recent_seq: AtomicU64,
    /// Charted history, oldest first, each with a sequence number.
    history: Mutex<VecDeque<(u64, Sample)>>,
    history_seq: AtomicU64,
    /// The newest records of the dead-letter topic, read back for the page.
    dead_letters: Mutex<DeadLetterLog>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            recent: Mutex::new(VecDeque::with_capacity(RECENT_CAPACITY)),
            recent_seq: AtomicU64::new(0),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_SAMPLES)),
            history_seq: AtomicU64::new(0),
            dead_letters: Mutex::new(DeadLetterLog::default()),
        }
    }
}

impl Feed {
    pub fn push_recent(&self, line: LogLine) {
        let mut r = lock(&self.recent);
        let seq = self.recent_seq.fetch_add(1, Ordering::Relaxed) + 1;
        if r.len() == RECENT_CAPACITY {
            r.pop_back();
        }
        r.push_front((seq, line));
    }

    /// A record the feed would have pushed out at once: counted, never kept.
    pub fn skip_recent(&self) {
        self.recent_seq.fetch_add(1, Ordering::Relaxed);
    }

    /// Newest first.
    pub fn recent(&self, limit: usize) -> Vec<LogLine> {
        lock(&self.recent)
            .iter()
            .take(limit)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Up to `limit` lines newer than `after` (newest first), and the newest sequence number.
    pub fn recent_since(&self, after: u64, limit: usize) -> (Vec<LogLine>, u64) {
        let r = lock(&self.recent);
        let newest = r.front().map(|(s, _)| *s).unwrap_or(after);
        let lines = r
            .iter()
            .take_while(|(s, _)| *s > after)
            .take(limit)
            .map(|(_, l)| l.clone())
            .collect();
        (lines, newest)
    }

    pub fn push_sample(&self, s: Sample) {
        let mut h = lock(&self.history);
        let seq = self.history_seq.fetch_add(1, Ordering::Relaxed) + 1;
        if h.len() == HISTORY_SAMPLES {
            h.pop_front();
        }
        h.push_back((seq, s));
    }

    /// The newest sample and its sequence number.
    pub fn newest_sample(&self) -> Option<(u64, Sample)> {
        lock(&self.history).back().cloned()
    }

    /// The charted history up to the sample numbered `seq`, oldest first (what a viewer was
    /// sent: it then takes the samples after it as changes).
    pub fn history_upto(&self, seq: u64) -> Vec<Sample> {
        lock(&self.history)
            .iter()
            .take_while(|(s, _)| *s <= seq)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// A record read back from the dead-letter topic.
    pub fn dead_letter_read(&self, letter: DeadLetterView) {
        lock(&self.dead_letters).push(letter);
    }

    /// The newest dead letters (newest first), how many were read, and their version.
    pub fn dead_letters(&self) -> (Vec<DeadLetterView>, u64, u64) {
        let l = lock(&self.dead_letters);
        (l.newest(), l.read(), l.version())
    }

    /// The newest dead letters and their version, if it is not `seen`.
    pub fn dead_letters_since(&self, seen: u64) -> Option<(Vec<DeadLetterView>, u64)> {
        let l = lock(&self.dead_letters);
        (l.version() != seen).then(|| (l.newest(), l.version()))
    }

    /// The topic's records are gone: so are the dead letters read of them.
    pub fn clear_dead_letters(&self) {
        lock(&self.dead_letters).clear();
    }
}
