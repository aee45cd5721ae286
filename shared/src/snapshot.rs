//! The state store's record format: one partition's [`PartitionLedger`] as changelog records.
//!
//! A snapshot of partition `p` goes to partition `p` of the changelog topic as `chunks` records
//! (accounts, at most [`CHUNK_ACCOUNTS`] each, so every record stays far below 64 KiB however
//! many accounts there are) followed by one **head** record, written only once every chunk is
//! acknowledged. The head names the snapshot (`id`), the source offset it reflects and where its
//! chunks are, so a reader takes the newest head and reads just its chunks: a snapshot torn by a
//! crash has chunks but no head, and the previous head still stands.
//!
//! Keys make the changelog compactable: the head is keyed `head`, chunks `s{slot}/c{index}`,
//! and consecutive snapshots alternate between two slots, so compaction never removes a chunk
//! of the newest complete snapshot (only a later snapshot in the same slot supersedes it, and
//! that one is written after a head pointing at the other slot).
//!
//! Every record carries `format`; a reader meeting another format falls back to replaying the
//! topic (with a warning) rather than guessing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ledger::{AccountState, LedgerStats, PartitionLedger};
use crate::money::Money;
use crate::transaction::AccountId;

/// The format this build writes and reads.
pub const FORMAT: u32 = 1;
/// Accounts per chunk: an entry is at most ~56 bytes of JSON, so a chunk stays under 64 KiB.
pub const CHUNK_ACCOUNTS: usize = 1_000;
/// The key of head records.
pub const HEAD_KEY: &[u8] = b"head";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub format: u32,
    /// Names the snapshot; its chunks carry the same id.
    pub id: u64,
    pub topic: String,
    pub partition: i32,
    /// Every record of the source partition below this offset is reflected, none above.
    pub next_offset: i64,
    pub stats: LedgerStats,
    pub accounts: u64,
    pub chunks: u32,
    /// Changelog offset of the first chunk (-1 without chunks); they all lie before the head.
    pub first_chunk: i64,
    pub slot: u8,
    pub taken_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub format: u32,
    pub id: u64,
    pub index: u32,
    /// `[account, net in minor units, count]`.
    pub accounts: Vec<(AccountId, i64, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Head(Head),
    Chunk(Chunk),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("snapshot format {0} (this build reads format {FORMAT})")]
    UnknownFormat(u32),
    #[error("not a snapshot record: {0}")]
    Malformed(String),
    #[error("snapshot {id:x} is incomplete: {found} of {expected} chunks")]
    Incomplete { id: u64, found: u32, expected: u32 },
}

pub fn chunk_key(slot: u8, index: u32) -> String {
    format!("s{slot}/c{index}")
}

#[derive(Deserialize)]
struct Peek {
    format: u32,
}

/// Reads one changelog record.
pub fn decode(key: &[u8], value: &[u8]) -> Result<Record, SnapshotError> {
    let bad = |e: serde_json::Error| SnapshotError::Malformed(e.to_string());
    let peek: Peek = serde_json::from_slice(value).map_err(bad)?;
    if peek.format != FORMAT {
        return Err(SnapshotError::UnknownFormat(peek.format));
    }
    if key == HEAD_KEY {
        serde_json::from_slice(value).map(Record::Head).map_err(bad)
    } else if key.starts_with(b"s") {
        serde_json::from_slice(value)
            .map(Record::Chunk)
            .map_err(bad)
    } else {
        Err(SnapshotError::Malformed(format!(
            "unknown key {:?}",
            String::from_utf8_lossy(key)
        )))
    }
}

/// The chunk records of a snapshot of `state`: `(key, value)` in the order to write them.
pub fn encode_chunks(
    state: &PartitionLedger,
    id: u64,
    slot: u8,
    per_chunk: usize,
) -> Vec<(String, Vec<u8>)> {
    let entries: Vec<(AccountId, i64, u64)> = state
        .accounts()
        .iter()
        .map(|(a, s)| (*a, s.balance.minor(), s.count))
        .collect();
    entries
        .chunks(per_chunk.max(1))
        .enumerate()
        .map(|(i, c)| {
            let chunk = Chunk {
                format: FORMAT,
                id,
                index: i as u32,
                accounts: c.to_vec(),
            };
            let value = serde_json::to_vec(&chunk).unwrap_or_default();
            (chunk_key(slot, i as u32), value)
        })
        .collect()
}

/// How many chunks [`encode_chunks`] makes of `accounts` accounts.
pub fn chunk_count(accounts: usize, per_chunk: usize) -> u32 {
    accounts.div_ceil(per_chunk.max(1)) as u32
}

pub fn encode_head(head: &Head) -> Vec<u8> {
    serde_json::to_vec(head).unwrap_or_default()
}

