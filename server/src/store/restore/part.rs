//! One partition being restored, and what each of its records does to its state.

use super::*;

/// One partition being restored.
pub(super) struct Part {
    pub(super) state: PartitionLedger,
    /// The producer's view (at start only): it goes on past records the live consumer must
    /// still dead-letter.
    pub(super) view: Option<PartitionLedger>,
    /// First offset to read.
    pub(super) from: i64,
    /// Stop before this offset (catch-up); `None`: at the partition's end.
    pub(super) until: Option<i64>,
    /// Records below were handled by a member of the group.
    pub(super) commit: i64,
    /// Past the commit, a record the live consumer must dead-letter was met: apply no more.
    pub(super) stopped: bool,
    /// At start: this server's producer, and what it had acknowledged (recovered from the
    /// snapshot, and from its records found after it).
    pub(super) acked: Option<(std::sync::Arc<str>, AckedPartition)>,
    /// The offset the read goes to (the partition's end at start).
    pub(super) end: i64,
}

/// Applies a record some member of the group has handled already: a transaction is applied,
/// what that member dead-lettered (not a transaction, a duplicate, an overflow) is counted.
fn handled(state: &mut PartitionLedger, offset: i64, tx: Option<&Transaction>, opening: Money) {
    match tx {
        Some(tx) => {
            if matches!(
                state.apply(tx, offset, opening),
                Outcome::DuplicateId | Outcome::Overflow
            ) {
                state.dead_letter(offset, Some(tx));
            }
        }
        None => {
            state.dead_letter(offset, None);
        }
    }
}

impl Part {
    pub(super) fn handle(&mut self, offset: i64, payload: &[u8], opening: Money) {
        let tx = Transaction::parse(payload).ok();
        if let (Some((producer, acked)), Some(tx)) = (&mut self.acked, &tx)
            && tx.producer_id.as_deref() == Some(&**producer)
        {
            acked.add(offset, tx.account, tx.delta());
        }
        if offset < self.state.next_offset() {
            // Before the snapshot's offset: only the id window is rebuilt.
            if let Some(tx) = &tx {
                self.state.observe(offset, &tx.transaction_id);
                if let Some(v) = &mut self.view {
                    v.observe(offset, &tx.transaction_id);
                }
            }
            return;
        }
        if offset < self.commit {
            handled(&mut self.state, offset, tx.as_ref(), opening);
        } else if !self.stopped {
            let applied = tx.as_ref().is_some_and(|tx| {
                matches!(
                    self.state.apply(tx, offset, opening),
                    Outcome::Applied { .. } | Outcome::Replayed
                )
            });
            self.stopped = !applied;
        }
        if let (Some(v), Some(tx)) = (&mut self.view, &tx) {
            handled(v, offset, Some(tx), opening);
        }
    }
}
