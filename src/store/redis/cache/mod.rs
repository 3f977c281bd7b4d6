//! The client-side cache of session loads, kept correct by Redis' RESP3
//! invalidation pushes (`CLIENT TRACKING ON OPTIN`); see
//! [`RedisStoreBuilder::with_client_cache`](super::RedisStoreBuilder::with_client_cache).
//!
//! Hand-written over redis-rs' push channel rather than redis-rs' own
//! `cache-aio` cache, which (1.8) stores a reply in the command's future,
//! after the connection's task has already handled any invalidation that
//! followed it, and keeps answering from a connection that has died.
//!
//! How an entry stays correct:
//! - a load first leaves a placeholder under its key, then sends
//!   `CLIENT CACHING YES`, `HGETALL`, `PTTL` in one write; it stores what
//!   came back only if its placeholder is still there. Redis queues an
//!   invalidation for a later write on this connection after the `HGETALL`
//!   reply, and the connection's task handles both in that order, so an
//!   invalidation either removes the placeholder (nothing is stored) or the
//!   stored entry;
//! - every invalidation removes its key, a `FLUSHALL` or the connection's
//!   end (redis-rs' `Disconnection` push) everything;
//! - an entry is served only while the connection it was loaded on is the
//!   store's held connection (same generation), so once that one is
//!   discarded or replaced, nothing it loaded is served again;
//! - the store forgets a key itself once its own write returns, because
//!   Redis sends the writer's own invalidation after the write's reply.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, PushInfo, PushKind, Value};
use deadpool_redis::{Hook, HookError, Manager, Pool, Runtime};

use super::builder::{install_crypto_provider, RedisStoreBuilder};
use super::conn::Backend;
use super::format;
use super::{Failure, RedisStore};
use crate::error::{ConfigError, Error, StoreError};
use crate::store::Record;

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

    /// What redis-rs hands over from the connection's task, in the order
    /// the connection received it.
    fn on_push(&self, push: &PushInfo) {
        match (&push.kind, push.data.first()) {
            (PushKind::Invalidate, Some(Value::Array(keys))) => {
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
            // A null key list (FLUSHALL, FLUSHDB), an invalidation we do
            // not understand, or the connection gone: forget everything.
            (PushKind::Invalidate, _) | (PushKind::Disconnection, _) => self.flush(),
            _ => {}
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
    fn finish(self, generation: u64, json: String, expires: Instant) {
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
        self.inner.cache.as_ref().map(|c| c.len())
    }

    /// `load` with the cache on: from memory when the held connection is
    /// tracking the key and nothing changed it since, else one round trip
    /// that also asks Redis to track it.
    pub(super) async fn load_cached(
        &self,
        cache: &Arc<ClientCache>,
        key: String,
    ) -> Result<Option<Record>, StoreError> {
        self.inner.backend.settle().await;
        let held = self.inner.backend.held_generation();
        if let Some(json) = cache.hit(&key, held) {
            if let Ok(record) = serde_json::from_str::<Record>(&json) {
                return Ok(Some(record));
            }
            cache.forget(&key);
        }
        let pending = cache.begin(&key);
        let sent = Instant::now();
        let mut pipe = redis::pipe();
        pipe.cmd("CLIENT").arg("CACHING").arg("YES").ignore();
        pipe.cmd("HGETALL").arg(&key);
        pipe.cmd("PTTL").arg(&key);
        let ((reply, pttl), generation): ((Value, i64), _) = self
            .inner
            .backend
            .run_tracked(self.inner.timeouts, pipe)
            .await?;
        let record = format::decode(reply).map_err(|f| match f {
            Failure::Corrupt => StoreError::unreadable(f),
            f => StoreError::backend(f),
        })?;
        let (Some(record), Some(generation)) = (record, generation) else {
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
                pending.finish(generation, json, sent + age);
            }
        }
        Ok(Some(record))
    }

    /// After the store's own write to `key` returned, whatever it did:
    /// the invalidation Redis sends for it comes after its reply.
    pub(super) fn forget_cached(&self, key: &str) {
        if let Some(cache) = &self.inner.cache {
            cache.forget(key);
        }
    }
}

/// The store on the Redis at `url` with the client cache on: RESP3
/// connections that turn tracking on (`OPTIN`) before their first use, and
/// hand every push to the cache.
pub(super) fn connect(
    b: RedisStoreBuilder,
    url: &str,
    capacity: usize,
) -> Result<RedisStore, Error> {
    use deadpool_redis::redis::{IntoConnectionInfo, ProtocolVersion};

    let backend_err = |e| Error::from(StoreError::backend(e));
    install_crypto_provider(url);
    let info = url.into_connection_info().map_err(backend_err)?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings);
    let entry_bytes = b.max_record.unwrap_or(DEFAULT_ENTRY_BYTES);
    let cache = Arc::new(ClientCache::new(capacity, entry_bytes));
    let pushes = cache.clone();
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(b.timeouts.connect))
        .set_response_timeout(None)
        .set_push_sender(move |push: PushInfo| {
            pushes.on_push(&push);
            Ok::<(), std::convert::Infallible>(())
        });
    let manager = Manager::new_with_config(info, config).map_err(backend_err)?;
    let mut pool = Pool::builder(manager)
        .runtime(Runtime::Tokio1)
        .post_create(Hook::async_fn(|conn, _| {
            Box::pin(async move {
                redis::cmd("CLIENT")
                    .arg("TRACKING")
                    .arg("ON")
                    .arg("OPTIN")
                    .query_async::<()>(conn)
                    .await
                    .map_err(HookError::Backend)
            })
        }));
    if let Some(size) = b.pool_size {
        pool = pool.max_size(size);
    }
    let pool = pool
        .build()
        .map_err(|e| Error::from(StoreError::backend(e)))?;
    b.finish(Backend::single(pool), Some(cache))
}

/// The configuration mistakes the cache refuses, checked by `finish`.
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
