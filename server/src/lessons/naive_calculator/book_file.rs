//! The naive calculator's file: its balances, one JSON line per account changed, appended per
//! batch (the newest line for an account wins when it is read back) and rewritten whole when
//! it has grown too long. Saving it is the first or the second of the naive calculator's two
//! steps; a crash between them is the lesson.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cashflow_shared::naive::{BookEntry, NaiveBook};
use tracing::warn;

/// The file is rewritten whole once it holds this many times more lines than accounts.
const REWRITE_FACTOR: usize = 4;

pub(super) struct BookFile {
    dir: PathBuf,
    file: PathBuf,
}

impl std::fmt::Display for BookFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.file.display().fmt(f)
    }
}

impl BookFile {
    /// `<name>.jsonl` in `dir`.
    pub(super) fn new(dir: &Path, name: &str) -> BookFile {
        BookFile {
            dir: dir.to_owned(),
            file: dir.join(format!("{name}.jsonl")),
        }
    }

    /// Appends the accounts the batch changed (the file holds `lines` lines), rewriting it
    /// whole when it has grown too long; the lines it holds after.
    pub(super) fn append(&self, book: &mut NaiveBook, lines: usize) -> anyhow::Result<usize> {
        let changed = book.take_changed();
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        if lines + changed.len() > REWRITE_FACTOR * book.len() + 1024 {
            self.rewrite(book)?;
            return Ok(book.len());
        }
        let mut out = std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&self.file)
                .with_context(|| format!("opening {self}"))?,
        );
        for e in &changed {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(lines + changed.len())
    }

    /// Writes every account to a new file and renames it over the old one.
    pub(super) fn rewrite(&self, book: &NaiveBook) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let tmp = self.file.with_extension("tmp");
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        for e in book.entries() {
            serde_json::to_writer(&mut out, &e)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &self.file).with_context(|| format!("replacing {self}"))?;
        Ok(())
    }

    /// Reads it back: each line one account's state, the newest line winning; a torn last line
    /// (a crash while writing) is dropped. No file: an empty book.
    pub(super) fn load(&self) -> anyhow::Result<(NaiveBook, usize)> {
        let f = match std::fs::File::open(&self.file) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((NaiveBook::default(), 0));
            }
            Err(e) => return Err(e).with_context(|| format!("opening {self}")),
        };
        let mut entries = Vec::new();
        for line in std::io::BufReader::new(f).lines() {
            match serde_json::from_str::<BookEntry>(&line?) {
                Ok(e) => entries.push(e),
                Err(e) => {
                    warn!(file = %self, %e, "naive calculator: a torn line in its file; the rest is ignored");
                    break;
                }
            }
        }
        let n = entries.len();
        Ok((NaiveBook::from_entries(entries), n))
    }

    /// Removes the file (the lesson is over).
    pub(super) fn remove(&self) -> std::io::Result<()> {
        std::fs::remove_file(&self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_read_back_newest_line_first_and_a_torn_tail_is_dropped() {
        let dir = std::env::temp_dir().join(format!("cashflow-naive-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("book.jsonl"),
            "{\"p\":0,\"a\":1,\"s\":{\"balance\":5.00,\"count\":1}}\n\
             {\"p\":0,\"a\":1,\"s\":{\"balance\":7.50,\"count\":2}}\n\
             {\"p\":1,\"a\":2,\"s\":{\"bal",
        )
        .unwrap();
        let (book, lines) = BookFile::new(&dir, "book").load().unwrap();
        assert_eq!(lines, 2);
        assert_eq!(
            book.balance(1, cashflow_shared::Money::ZERO),
            cashflow_shared::Money::from_minor(750)
        );
        assert_eq!(book.len(), 1);
        assert_eq!(BookFile::new(&dir, "absent").load().unwrap().1, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
