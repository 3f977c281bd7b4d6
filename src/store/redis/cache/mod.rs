//! The client-side cache of session loads, kept correct by Redis' RESP3
//! invalidation pushes (`CLIENT TRACKING ON OPTIN`); see
//! [`RedisStoreBuilder::with_client_cache`](super::RedisStoreBuilder::with_client_cache).
//!
//! Hand-written rather than redis-rs' own `cache-aio` cache, which (1.8)
//! stores a reply in the command's future, after the connection's task has
//! already handled any invalidation that followed it, and keeps answering
//! from a connection that has died; and over a connection of its own
//! ([`link`]) rather than redis-rs', whose pushes arrive when its task gets
//! to run, which can be after the next request.
//!
//! How an entry stays correct:
//! - loads go over the cache's one connection, pipelined, read by the
//!   requests themselves (no task owns it); before answering from memory a
//!   request reads whatever that connection has received and applies its
//!   invalidations (see [`link`] for why that sees every change
//!   acknowledged before the request came);
//! - a load first leaves a placeholder under its key, then sends
//!   `CLIENT CACHING YES`, `HGETALL`, `PTTL` in one write; it stores what
//!   came back only if its placeholder is still there. Redis queues an
//!   invalidation for a later write on this connection after the `HGETALL`
//!   reply, and it is read in that order, so an invalidation either removes
//!   the placeholder (nothing is stored) or the stored entry;
//! - every invalidation removes its key, a `FLUSHALL` (or a push the cache
//!   does not understand) everything;
//! - an entry is served only while the connection it was loaded on is
//!   alive (same generation), so once that one is closed, found out of
//!   step, or replaced, nothing it loaded is served again;
//! - the store forgets a key itself once its own write returns (its writes
//!   go over the store's other connection).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, IntoConnectionInfo, Value};

use super::builder::RedisStoreBuilder;
use super::conn::{Backend, Timeouts};
use super::format;
use super::{Failure, RedisStore};
use crate::error::{ConfigError, Error, StoreError};
use crate::store::Record;

mod link;
mod resp;

/// The cache and the connection that keeps it correct.
pub(super) struct Tracking {
    entries: Arc<ClientCache>,
    link: link::Link,
}

impl Tracking {
    /// The cache for the Redis at `url`, holding up to `capacity` entries
    /// of at most `entry_bytes`; it connects on first use.
    pub(super) fn new(
        url: &str,
        capacity: usize,
        entry_bytes: usize,
        timeouts: Timeouts,
    ) -> Result<Self, Error> {
        let info = url
            .into_connection_info()
            .map_err(|e| Error::from(StoreError::backend(e)))?;
        Ok(Self {
            entries: Arc::new(ClientCache::new(capacity, entry_bytes)),
            link: link::Link::new(&info, timeouts)?,
        })
    }
}

/// Longest an entry is served without a word from Redis: the bound on
/// staleness when the connection dies without Redis or the network saying
/// so (no FIN or RST), and no command on it has failed yet.
pub(super) const MAX_ENTRY_AGE: Duration = Duration::from_secs(60);

/// Largest record the cache keeps, in bytes of JSON, when no record size
/// limit is set; larger ones are loaded from Redis each time.
pub(super) const DEFAULT_ENTRY_BYTES: usize = 16 * 1024;

/// Session loads served from memory while Redis says nothing changed.
pub(super) struct ClientCache {
    state: Mutex<State>,
    capacity: usize,
    entry_bytes: usize,
}

type Map = HashMap<String, Slot, foldhash::fast::RandomState>;

struct State {
    map: Map,
    /// Ready entries in insertion order, by (key, seq), for second-chance
    /// eviction; items whose entry is gone or newer are skipped.
    ring: VecDeque<(String, u64)>,
    ready: usize,
    next: u64,
    /// The held connection every ready entry was loaded on.
    generation: Option<u64>,
}

enum Slot {
    /// A load is on its way; its token.
    Loading(u64),
    Ready(Entry),
}

struct Entry {
    seq: u64,
    json: Arc<str>,
    expires: Instant,
    used: bool,
}

