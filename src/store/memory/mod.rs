//! An in-process store: the embedded default for development and tests.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::{
    bound_user, changes_binding, Changes, Deadline, Listed, Record, Store, Updated, UserIndex,
};
use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::id::{self, Id};

mod data;
mod shard;
mod users;
use data::Data;
use shard::Shard;
use users::Users;

const SHARDS: usize = 16;

/// How many sessions a [`MemoryStore`] holds by default: 100,000 (about
/// 250 bytes each for sessions holding 100 bytes of data). Past it, the
/// least recently used make room.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

use crate::id::IdGenerator;

/// Sessions in a sharded in-process map.
///
/// Nothing to run, safe under concurrent use, and bounded twice: each shard
/// sweeps out expired records whenever it has doubled in size since its last
/// sweep (a read never returns an expired record), and the store holds at
/// most [`DEFAULT_MAX_SESSIONS`] records unless told otherwise
/// ([`with_max_sessions`](Self::with_max_sessions)): when full, the least
/// recently used sessions are evicted, with a WARN, so a flood of anonymous
/// visitors cannot grow memory without bound. Records are keyed by the
/// SHA-256 of the id and kept as compact JSON: about 250 bytes in all for a
/// session holding 100 bytes of data. Clones share the same sessions.
/// Sessions do not survive a restart and are not shared between processes;
/// use the Redis store for that.
///
/// ```
/// use sessio::{Key, MemoryStore, SessionLayer};
///
/// let layer = SessionLayer::new(MemoryStore::new(), Key::generate());
/// let bounded = MemoryStore::new()
///     .with_max_sessions(10_000)
///     .with_max_record_size(16 * 1024);
/// assert_eq!(bounded.max_sessions(), 10_000);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: [Mutex<Shard>; SHARDS],
    clock: Arc<dyn Clock>,
    ids: Arc<IdGenerator>,
    max_sessions: usize,
    max_record: Option<usize>,
    /// Which records are bound to which user ([`UserIndex`]).
    users: Mutex<Users>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// An empty store whose expiry follows `clock` (share it with the layer's
    /// [`with_clock`](crate::SessionLayerBuilder::with_clock) in tests).
    pub fn with_clock(clock: impl Clock) -> Self {
        Self::build(
            Arc::new(clock),
            Arc::new(Id::generate),
            DEFAULT_MAX_SESSIONS,
            None,
        )
    }

    /// Replaces the id generator, keeping the clock. For tests that force id
    /// collisions (feature `test-util`); production code keeps the CSPRNG.
    #[cfg(any(test, feature = "test-util"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    #[must_use]
    pub fn with_id_generator(self, ids: impl Fn() -> Id + Send + Sync + 'static) -> Self {
        let i = &self.inner;
        Self::build(i.clock.clone(), Arc::new(ids), i.max_sessions, i.max_record)
    }

    /// The most sessions the store holds; past it the least recently used
    /// are evicted (a WARN says how many live ones went). Default
    /// [`DEFAULT_MAX_SESSIONS`]. The bound is kept per shard (a sixteenth
    /// each), so eviction can start a little before the total is reached
    /// (at about 95% of it for 100,000 random ids). Gives a new, empty store: call it when
    /// building the store.
    #[must_use]
    pub fn with_max_sessions(self, max: usize) -> Self {
        let i = &self.inner;
        Self::build(i.clock.clone(), i.ids.clone(), max.max(1), i.max_record)
    }

    /// The largest record the store accepts, in bytes of JSON; a save past it
    /// fails with [`StoreError::TooLarge`] (as gorilla's `MaxLength`).
    /// Default none. Gives a new, empty store: call it when building the
    /// store.
    #[must_use]
    pub fn with_max_record_size(self, bytes: usize) -> Self {
        let i = &self.inner;
        Self::build(i.clock.clone(), i.ids.clone(), i.max_sessions, Some(bytes))
    }

    /// The most sessions the store holds.
    pub fn max_sessions(&self) -> usize {
        self.inner.max_sessions
    }

    fn build(
        clock: Arc<dyn Clock>,
        ids: Arc<IdGenerator>,
        max_sessions: usize,
        max_record: Option<usize>,
    ) -> Self {
        let per_shard = max_sessions.div_ceil(SHARDS);
        Self {
            inner: Arc::new(Inner {
                shards: std::array::from_fn(|_| Mutex::new(Shard::new(per_shard))),
                clock,
                ids,
                max_sessions,
                max_record,
                users: Mutex::new(Users::new()),
            }),
        }
    }

    /// Number of records held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).len()).sum()
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

    /// `data` if it fits the size limit.
    fn checked(&self, data: Data) -> Result<Data, StoreError> {
        match (self.inner.max_record, data.size()) {
            (Some(limit), size) if size > limit => Err(StoreError::TooLarge { size, limit }),
            _ => Ok(data),
        }
    }

    /// Adds `record` to `user`'s index, pruning the index first when it has
    /// grown enough. Called with the index lock held.
    fn index(&self, users: &mut Users, user: Option<&str>, record: [u8; 32]) {
        let Some(user) = user else { return };
        if users.due_for_prune() {
            let now = self.inner.clock.now();
            users.prune(|d| self.shard(d).contains_live(d, now));
        }
        users.add(digest(user), record);
    }

    /// Inserts `data` under a freshly minted id; never over a live record.
    fn insert_new(&self, data: Data, expires: Deadline) -> String {
        let now = self.inner.clock.now();
        loop {
            let id = (self.inner.ids)();
            let key = digest(id.as_str());
            let mut shard = self.shard(&key);
            if shard.contains_live(&key, now) {
                // SECURITY A2: never overwrite; mint another id.
                tracing::warn!("session id collision in memory store; minting another id");
                continue;
            }
            let evicted = shard.insert(key, data, expires.at, now);
            drop(shard);
            if evicted > 0 {
                // SECURITY J46: bounded, and it says so.
                tracing::warn!(
                    evicted,
                    max_sessions = self.inner.max_sessions,
                    "memory store full; evicted the least recently used sessions"
                );
            }
            return id.as_str().to_owned();
        }
    }
}

