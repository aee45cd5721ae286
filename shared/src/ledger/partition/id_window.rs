//! The duplicate-id window of one partition.

use std::collections::HashMap;

/// Digests of the transaction ids at the last `width` offsets of a partition, as a map from
/// digest to the newest offset it was seen at: a lookup and an insert a record, no per-record
/// eviction (entries that fell out of the window are ignored, and swept once the map holds
/// twice the width). The digests are xxh3 hashes already, so the map hashes them with Fx (one
/// multiply), not SipHash.
#[derive(Clone, Debug, Default)]
pub(in crate::ledger) struct IdWindow {
    last: HashMap<u64, i64, rustc_hash::FxBuildHasher>,
    /// The newest offset pushed (`observe` adds only beyond it).
    pub(in crate::ledger) newest: Option<i64>,
    /// The partition's window width.
    width: i64,
}

impl IdWindow {
    pub(super) fn new(width: i64) -> Self {
        IdWindow {
            width,
            ..IdWindow::default()
        }
    }

    /// `digest` at `offset`; `from` is where the window starts now.
    pub(super) fn push(&mut self, offset: i64, digest: u64, from: i64) {
        let o = self.last.entry(digest).or_insert(offset);
        *o = (*o).max(offset);
        self.newest = Some(self.newest.map_or(offset, |n| n.max(offset)));
        self.sweep(from);
    }

    /// Records `digest` at `offset` unless it was seen at or after `from` (then `None` and
    /// nothing changes): one hash probe for the check and the insert. `Some(undo)` lets the
    /// caller take the insert back.
    pub(super) fn insert_unless_within(
        &mut self,
        digest: u64,
        offset: i64,
        from: i64,
    ) -> Option<Undo> {
        use std::collections::hash_map::Entry;
        let before = match self.last.entry(digest) {
            Entry::Occupied(o) if *o.get() >= from => return None,
            Entry::Occupied(mut o) => Some(o.insert(offset)),
            Entry::Vacant(v) => {
                v.insert(offset);
                None
            }
        };
        let undo = Undo {
            digest,
            before,
            newest: self.newest,
        };
        self.newest = Some(self.newest.map_or(offset, |n| n.max(offset)));
        Some(undo)
    }

    /// Takes back an [`insert_unless_within`](Self::insert_unless_within).
    pub(super) fn undo(&mut self, undo: Undo) {
        match undo.before {
            Some(o) => self.last.insert(undo.digest, o),
            None => self.last.remove(&undo.digest),
        };
        self.newest = undo.newest;
    }

    /// Sweeps entries before `from` once the map holds twice the window.
    pub(super) fn sweep(&mut self, from: i64) {
        if self.last.len() as i64 > 2 * self.width + 64 {
            self.last.retain(|_, o| *o >= from);
        }
    }

    /// Whether `digest` was seen at or after `from` and before `offset`.
    pub(super) fn contains_before(&self, digest: u64, from: i64, offset: i64) -> bool {
        self.last
            .get(&digest)
            .is_some_and(|o| *o >= from && *o < offset)
    }

    /// Entries still in a window starting at `from`.
    #[cfg(test)]
    pub(in crate::ledger) fn len_from(&self, from: i64) -> usize {
        self.last.values().filter(|o| **o >= from).count()
    }

    pub(super) fn clear(&mut self) {
        self.last.clear();
        self.newest = None;
    }
}

/// What [`IdWindow::undo`] needs.
pub(super) struct Undo {
    digest: u64,
    before: Option<i64>,
    newest: Option<i64>,
}

/// Two windows are equal when they know the same ids at the same offsets within `width` of
/// the newest (what is swept, and when, is not part of the state).
impl PartialEq for IdWindow {
    fn eq(&self, other: &Self) -> bool {
        let live = |w: &IdWindow| -> std::collections::BTreeSet<(u64, i64)> {
            let from = w.newest.map_or(0, |n| n - w.width + 1);
            w.last
                .iter()
                .filter(|(_, o)| **o >= from)
                .map(|(d, o)| (*d, *o))
                .collect()
        };
        self.newest == other.newest && self.width == other.width && live(self) == live(other)
    }
}

impl Eq for IdWindow {}