impl ClientCache {
    pub(super) fn new(capacity: usize, entry_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State {
                map: Map::default(),
                ring: VecDeque::new(),
                ready: 0,
                next: 0,
                generation: None,
            }),
            capacity,
            entry_bytes,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many records the cache holds now.
    pub(super) fn len(&self) -> usize {
        self.state().ready
    }

    /// The cached record's JSON, if it was loaded on `held` (the store's
    /// connection now) and has not expired.
    fn hit(&self, key: &str, held: Option<u64>) -> Option<Arc<str>> {
        let mut state = self.state();
        if held.is_none() || state.generation != held {
            return None;
        }
        match state.map.get_mut(key) {
            Some(Slot::Ready(e)) if e.expires > Instant::now() => {
                e.used = true;
                Some(e.json.clone())
            }
            _ => None,
        }
    }

    /// Leaves a placeholder under `key`: the load about to be sent.
    fn begin(self: &Arc<Self>, key: &str) -> Pending {
        let mut state = self.state();
        state.next += 1;
        let token = state.next;
        if let Some(Slot::Ready(_)) = state.map.insert(key.to_owned(), Slot::Loading(token)) {
            state.ready -= 1;
        }
        Pending {
            cache: self.clone(),
            key: key.to_owned(),
            token,
        }
    }

    /// Drops whatever is kept under `key`, a placeholder included.
    pub(super) fn forget(&self, key: &str) {
        let mut state = self.state();
        if let Some(Slot::Ready(_)) = state.map.remove(key) {
            state.ready -= 1;
        }
    }

    /// Drops everything, placeholders included.
    fn flush(&self) {
        let mut state = self.state();
        state.map.clear();
        state.ring.clear();
        state.ready = 0;
    }

    /// A push read on the cache's connection, in the order it arrived.
    fn on_push(&self, items: &[Value]) {
        match items {
            [Value::BulkString(kind), Value::Array(keys)] if kind == b"invalidate" => {
                for key in keys {
                    match key {
                        // Not UTF-8: not a key this store wrote.
                        Value::BulkString(k) => {
                            if let Ok(k) = std::str::from_utf8(k) {
                                self.forget(k);
                            }
                        }
                        _ => self.flush(),
                    }
                }
            }
            // A null key list (FLUSHALL, FLUSHDB), or a push we do not
            // understand: forget everything.
            _ => self.flush(),
        }
    }
}

impl State {
    /// Room for one more ready entry: second chance for the recently used.
    fn evict(&mut self, capacity: usize) {
        while self.ready >= capacity {
            let Some((key, seq)) = self.ring.pop_front() else {
                return;
            };
            let Some(Slot::Ready(e)) = self.map.get_mut(&key) else {
                continue;
            };
            if e.seq != seq {
                continue;
            }
            if e.used {
                e.used = false;
                self.ring.push_back((key, seq));
            } else {
                self.map.remove(&key);
                self.ready -= 1;
            }
        }
    }

    /// Keeps the ring within twice the entries it tracks.
    fn compact(&mut self) {
        if self.ring.len() > 2 * self.ready + 64 {
            let map = &self.map;
            self.ring
                .retain(|(k, seq)| matches!(map.get(k), Some(Slot::Ready(e)) if e.seq == *seq));
        }
    }
}

/// A load on its way; dropped unfinished (the request was cancelled, the
/// load failed), it removes its placeholder.
struct Pending {
    cache: Arc<ClientCache>,
    key: String,
    token: u64,
}

impl Pending {
    /// Stores `json`, loaded on connection `generation`, if no invalidation,
    /// flush or later load has taken the placeholder since it was left.
    fn fill(self, generation: u64, json: String, expires: Instant) {
        let token = self.token;
        let mut this = self;
        let key = std::mem::take(&mut this.key);
        let cache = this.cache.clone();
        // Emptied key: its drop does nothing (and takes no lock).
        drop(this);
        let mut state = cache.state();
        if !matches!(state.map.get(&key), Some(Slot::Loading(t)) if *t == token) {
            return;
        }
        state.map.remove(&key);
        match state.generation {
            Some(g) if g == generation => {}
            Some(g) if g > generation => return,
            None => state.generation = Some(generation),
            // A newer connection: what the old one loaded is no longer
            // kept up to date.
            Some(_) => {
                state.map.clear();
                state.ring.clear();
                state.ready = 0;
                state.generation = Some(generation);
                return;
            }
        }
        state.evict(cache.capacity);
        state.next += 1;
        let seq = state.next;
        state.ring.push_back((key.clone(), seq));
        state.map.insert(
            key,
            Slot::Ready(Entry {
                seq,
                json: json.into(),
                expires,
                used: false,
            }),
        );
        state.ready += 1;
        state.compact();
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.key.is_empty() {
            return;
        }
        let mut state = self.cache.state();
        if matches!(state.map.get(&self.key), Some(Slot::Loading(t)) if *t == self.token) {
            state.map.remove(&self.key);
        }
    }
}

