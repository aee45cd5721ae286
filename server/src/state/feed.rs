//! What the page's feeds show: the logging consumer's recent lines, the charted history and
//! the newest dead letters. Every collection here is bounded.
//!
//! Each part has one writer, which holds its writing half (made once, with the stores by
//! [`Shared::new`](super::Shared::new), and not `Clone`); [`Feed`], in the shared state, only
//! reads:
//!
//! | part | its one writer | writing half |
//! |---|---|---|
//! | the recent lines | the logging consumer ([`crate::pipeline::logging_consumer`]) | [`LineWriter`] |
//! | the charted history | the monitor ([`crate::monitor`]), a sample a second | [`HistoryWriter`] |
//! | the dead letters | the dead-letter reader ([`crate::pipeline::dead_letter_view`]) | [`DeadLetterWriter`] |

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cashflow_shared::api::LogLine;
use cashflow_shared::poison::{DeadLetterLog, DeadLetterView};
use cashflow_shared::protocol::{HISTORY_SAMPLES, Sample};

use super::lock;

/// Lines kept in the recent-transactions feed.
pub const RECENT_CAPACITY: usize = 500;

/// Items numbered in the order they came, the newest `capacity` kept.
struct Numbered<T> {
    items: Mutex<VecDeque<(u64, T)>>,
    /// The number of the newest item (skipped ones count too).
    last: AtomicU64,
}

/// Where a [`Numbered`] keeps its newest item.
#[derive(Clone, Copy)]
enum Newest {
    First,
    Last,
}

impl<T> Numbered<T> {
    fn new(capacity: usize) -> Self {
        Numbered {
            items: Mutex::new(VecDeque::with_capacity(capacity)),
            last: AtomicU64::new(0),
        }
    }

    /// Numbers `item` and keeps it, the oldest going once `capacity` are kept.
    fn push(&self, item: T, capacity: usize, newest: Newest) {
        let mut items = lock(&self.items);
        let seq = self.last.fetch_add(1, Ordering::Relaxed) + 1;
        match newest {
            Newest::First => {
                if items.len() == capacity {
                    items.pop_back();
                }
                items.push_front((seq, item));
            }
            Newest::Last => {
                if items.len() == capacity {
                    items.pop_front();
                }
                items.push_back((seq, item));
            }
        }
    }
}

/// The page's feeds, read.
pub struct Feed {
    /// Newest first, each with a sequence number so the hub sends only new ones.
    recent: Arc<Numbered<LogLine>>,
    /// Charted history, oldest first, each with a sequence number.
    history: Arc<Numbered<Sample>>,
    /// The newest records of the dead-letter topic, read back for the page.
    dead_letters: Arc<Mutex<DeadLetterLog>>,
}

/// The writing halves of the feed's parts, one for each part's writer.
pub struct FeedWriters {
    pub lines: LineWriter,
    pub history: HistoryWriter,
    pub dead_letters: DeadLetterWriter,
}

impl Feed {
    pub(super) fn new() -> (Feed, FeedWriters) {
        let feed = Feed {
            recent: Arc::new(Numbered::new(RECENT_CAPACITY)),
            history: Arc::new(Numbered::new(HISTORY_SAMPLES)),
            dead_letters: Arc::new(Mutex::new(DeadLetterLog::default())),
        };
        let writers = FeedWriters {
            lines: LineWriter(feed.recent.clone()),
            history: HistoryWriter(feed.history.clone()),
            dead_letters: DeadLetterWriter {
                log: feed.dead_letters.clone(),
                recreations_seen: AtomicU32::new(0),
            },
        };
        (feed, writers)
    }

    /// Newest first.
    pub fn recent(&self, limit: usize) -> Vec<LogLine> {
        lock(&self.recent.items)
            .iter()
            .take(limit)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Up to `limit` lines newer than `after` (newest first), and the newest sequence number.
    pub fn recent_since(&self, after: u64, limit: usize) -> (Vec<LogLine>, u64) {
        let r = lock(&self.recent.items);
        let newest = r.front().map(|(s, _)| *s).unwrap_or(after);
        let lines = r
            .iter()
            .take_while(|(s, _)| *s > after)
            .take(limit)
            .map(|(_, l)| l.clone())
            .collect();
        (lines, newest)
    }

    /// The newest sample and its sequence number.
    pub fn newest_sample(&self) -> Option<(u64, Sample)> {
        lock(&self.history.items).back().cloned()
    }

    /// The charted history up to the sample numbered `seq`, oldest first (what a viewer was
    /// sent: it then takes the samples after it as changes).
    pub fn history_upto(&self, seq: u64) -> Vec<Sample> {
        lock(&self.history.items)
            .iter()
            .take_while(|(s, _)| *s <= seq)
            .map(|(_, s)| s.clone())
            .collect()
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
}

/// The recent lines' writing half: the logging consumer's.
pub struct LineWriter(Arc<Numbered<LogLine>>);

impl LineWriter {
    pub fn push(&self, line: LogLine) {
        self.0.push(line, RECENT_CAPACITY, Newest::First);
    }

    /// A record the feed would have pushed out at once: counted, never kept.
    pub fn skip(&self) {
        self.0.last.fetch_add(1, Ordering::Relaxed);
    }
}

/// The charted history's writing half: the monitor's.
pub struct HistoryWriter(Arc<Numbered<Sample>>);

impl HistoryWriter {
    pub fn push(&self, s: Sample) {
        self.0.push(s, HISTORY_SAMPLES, Newest::Last);
    }
}

/// The dead letters' writing half: the dead-letter reader's.
pub struct DeadLetterWriter {
    log: Arc<Mutex<DeadLetterLog>>,
    /// The topic's re-creations (see [`Shared::recreations`](super::Shared::recreations))
    /// whose letters are cleared already.
    recreations_seen: AtomicU32,
}

impl DeadLetterWriter {
    /// A record read back from the dead-letter topic.
    pub fn read(&self, letter: DeadLetterView) {
        lock(&self.log).push(letter);
    }

    /// The topic was deleted and created again `recreations` times in all: once more than
    /// this writer knows, the letters read of its old records go.
    pub fn topic_recreated(&self, recreations: u32) {
        if self.recreations_seen.swap(recreations, Ordering::Relaxed) != recreations {
            lock(&self.log).clear();
        }
    }
}
