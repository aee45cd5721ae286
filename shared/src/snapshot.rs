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
//! Since the invariant ([`crate::invariant`]) is kept across restarts, a snapshot also carries
//! its two sides: what the partition's records from the server's own producer did (`own`) and
//! what that producer had acknowledged there (`acked`), named in the head's `producer`. Both are
//! optional fields, so snapshots of earlier builds still load (without them) and earlier builds
//! still read these.
//!
//! Every record carries `format`; a reader meeting another format falls back to replaying the
//! topic (with a warning) rather than guessing.

use serde::{Deserialize, Serialize};

use crate::invariant::AckedPartition;
use crate::ledger::{LedgerStats, PartitionLedger};
use crate::transaction::AccountId;

mod assemble;

pub use assemble::{Assembled, assemble};

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<ProducerMark>,
}

/// The invariant's counts in a snapshot: whose records they are, and how many entries of each
/// side its chunks hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerMark {
    /// The producer whose records `own` and `acked` count.
    pub id: String,
    /// Records from other producers applied in this partition.
    pub foreign: u64,
    pub own_accounts: u64,
    /// Every acknowledged record of the producer below this offset is in `acked`, none above
    /// ([`AckedPartition::next`]).
    pub acked_next: i64,
    pub acked_accounts: u64,
}