impl RedisStore {
    /// How many sessions the [client cache](RedisStoreBuilder::with_client_cache)
    /// holds now, at most its `entries`; `None` when it is off.
    pub fn client_cache_len(&self) -> Option<usize> {
        self.inner.cache.as_ref().map(|t| t.entries.len())
    }

    /// `load` with the cache on: from memory when the cache's connection is
    /// tracking the key and nothing changed it since, else one round trip
    /// on that connection that also asks Redis to track it.
    pub(super) async fn load_cached(
        &self,
        tracking: &Tracking,
        key: String,
    ) -> Result<Option<Record>, StoreError> {
        let cache = &tracking.entries;
        let mut slot = tracking.link.lock().await;
        let held = slot.catch_up(cache);
        if let Some(json) = cache.hit(&key, held) {
            drop(slot);
            if let Ok(record) = serde_json::from_str::<Record>(&json) {
                return Ok(Some(record));
            }
            cache.forget(&key);
            slot = tracking.link.lock().await;
        }
        let pending = cache.begin(&key);
        let sent = Instant::now();
        let (reply, pttl, generation) = tracking.link.load(slot, cache, &key).await?;
        let record = format::decode(reply).map_err(|f| match f {
            Failure::Corrupt => StoreError::unreadable(f),
            f => StoreError::backend(f),
        })?;
        let Some(record) = record else {
            return Ok(None);
        };
        // -1: no TTL (not one of ours, but readable); -2: gone since.
        let age = match u64::try_from(pttl) {
            Ok(ms) => Duration::from_millis(ms).min(MAX_ENTRY_AGE),
            Err(_) if pttl == -1 => MAX_ENTRY_AGE,
            Err(_) => return Ok(Some(record)),
        };
        if let Ok(json) = serde_json::to_string(&record) {
            if json.len() <= cache.entry_bytes {
                pending.fill(generation, json, sent + age);
            }
        }
        Ok(Some(record))
    }

    /// After the store's own write to `key` returned: the key is
    /// forgotten here, and when the write went through, fenced.
    ///
    /// The fence is one `PING` after the write's reply. Redis answers it in
    /// a later pass of its event loop than the write, and it writes every
    /// invalidation the write caused to the tracking clients' sockets in
    /// the write's own pass; so once the `PING` is answered, every other
    /// cached instance of this Redis has the invalidation in its socket,
    /// and its next request (which reads that socket first, see [`link`])
    /// cannot answer with the old record. Without it the writer's reply can
    /// go out first and the writer's next step (its HTTP response, the
    /// browser's next request to another instance) can overtake the
    /// invalidation: Redis writes the two sockets one after the other, and
    /// the kernel may run the writer's process in between.
    pub(super) async fn after_write(&self, key: Option<&str>, written: bool) {
        let Some(tracking) = &self.inner.cache else {
            return;
        };
        if let Some(key) = key {
            tracking.entries.forget(key);
        }
        if written {
            if let Err(err) = self.run::<Value>(redis::cmd("PING")).await {
                tracing::debug!(error = %err, "client cache: the fence after a write failed");
            }
        }
    }
}

/// The configuration mistakes the cache refuses, checked when the store is
/// made (`RedisStoreBuilder::into_store`).
pub(super) fn check(b: &RedisStoreBuilder, backend: &Backend) -> Result<(), ConfigError> {
    if b.client_cache == Some(0) {
        return Err(ConfigError::ClientCache(
            "needs room for at least one entry",
        ));
    }
    if b.client_cache.is_some() && !matches!(backend, Backend::Single(_)) {
        return Err(ConfigError::ClientCache(
            "works on a single Redis node only, not on a Cluster or behind Sentinel",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
