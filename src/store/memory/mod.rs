//! An in-process store: the embedded default for development and tests.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::{Changes, Expires, Record, Store, Updated};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::id::{self, Id};

mod data;
use data::Data;

const SHARDS: usize = 16;
const MIN_SWEEP: usize = 64;

type IdSource = dyn Fn() -> Id + Send + Sync;

/// Sessions in a sharded in-process map.
///
/// Nothing to run, safe under concurrent use, and bounded: each shard sweeps
/// out expired records whenever it has doubled in size since its last sweep,
/// and a read never returns an expired record. Records are keyed by the
/// SHA-256 of the id and kept as compact JSON, about 200 bytes per session
/// beyond the data itself. Clones share the same sessions. Sessions do not survive
/// a restart and are not shared between processes; use the Redis store for that.
///
/// ```
/// use sessio::{Key, MemoryStore, SessionLayer};
///
/// let layer = SessionLayer::new(MemoryStore::new(), Key::generate());
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: [Mutex<Shard>; SHARDS],
    clock: Arc<dyn Clock>,
    ids: Box<IdSource>,
}

struct Shard {
    map: HashMap<[u8; 32], Entry, BuildHasherDefault<DigestHasher>>,
    sweep_at: usize,
}

/// A record and when it expires.
struct Entry {
    data: Data,
    expires: SystemTime,
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

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::build(Arc::new(SystemClock), Box::new(Id::generate))
    }

    /// An empty store whose expiry follows `clock` (share it with the layer's
    /// [`with_clock`](crate::SessionLayerBuilder::with_clock) in tests).
    pub fn with_clock(clock: impl Clock) -> Self {
        Self::build(Arc::new(clock), Box::new(Id::generate))
    }

    /// Replaces the id generator, keeping the clock. Meant for tests that force
    /// id collisions; production code keeps the default CSPRNG ids.
    #[must_use]
    pub fn with_id_generator(self, ids: impl Fn() -> Id + Send + Sync + 'static) -> Self {
        let clock = self.inner.clock.clone();
        Self::build(clock, Box::new(ids))
    }

    fn build(clock: Arc<dyn Clock>, ids: Box<IdSource>) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: std::array::from_fn(|_| {
                    Mutex::new(Shard {
                        map: HashMap::default(),
                        sweep_at: MIN_SWEEP,
                    })
                }),
                clock,
                ids,
            }),
        }
    }

    /// Number of records held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// `true` when no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every expired record now.
    pub fn sweep(&self) {
        let now = self.inner.clock.now();
        for s in &self.inner.shards {
            lock(s).sweep(now);
        }
    }

    fn shard(&self, key: &[u8; 32]) -> MutexGuard<'_, Shard> {
        lock(&self.inner.shards[key[0] as usize % SHARDS])
    }

    /// The record under `value` if it is a well-formed id and not expired.
    fn with_live<T>(&self, value: &str, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        if !id::is_valid(value) {
            return None;
        }
        let key = digest(value);
        let now = self.inner.clock.now();
        let mut shard = self.shard(&key);
        match shard.map.get_mut(&key) {
            Some(e) if e.expires > now => Some(f(e)),
            Some(_) => {
                shard.map.remove(&key);
                None
            }
            None => None,
        }
    }
}

impl Shard {
    fn sweep(&mut self, now: SystemTime) {
        self.map.retain(|_, e| e.expires > now);
        self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP);
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard cannot leave a map half-updated in a way
    // that matters here (each operation is one insert or remove).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl MemoryStore {
    /// Inserts `data` under a freshly minted id; never over a live record.
    fn insert_new(&self, data: Data, expires: Expires) -> String {
        let now = self.inner.clock.now();
        loop {
            let id = (self.inner.ids)();
            let key = digest(id.as_str());
            let mut shard = self.shard(&key);
            if shard.map.get(&key).is_some_and(|e| e.expires > now) {
                // SECURITY A2: never overwrite; mint another id.
                tracing::warn!("session id collision in memory store; minting another id");
                continue;
            }
            if shard.map.len() >= shard.sweep_at {
                shard.sweep(now);
            }
            shard.map.insert(
                key,
                Entry {
                    data,
                    expires: expires.at,
                },
            );
            return id.as_str().to_owned();
        }
    }
}