/// The partition state a head and its chunks describe, with an empty id window (the caller
/// observes the records before `next_offset` again). Chunks of other snapshots are ignored.
pub fn assemble(
    head: &Head,
    chunks: impl IntoIterator<Item = Chunk>,
    window_width: i64,
) -> Result<PartitionLedger, SnapshotError> {
    let mut accounts = BTreeMap::new();
    let mut seen = vec![false; head.chunks as usize];
    for c in chunks {
        if c.id != head.id || c.index >= head.chunks || seen[c.index as usize] {
            continue;
        }
        seen[c.index as usize] = true;
        for (a, net, count) in c.accounts {
            accounts.insert(
                a,
                AccountState {
                    balance: Money::from_minor(net),
                    count,
                },
            );
        }
    }
    let found = seen.iter().filter(|s| **s).count() as u32;
    if found != head.chunks || accounts.len() as u64 != head.accounts {
        return Err(SnapshotError::Incomplete {
            id: head.id,
            found,
            expected: head.chunks,
        });
    }
    Ok(PartitionLedger::restored(
        head.next_offset,
        accounts,
        head.stats,
        window_width,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::{Transaction, TxType};

    fn state(accounts: u32) -> PartitionLedger {
        let mut p = PartitionLedger::new(100);
        for a in 1..=accounts {
            let tx = Transaction {
                account: a,
                transaction_id: format!("t{a}"),
                transaction_type: TxType::Credit,
                amount: Money::from_minor(i64::from(a) * 7),
                new_balance: None,
                transaction_summary: Default::default(),
                timestamp_ms: None,
                producer_id: None,
            };
            p.apply(&tx, i64::from(a) + 5, Money::ZERO);
        }
        p
    }

    fn head(p: &PartitionLedger, id: u64, chunks: u32) -> Head {
        Head {
            format: FORMAT,
            id,
            topic: "t".into(),
            partition: 0,
            next_offset: p.next_offset(),
            stats: p.stats(),
            accounts: p.accounts().len() as u64,
            chunks,
            first_chunk: 0,
            slot: 1,
            taken_ms: 0,
        }
    }

    fn decode_chunks(records: &[(String, Vec<u8>)]) -> Vec<Chunk> {
        records
            .iter()
            .map(|(k, v)| match decode(k.as_bytes(), v) {
                Ok(Record::Chunk(c)) => c,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn round_trips_in_bounded_chunks() {
        let p = state(2_500);
        let records = encode_chunks(&p, 9, 1, CHUNK_ACCOUNTS);
        assert_eq!(records.len() as u32, chunk_count(2_500, CHUNK_ACCOUNTS));
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|(_, v)| v.len() < 64 * 1024));
        assert_eq!(records[2].0, "s1/c2");
        let h = head(&p, 9, 3);
        let Ok(Record::Head(back)) = decode(HEAD_KEY, &encode_head(&h)) else {
            panic!("head does not decode");
        };
        assert_eq!(back, h);
        let restored = assemble(&h, decode_chunks(&records), 100).unwrap();
        assert_eq!(restored.accounts(), p.accounts());
        assert_eq!(restored.stats(), p.stats());
        assert_eq!(restored.next_offset(), p.next_offset());
    }

    #[test]
    fn the_largest_entries_still_fit() {
        let mut p = PartitionLedger::new(1);
        for a in (u32::MAX - CHUNK_ACCOUNTS as u32 + 1)..=u32::MAX {
            let tx = Transaction {
                account: a,
                transaction_id: format!("t{a}"),
                transaction_type: TxType::Debit,
                amount: crate::transaction::MAX_AMOUNT,
                new_balance: None,
                transaction_summary: Default::default(),
                timestamp_ms: None,
                producer_id: None,
            };
            p.apply(&tx, i64::from(a), Money::ZERO);
        }
        let records = encode_chunks(&p, u64::MAX, 1, CHUNK_ACCOUNTS);
        assert_eq!(records.len(), 1);
        assert!(records[0].1.len() < 64 * 1024, "{}", records[0].1.len());
    }

    #[test]
    fn torn_and_foreign_snapshots_are_refused() {
        let p = state(30);
        let records = encode_chunks(&p, 5, 0, 10);
        let chunks = decode_chunks(&records);
        let h = head(&p, 5, 3);
        // A crash after two of three chunks.
        assert_eq!(
            assemble(&h, chunks[..2].to_vec(), 1),
            Err(SnapshotError::Incomplete {
                id: 5,
                found: 2,
                expected: 3
            })
        );
        // Chunks of another snapshot (same slot, earlier id) do not count.
        let mut other = chunks.clone();
        other[1].id = 4;
        assert!(assemble(&h, other, 1).is_err());
        // Extra and repeated chunks are harmless.
        let mut more = chunks.clone();
        more.extend(chunks.clone());
        more.extend(decode_chunks(&encode_chunks(&state(3), 8, 1, 10)));
        assert_eq!(assemble(&h, more, 1).unwrap().accounts(), p.accounts());
    }

    #[test]
    fn unknown_formats_and_garbage_are_errors() {
        assert_eq!(
            decode(HEAD_KEY, br#"{"format": 2, "anything": true}"#),
            Err(SnapshotError::UnknownFormat(2))
        );
        assert!(matches!(
            decode(HEAD_KEY, b"not json"),
            Err(SnapshotError::Malformed(_))
        ));
        assert!(matches!(
            decode(b"x", br#"{"format": 1}"#),
            Err(SnapshotError::Malformed(_))
        ));
        assert!(matches!(
            decode(HEAD_KEY, br#"{"format": 1}"#),
            Err(SnapshotError::Malformed(_))
        ));
    }
}