impl ProducerMark {
    /// The mark for a snapshot of `state` with the producer's acknowledged `acked` (none while
    /// no producer is counted as this server's).
    pub fn of(state: &PartitionLedger, acked: &AckedPartition) -> Option<ProducerMark> {
        let own = state.own();
        Some(ProducerMark {
            id: own.producer.as_deref()?.to_owned(),
            foreign: own.foreign,
            own_accounts: own.applied.len() as u64,
            acked_next: acked.next,
            acked_accounts: acked.nets.len() as u64,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub format: u32,
    pub id: u64,
    pub index: u32,
    /// `[account, net in minor units, count]`.
    pub accounts: Vec<(AccountId, i64, u64)>,
    /// The same for the producer's records applied, and for those it had acknowledged (a chunk
    /// holds one of the three lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own: Vec<(AccountId, i64, u64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acked: Vec<(AccountId, i64, u64)>,
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

/// The chunk records of a snapshot of `state` (with the invariant's counts when `mark` is
/// given: see [`ProducerMark::of`]): `(key, value)` in the order to write them.
pub fn encode_chunks(
    state: &PartitionLedger,
    mark: Option<(&ProducerMark, &AckedPartition)>,
    id: u64,
    slot: u8,
    per_chunk: usize,
) -> Vec<(String, Vec<u8>)> {
    let accounts: Vec<(AccountId, i64, u64)> = state
        .accounts()
        .iter()
        .map(|(a, s)| (*a, s.balance.minor(), s.count))
        .collect();
    let (own, acked) = match mark {
        Some((_, acked)) => (
            state
                .own()
                .applied
                .iter()
                .map(|(a, (net, n))| (*a, *net, *n))
                .collect(),
            acked
                .nets
                .iter()
                .map(|(a, t)| (*a, t.net.minor(), t.count))
                .collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let per_chunk = per_chunk.max(1);
    let blank = |index: u32| Chunk {
        format: FORMAT,
        id,
        index,
        accounts: Vec::new(),
        own: Vec::new(),
        acked: Vec::new(),
    };
    let mut chunks = Vec::new();
    for c in accounts.chunks(per_chunk) {
        chunks.push(Chunk {
            accounts: c.to_vec(),
            ..blank(chunks.len() as u32)
        });
    }
    for c in own.chunks(per_chunk) {
        chunks.push(Chunk {
            own: c.to_vec(),
            ..blank(chunks.len() as u32)
        });
    }
    for c in acked.chunks(per_chunk) {
        chunks.push(Chunk {
            acked: c.to_vec(),
            ..blank(chunks.len() as u32)
        });
    }
    chunks
        .into_iter()
        .map(|c| {
            let value = serde_json::to_vec(&c).unwrap_or_default();
            (chunk_key(slot, c.index), value)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariant::Own;
    use crate::money::Money;
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
                sequence: None,
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
            producer: None,
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
        let records = encode_chunks(&p, None, 9, 1, CHUNK_ACCOUNTS);
        assert_eq!(records.len() as u32, chunk_count(2_500, CHUNK_ACCOUNTS));
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|(_, v)| v.len() < 64 * 1024));
        assert_eq!(records[2].0, "s1/c2");
        let h = head(&p, 9, 3);
        let Ok(Record::Head(back)) = decode(HEAD_KEY, &encode_head(&h)) else {
            panic!("head does not decode");
        };
        assert_eq!(back, h);
        let restored = assemble(&h, decode_chunks(&records), 100).unwrap().state;
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
                sequence: None,
            };
            p.apply(&tx, i64::from(a), Money::ZERO);
        }
        let records = encode_chunks(&p, None, u64::MAX, 1, CHUNK_ACCOUNTS);
        assert_eq!(records.len(), 1);
        assert!(records[0].1.len() < 64 * 1024, "{}", records[0].1.len());
    }

    #[test]
    fn torn_and_foreign_snapshots_are_refused() {
        let p = state(30);
        let records = encode_chunks(&p, None, 5, 0, 10);
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
        more.extend(decode_chunks(&encode_chunks(&state(3), None, 8, 1, 10)));
        assert_eq!(
            assemble(&h, more, 1).unwrap().state.accounts(),
            p.accounts()
        );
    }

    #[test]
    fn the_invariants_counts_round_trip_and_older_snapshots_still_load() {
        let producer: std::sync::Arc<str> = "cashflow-1".into();
        let mut p = PartitionLedger::new(100);
        p.count_as_own(&producer);
        let mut acked = AckedPartition::default();
        for a in 1..=25u32 {
            let mut tx = Transaction {
                account: a,
                transaction_id: format!("t{a}"),
                transaction_type: TxType::Credit,
                amount: Money::from_minor(i64::from(a)),
                new_balance: None,
                transaction_summary: Default::default(),
                timestamp_ms: None,
                producer_id: Some("cashflow-1".into()),
                sequence: None,
            };
            if a % 5 == 0 {
                tx.producer_id = Some("someone else".into());
            } else {
                acked.add(i64::from(a), a, tx.delta());
            }
            p.apply(&tx, i64::from(a), Money::ZERO);
        }
        let mark = ProducerMark::of(&p, &acked).expect("a producer is counted");
        assert_eq!(
            (mark.own_accounts, mark.foreign, mark.acked_accounts),
            (20, 5, 20)
        );
        let records = encode_chunks(&p, Some((&mark, &acked)), 3, 0, 10);
        // 25 accounts, 20 own, 20 acknowledged: 3 + 2 + 2 chunks of at most 10 entries.
        assert_eq!(records.len(), 7);
        let mut h = head(&p, 3, 7);
        h.producer = Some(mark);
        let Ok(Record::Head(back)) = decode(HEAD_KEY, &encode_head(&h)) else {
            panic!("head does not decode");
        };
        assert_eq!(back, h);
        let chunks = decode_chunks(&records);
        let got = assemble(&h, chunks.clone(), 100).unwrap();
        assert_eq!(got.state.own(), p.own());
        assert_eq!(got.acked.as_ref(), Some(&acked));

        // One chunk of the acknowledged side missing: incomplete, not silently short.
        let mut torn = chunks.clone();
        torn.pop();
        assert!(assemble(&h, torn, 100).is_err());

        // A head and chunks as the previous build wrote them (no mark, no lists).
        let old_head = serde_json::to_string(&head(&p, 3, 3)).unwrap();
        assert!(!old_head.contains("producer"));
        let Ok(Record::Head(old)) = decode(HEAD_KEY, old_head.as_bytes()) else {
            panic!("old head does not decode");
        };
        let got = assemble(&old, chunks[..3].to_vec(), 100).unwrap();
        assert_eq!(got.state.accounts(), p.accounts());
        assert_eq!(got.state.own(), &Own::default());
        assert_eq!(got.acked, None);
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