fn lock_users(m: &Mutex<Users>) -> MutexGuard<'_, Users> {
    // Each index operation completes or leaves entries the next prune drops.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard cannot leave a map half-updated in a way
    // that matters here (each operation is one insert or remove).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// A handle (64 hex digits) back to the digest it spells.
fn from_hex(handle: &str) -> Option<[u8; 32]> {
    let bytes = handle.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn to_hex(d: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    super::push_hex(&mut s, d);
    s
}

impl Store for MemoryStore {
    async fn create(&self, record: &Record, expires: Deadline) -> Result<String, StoreError> {
        let data = self.checked(Data::new(record)?)?;
        let Some(user) = bound_user(record) else {
            return Ok(self.insert_new(data, expires));
        };
        let mut users = lock_users(&self.inner.users);
        let id = self.insert_new(data, expires);
        self.index(&mut users, Some(user), digest(&id));
        Ok(id)
    }

    async fn load(&self, value: &str) -> Result<Option<Record>, StoreError> {
        if !id::is_valid(value) {
            return Ok(None);
        }
        let key = digest(value);
        let now = self.inner.clock.now();
        let mut shard = self.shard(&key);
        shard.live(&key, now).map(|e| e.data.record()).transpose()
    }

    async fn update(
        &self,
        value: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
    ) -> Result<Updated, StoreError> {
        if !id::is_valid(value) {
            return Ok(Updated::Gone);
        }
        let key = digest(value);
        let now = self.inner.clock.now();
        // A change of binding holds the index lock from the merge to the
        // index update, so a listing sees the record under one user or the other.
        let mut users = changes_binding(changes).then(|| lock_users(&self.inner.users));
        // The merge and the emptiness check under one shard lock: a
        // concurrent update of another key is either in the merge or after it.
        let mut shard = self.shard(&key);
        let Some(e) = shard.live(&key, now) else {
            return Ok(Updated::Gone);
        };
        let merged = self.checked(e.data.apply(changes, record)?)?;
        let moved = match &users {
            Some(_) => Some((e.data.user()?, merged.user()?)),
            None => None,
        };
        let emptied = merged.is_empty();
        if emptied {
            shard.remove(&key);
        } else {
            e.data = merged;
            e.expires = expires.at;
        }
        drop(shard);
        if let (Some(users), Some((old, new))) = (users.as_mut(), moved) {
            if old != new {
                if let Some(old) = old {
                    users.remove(&digest(&old), &key);
                }
                self.index(users, new.as_deref(), key);
            }
        }
        if emptied {
            return Ok(Updated::Emptied);
        }
        Ok(Updated::Written(value.to_owned()))
    }

    async fn rotate(
        &self,
        old: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
    ) -> Result<Updated, StoreError> {
        if !id::is_valid(old) {
            return Ok(Updated::Gone);
        }
        let key = digest(old);
        let now = self.inner.clock.now();
        // The whole move under the index lock, so it cannot interleave with
        // the end of a user's sessions: either the record is moved (and the
        // new one indexed) before it is ended, or it is gone.
        let mut users = lock_users(&self.inner.users);
        // Taken out under its shard lock: from here on the old id is dead
        // for everyone, and the new one is known to no one until we answer.
        let Some(e) = self.shard(&key).remove(&key).filter(|e| e.expires > now) else {
            return Ok(Updated::Gone);
        };
        if let Some(user) = e.data.user()? {
            users.remove(&digest(&user), &key);
        }
        let merged = self.checked(e.data.apply(changes, record)?)?;
        if merged.is_empty() {
            return Ok(Updated::Emptied);
        }
        let user = merged.user()?;
        let id = self.insert_new(merged, expires);
        self.index(&mut users, user.as_deref(), digest(&id));
        Ok(Updated::Written(id))
    }

    async fn touch(&self, value: &str, expires: Deadline) -> Result<bool, StoreError> {
        if !id::is_valid(value) {
            return Ok(false);
        }
        let key = digest(value);
        let now = self.inner.clock.now();
        let mut shard = self.shard(&key);
        Ok(shard
            .live(&key, now)
            .map(|e| e.expires = expires.at)
            .is_some())
    }

    async fn delete(&self, value: &str) -> Result<(), StoreError> {
        if id::is_valid(value) {
            let key = digest(value);
            let gone = self.shard(&key).remove(&key);
            if let Some(user) = gone.and_then(|e| e.data.user().ok().flatten()) {
                lock_users(&self.inner.users).remove(&digest(&user), &key);
            }
        }
        Ok(())
    }
}

impl UserIndex for MemoryStore {
    async fn sessions_of(&self, user: &str) -> Result<Vec<Listed>, StoreError> {
        let who = digest(user);
        let now = self.inner.clock.now();
        let mut users = lock_users(&self.inner.users);
        let mut listed = Vec::new();
        let mut dead = Vec::new();
        for d in users.records(&who) {
            let mut shard = self.shard(d);
            let Some(e) = shard.live(d, now) else {
                dead.push(*d);
                continue;
            };
            let record = e.data.record()?;
            if bound_user(&record) == Some(user) {
                listed.push(Listed::new(to_hex(d), record, e.expires));
            } else {
                dead.push(*d);
            }
        }
        for d in &dead {
            users.remove(&who, d);
        }
        Ok(listed)
    }

    async fn end_session(&self, user: &str, handle: &str) -> Result<bool, StoreError> {
        let Some(d) = from_hex(handle) else {
            return Ok(false);
        };
        let now = self.inner.clock.now();
        let mut users = lock_users(&self.inner.users);
        let mut shard = self.shard(&d);
        let Some(e) = shard.live(&d, now) else {
            drop(shard);
            users.remove(&digest(user), &d);
            return Ok(false);
        };
        // SECURITY K57: only a session bound to this user.
        if e.data.user()?.as_deref() != Some(user) {
            return Ok(false);
        }
        shard.remove(&d);
        drop(shard);
        users.remove(&digest(user), &d);
        Ok(true)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("max_sessions", &self.inner.max_sessions)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::{Duration, SystemTime};

    fn expires() -> Deadline {
        let ttl = Duration::from_secs(60);
        Deadline::new(SystemTime::now() + ttl, ttl)
    }

    // SECURITY J49: MemoryStore reads back what it saves: an update applies
    // the changes to the stored JSON and writes JSON back, or keeps a
    // `Record` once the data nests too deep for JSON, and back.
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
        let mut shard = store.shard(&digest(&v));
        let e = shard.live(&digest(&v), SystemTime::now()).unwrap();
        assert!(matches!(e.data, Data::Json(_)));
    }
}