impl Store for MemoryStore {
    async fn create(&self, record: &Record, expires: Expires) -> Result<String, Error> {
        let data = Data::new(record)?;
        Ok(self.insert_new(data, expires))
    }

    async fn load(&self, value: &str) -> Result<Option<Record>, Error> {
        self.with_live(value, |e| e.data.record()).transpose()
    }

    async fn update(
        &self,
        value: &str,
        record: &Record,
        changes: &Changes,
        expires: Expires,
    ) -> Result<Updated, Error> {
        if !id::is_valid(value) {
            return Ok(Updated::Gone);
        }
        let key = digest(value);
        let now = self.inner.clock.now();
        // The merge and the emptiness check under one shard lock: a
        // concurrent update of another key is either in the merge or after it.
        let mut shard = self.shard(&key);
        let Some(e) = shard.map.get_mut(&key) else {
            return Ok(Updated::Gone);
        };
        if e.expires <= now {
            shard.map.remove(&key);
            return Ok(Updated::Gone);
        }
        let merged = e.data.apply(changes, record)?;
        if merged.is_empty() {
            shard.map.remove(&key);
            return Ok(Updated::Emptied);
        }
        e.data = merged;
        e.expires = expires.at;
        Ok(Updated::Written(value.to_owned()))
    }

    async fn rotate(
        &self,
        old: &str,
        record: &Record,
        changes: &Changes,
        expires: Expires,
    ) -> Result<Updated, Error> {
        if !id::is_valid(old) {
            return Ok(Updated::Gone);
        }
        let key = digest(old);
        let now = self.inner.clock.now();
        // Taken out under its shard lock: from here on the old id is dead
        // for everyone, and the new one is known to no one until we answer.
        let taken = self.shard(&key).map.remove(&key);
        let Some(e) = taken.filter(|e| e.expires > now) else {
            return Ok(Updated::Gone);
        };
        let merged = e.data.apply(changes, record)?;
        if merged.is_empty() {
            return Ok(Updated::Emptied);
        }
        Ok(Updated::Written(self.insert_new(merged, expires)))
    }

    async fn touch(&self, value: &str, expires: Expires) -> Result<bool, Error> {
        Ok(self.with_live(value, |e| e.expires = expires.at).is_some())
    }

    async fn delete(&self, value: &str) -> Result<(), Error> {
        if id::is_valid(value) {
            let key = digest(value);
            self.shard(&key).map.remove(&key);
        }
        Ok(())
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::Duration;

    fn expires() -> Expires {
        let ttl = Duration::from_secs(60);
        Expires::new(SystemTime::now() + ttl, ttl)
    }

    // An update applies the changes to the stored JSON and writes JSON back,
    // or keeps a `Record` once the data nests too deep for JSON, and back.
    #[tokio::test]
    async fn updates_round_trip_through_json_and_deep_data() {
        let store = MemoryStore::new();
        let mut record = Record::new();
        record.insert("a", json!(1));
        let v = store.create(&record, expires()).await.unwrap();

        let mut deep = Value::Null;
        for _ in 0..200 {
            deep = Value::Array(vec![deep]);
        }
        let mut changes = Changes::default();
        record.insert("deep", deep);
        changes.record_set("deep");
        let got = store.update(&v, &record, &changes, expires()).await;
        assert_eq!(got.unwrap(), Updated::Written(v.clone()));
        assert_eq!(store.load(&v).await.unwrap(), Some(record.clone()));

        let mut changes = Changes::default();
        record.remove("deep");
        changes.record_remove("deep");
        record.insert("b", json!(-0.5));
        changes.record_set("b");
        let got = store.update(&v, &record, &changes, expires()).await;
        assert_eq!(got.unwrap(), Updated::Written(v.clone()));
        assert_eq!(store.load(&v).await.unwrap(), Some(record));
        let shard = store.shard(&digest(&v));
        assert!(matches!(shard.map[&digest(&v)].data, Data::Json(_)));
    }
}
