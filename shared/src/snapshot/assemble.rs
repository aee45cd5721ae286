//! A snapshot read back: its head and chunks put together into the partition's state.

use std::collections::BTreeMap;

use super::{Chunk, Head, SnapshotError};
use crate::invariant::{Acked, AckedPartition, Own};
use crate::ledger::{AccountState, PartitionLedger};
use crate::money::Money;

/// What a snapshot holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembled {
    pub state: PartitionLedger,
    /// What the producer named in the head's mark had acknowledged (none without a mark).
    pub acked: Option<AckedPartition>,
}

/// The partition state a head and its chunks describe, with an empty id window (the caller
/// observes the records before `next_offset` again). Chunks of other snapshots are ignored.
pub fn assemble(
    head: &Head,
    chunks: impl IntoIterator<Item = Chunk>,
    window_width: i64,
) -> Result<Assembled, SnapshotError> {
    let mut own = Own::default();
    let mut acked = AckedPartition::default();
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
        own.applied
            .extend(c.own.into_iter().map(|(a, net, n)| (a, (net, n))));
        acked
            .nets
            .extend(c.acked.into_iter().map(|(a, net, count)| {
                (
                    a,
                    Acked {
                        net: Money::from_minor(net),
                        count,
                    },
                )
            }));
    }
    let found = seen.iter().filter(|s| **s).count() as u32;
    let mark = head.producer.as_ref();
    let (own_n, acked_n) = mark.map_or((0, 0), |m| (m.own_accounts, m.acked_accounts));
    if found != head.chunks
        || accounts.len() as u64 != head.accounts
        || own.applied.len() as u64 != own_n
        || acked.nets.len() as u64 != acked_n
    {
        return Err(SnapshotError::Incomplete {
            id: head.id,
            found,
            expected: head.chunks,
        });
    }
    let state = PartitionLedger::restored(head.next_offset, accounts, head.stats, window_width);
    Ok(match mark {
        Some(m) => {
            own.producer = Some(m.id.as_str().into());
            own.foreign = m.foreign;
            acked.next = m.acked_next;
            Assembled {
                state: state.with_own(own),
                acked: Some(acked),
            }
        }
        None => Assembled { state, acked: None },
    })
}
