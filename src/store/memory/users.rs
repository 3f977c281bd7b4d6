//! The per-user index of [`MemoryStore`](super::MemoryStore): which records
//! are bound to which user, by digest only.
//!
//! Lock order: this index, then a shard. Every operation that changes a
//! binding or ends a bound session holds the index lock from its check to
//! its last write, so a rotation and an "end all" on the same user are
//! serialized: the rotation either moves a record that is then ended, or
//! finds it gone.

use std::collections::HashMap;

/// The fewest entries at which the index is pruned of dead records.
const MIN_PRUNE: usize = 1024;

pub(super) struct Users {
    /// User digest → digests of the records bound to that user, oldest first.
    by_user: HashMap<[u8; 32], Vec<[u8; 32]>>,
    total: usize,
    prune_at: usize,
}

impl Users {
    pub(super) fn new() -> Self {
        Self {
            by_user: HashMap::new(),
            total: 0,
            prune_at: MIN_PRUNE,
        }
    }

    pub(super) fn add(&mut self, user: [u8; 32], record: [u8; 32]) {
        let list = self.by_user.entry(user).or_default();
        if !list.contains(&record) {
            list.push(record);
            self.total += 1;
        }
    }

    pub(super) fn remove(&mut self, user: &[u8; 32], record: &[u8; 32]) {
        if let Some(list) = self.by_user.get_mut(user) {
            let before = list.len();
            list.retain(|r| r != record);
            self.total -= before - list.len();
            if list.is_empty() {
                self.by_user.remove(user);
            }
        }
    }

    pub(super) fn records(&self, user: &[u8; 32]) -> &[[u8; 32]] {
        self.by_user.get(user).map_or(&[], Vec::as_slice)
    }

    /// `true` when the index has grown enough since its last prune that the
    /// caller should drop entries whose records are gone (expired, evicted).
    pub(super) fn due_for_prune(&self) -> bool {
        self.total >= self.prune_at
    }

    /// Keeps only the entries `live` says still exist; the next prune comes
    /// when the index has doubled again.
    pub(super) fn prune(&mut self, mut live: impl FnMut(&[u8; 32]) -> bool) {
        self.by_user.retain(|_, list| {
            list.retain(|r| live(r));
            !list.is_empty()
        });
        self.total = self.by_user.values().map(Vec::len).sum();
        self.prune_at = (self.total * 2).max(MIN_PRUNE);
    }

    /// Entries held, dead ones not yet pruned included.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SECURITY K56
    #[test]
    fn the_index_is_pruned_when_it_doubles() {
        let mut users = Users::new();
        for i in 0..MIN_PRUNE as u32 {
            let mut r = [0u8; 32];
            r[..4].copy_from_slice(&i.to_le_bytes());
            users.add([1; 32], r);
        }
        assert!(users.due_for_prune());
        // Every other record is still alive.
        users.prune(|r| r[0] % 2 == 0);
        assert_eq!(users.len(), MIN_PRUNE / 2);
        assert!(!users.due_for_prune());
        users.prune(|_| false);
        assert_eq!(users.len(), 0);
        assert!(users.records(&[1; 32]).is_empty());
    }
}
