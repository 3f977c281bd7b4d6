//! One shard of [`MemoryStore`](super::MemoryStore): a map from id digests to
//! records, swept of expired records as it grows, and capped: when full,
//! the least recently used records make room.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::SystemTime;

use super::data::Data;

const MIN_SWEEP: usize = 64;

pub(super) struct Shard {
    map: HashMap<[u8; 32], Entry, BuildHasherDefault<DigestHasher>>,
    sweep_at: usize,
    /// Bumped by every access; an entry's `used` is the tick it was last used.
    tick: u64,
    /// The most records this shard holds.
    cap: usize,
}

/// A record, when it expires, and when it was last used.
pub(super) struct Entry {
    pub(super) data: Data,
    pub(super) expires: SystemTime,
    used: u64,
}

/// The map keys are SHA-256 digests, already uniform, so eight of their bytes
/// are the hash (byte 0, which picks the shard, is not among them). Safe from
/// flooding: only ids this store minted are ever inserted.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        match bytes.get(8..16) {
            Some(word) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(word);
                self.0 ^= u64::from_le_bytes(b);
            }
            None => {
                for &b in bytes {
                    self.0 = self.0.rotate_left(8) ^ u64::from(b);
                }
            }
        }
    }

    // The array's length prefix: the same for every key.
    fn write_usize(&mut self, _: usize) {}
}

impl Shard {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            map: HashMap::default(),
            sweep_at: MIN_SWEEP,
            tick: 0,
            cap: cap.max(1),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn contains_live(&self, key: &[u8; 32], now: SystemTime) -> bool {
        self.map.get(key).is_some_and(|e| e.expires > now)
    }

    /// The live entry under `key`, marked used; an expired one is removed.
    pub(super) fn live(&mut self, key: &[u8; 32], now: SystemTime) -> Option<&mut Entry> {
        match self.map.get(key) {
            Some(e) if e.expires > now => {}
            Some(_) => {
                self.map.remove(key);
                return None;
            }
            None => return None,
        }
        self.tick += 1;
        let tick = self.tick;
        let e = self.map.get_mut(key)?;
        e.used = tick;
        Some(e)
    }

    pub(super) fn remove(&mut self, key: &[u8; 32]) -> Option<Entry> {
        self.map.remove(key)
    }

    /// Inserts a new record; returns how many live records were evicted to
    /// make room (the caller logs it, outside the lock).
    pub(super) fn insert(
        &mut self,
        key: [u8; 32],
        data: Data,
        expires: SystemTime,
        now: SystemTime,
    ) -> usize {
        if self.map.len() >= self.sweep_at {
            self.sweep(now);
        }
        let evicted = if self.map.len() >= self.cap {
            self.sweep(now);
            self.evict()
        } else {
            0
        };
        self.tick += 1;
        self.map.insert(
            key,
            Entry {
                data,
                expires,
                used: self.tick,
            },
        );
        evicted
    }

    /// Removes the least recently used eighth of a full shard at once, so a
    /// flood of new sessions costs one scan per many inserts, not per insert.
    fn evict(&mut self) -> usize {
        if self.map.len() < self.cap {
            return 0;
        }
        let n = (self.cap / 8).max(1).min(self.map.len());
        let mut ages: Vec<(u64, [u8; 32])> = self.map.iter().map(|(k, e)| (e.used, *k)).collect();
        ages.select_nth_unstable(n - 1);
        for (_, k) in &ages[..n] {
            self.map.remove(k);
        }
        n
    }

    pub(super) fn sweep(&mut self, now: SystemTime) {
        self.map.retain(|_, e| e.expires > now);
        self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Record;
    use std::time::Duration;

    fn key(i: u32) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[8..12].copy_from_slice(&i.to_le_bytes());
        k
    }

    // SECURITY J46: the least recently used records go first; one used since
    // stays.
    #[test]
    fn a_full_shard_evicts_the_least_recently_used() {
        let now = SystemTime::now();
        let later = now + Duration::from_secs(60);
        let mut s = Shard::new(16);
        for i in 0..16 {
            s.insert(key(i), Data::new(&Record::new()).unwrap(), later, now);
        }
        assert!(s.live(&key(0), now).is_some(), "used again: now the newest");
        let evicted = s.insert(key(99), Data::new(&Record::new()).unwrap(), later, now);
        assert_eq!(evicted, 2);
        assert_eq!(s.len(), 15);
        assert!(s.contains_live(&key(0), now));
        assert!(!s.contains_live(&key(1), now) && !s.contains_live(&key(2), now));
        assert!(s.contains_live(&key(3), now) && s.contains_live(&key(99), now));
    }
}
