//! The topics this cashflow created, by topic id: what *Reset the demo* may delete.
//!
//! Any client can create a topic named `transactions`, and a server pointed at it must never
//! delete another team's data. Kafka refuses unknown topic configs, so no marker can ride on
//! the topic itself; instead, when cashflow creates a topic it asks the broker for the topic's
//! id (DescribeTopics) and keeps it, in `<data dir>/created-topics.json` (in memory only with
//! `--ephemeral`). A topic id names one incarnation: a topic deleted and created again by
//! someone else under the same name has another id, and is not cashflow's.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tracing::warn;

/// At most this many topics are remembered (the oldest go first): one a topic name and
/// incarnation a user ever pointed cashflow at, so a few in practice.
const MAX_KEPT: usize = 1_000;
/// The file in the data dir.
pub const FILE: &str = "created-topics.json";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    /// Oldest first.
    created: VecDeque<Created>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Created {
    topic: String,
    /// As the broker gave it (base64). By name and id together: a broker that gives no ids
    /// (all zero) still tells topics apart by name.
    id: String,
    /// Seconds since the epoch.
    at: u64,
}

/// One owner of the record; each verb takes the lock for itself.
pub struct CreatedTopics {
    file: Option<PathBuf>,
    record: Mutex<Record>,
    /// Created by this process, id not recorded yet (the broker did not describe it yet).
    pending: Mutex<std::collections::BTreeSet<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl CreatedTopics {
    /// The record kept in `data_dir` (read if present), or an in-memory one without it. A
    /// file that cannot be read is reported and treated as empty: cashflow then deletes
    /// nothing it created before, which is the safe side.
    pub fn load(data_dir: Option<&Path>) -> CreatedTopics {
        let file = data_dir.map(|d| d.join(FILE));
        let record = match &file {
            Some(f) => match std::fs::read(f) {
                Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    warn!(file = %f.display(), "the record of created topics is unreadable ({e}): no topic counts as created by cashflow");
                    Record::default()
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record::default(),
                Err(e) => {
                    warn!(file = %f.display(), "cannot read the record of created topics ({e}): no topic counts as created by cashflow");
                    Record::default()
                }
            },
            None => Record::default(),
        };
        CreatedTopics {
            file,
            record: Mutex::new(record),
            pending: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This process created `topic`; its id is to be [recorded](Self::record).
    pub fn pending(&self, topic: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_owned());
    }

    /// Whether `topic` was created by this process and its id not recorded yet.
    pub fn is_pending(&self, topic: &str) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(topic)
    }

    /// Cashflow created `topic`, whose id is `id`.
    pub fn record(&self, topic: &str, id: &str) -> Result<(), RecordError> {
        if id.is_empty() {
            return Ok(()); // no id to tell this incarnation by: not recorded, never deleted
        }
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(topic);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut r = self.lock();
        // Another server on the same data dir may have recorded topics since this one read
        // the file: merged, not overwritten.
        if let Some(f) = &self.file
            && let Ok(bytes) = std::fs::read(f)
            && let Ok(on_disk) = serde_json::from_slice::<Record>(&bytes)
        {
            for c in on_disk.created {
                if !r.created.contains(&c) {
                    r.created.push_back(c);
                }
            }
        }
        r.created.retain(|c| !(c.topic == topic && c.id == id));
        r.created.push_back(Created {
            topic: topic.to_owned(),
            id: id.to_owned(),
            at: now,
        });
        while r.created.len() > MAX_KEPT {
            r.created.pop_front();
        }
        let Some(file) = &self.file else {
            return Ok(());
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Written aside and renamed: a crash leaves the old record or the new, never half.
            let tmp = file.with_extension(format!("json.{}.tmp", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec_pretty(&*r).unwrap_or_default())?;
            std::fs::rename(&tmp, file)
        };
        write().map_err(|source| RecordError::Write {
            path: file.display().to_string(),
            source,
        })
    }

    /// Whether cashflow created the topic named `topic` whose id is now `id`.
    pub fn created(&self, topic: &str, id: &str) -> bool {
        self.lock()
            .created
            .iter()
            .any(|c| c.topic == topic && c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_across_restarts_by_id_and_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let t = CreatedTopics::load(Some(dir.path()));
        assert!(!t.created("transactions", "AAAA"));
        t.record("transactions", "AAAA").expect("record");
        assert!(t.created("transactions", "AAAA"));
        let again = CreatedTopics::load(Some(dir.path()));
        assert!(
            again.created("transactions", "AAAA"),
            "read back after a restart"
        );
        assert!(
            !again.created("transactions", "BBBB"),
            "the same name re-created by someone else"
        );
        assert!(!again.created("other", "AAAA"), "the id of another name");
    }

    #[test]
    fn an_unreadable_record_owns_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(FILE), b"{ not json").expect("write");
        let t = CreatedTopics::load(Some(dir.path()));
        assert!(!t.created("transactions", "AAAA"));
        t.record("transactions", "AAAA").expect("record over it");
        assert!(CreatedTopics::load(Some(dir.path())).created("transactions", "AAAA"));
    }

    #[test]
    fn two_servers_on_one_data_dir_keep_both_records() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = CreatedTopics::load(Some(dir.path()));
        let b = CreatedTopics::load(Some(dir.path()));
        a.record("one", "AAAA").expect("record");
        b.record("two", "BBBB").expect("record");
        let again = CreatedTopics::load(Some(dir.path()));
        assert!(again.created("one", "AAAA") && again.created("two", "BBBB"));
    }

    #[test]
    fn pending_until_recorded_and_no_empty_ids() {
        let t = CreatedTopics::load(None);
        t.pending("t");
        assert!(t.is_pending("t"));
        t.record("t", "").expect("record");
        assert!(
            t.is_pending("t") && !t.created("t", ""),
            "an empty id is no id"
        );
        t.record("t", "AAAA").expect("record");
        assert!(!t.is_pending("t") && t.created("t", "AAAA"));
    }

    #[test]
    fn bounded() {
        let t = CreatedTopics::load(None);
        for i in 0..MAX_KEPT + 10 {
            t.record("t", &format!("id{i}")).expect("record");
        }
        assert_eq!(t.lock().created.len(), MAX_KEPT);
    }
}
