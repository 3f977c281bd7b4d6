//! An in-process store: the embedded default for development and tests.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::{Changes, Expires, Record, Store};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::id::{self, Id};

const SHARDS: usize = 16;
const MIN_SWEEP: usize = 64;

type IdSource = dyn Fn() -> Id + Send + Sync;

/// Sessions in a sharded in-process map.
///
/// Nothing to run, safe under concurrent use, and bounded: each shard sweeps
/// out expired records whenever it has doubled in size since its last sweep,
/// and a read never returns an expired record. Records are keyed by the
/// SHA-256 of the id. Clones share the same sessions. Sessions do not survive
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
    map: HashMap<[u8; 32], Entry>,
    sweep_at: usize,
}

struct Entry {
    record: Record,
    expires: SystemTime,
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
                        map: HashMap::new(),
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

impl Store for MemoryStore {
    async fn create(&self, record: &Record, expires: Expires) -> Result<String, Error> {
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
                    record: record.clone(),
                    expires: expires.at,
                },
            );
            return Ok(id.as_str().to_owned());
        }
    }

    async fn load(&self, value: &str) -> Result<Option<Record>, Error> {
        Ok(self.with_live(value, |e| e.record.clone()))
    }

    async fn update(
        &self,
        value: &str,
        record: &Record,
        changes: &Changes,
        expires: Expires,
    ) -> Result<Option<String>, Error> {
        Ok(self.with_live(value, |e| {
            e.record.apply(changes, record);
            e.expires = expires.at;
            value.to_owned()
        }))
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
