//! [`RedisStore`]: sessions in Redis (a Redis Cluster, or behind Redis
//! Sentinel) over a deadpool-redis pool.

use std::sync::Arc;

use deadpool_redis::redis::{self, Value};

use super::record::value_nests_too_deep;
use super::{bound_user, storage_key, Changes, Deadline, Record, Store, Updated};
use crate::error::StoreError;
use crate::id;

mod builder;
mod cache;
mod conn;
mod constructors;
mod format;
mod hold;
mod scripts;
mod users;

pub use builder::RedisStoreBuilder;
use conn::{Backend, Call, Timeouts};
use scripts::{scripts, ttl_ms};

/// How many fresh ids `create` tries before giving up; with 128-bit random
/// ids a second attempt already means something is wrong.
const CREATE_ATTEMPTS: usize = 8;

use crate::id::IdGenerator;

/// Sessions in Redis, shared by every server that talks to the same Redis.
/// Clones share one pool.
///
/// ```no_run
/// use sessio::{Key, RedisStore, SessionLayer};
///
/// # fn main() -> Result<(), sessio::Error> {
/// // The pool connects lazily: nothing is dialled until the first request.
/// let store = RedisStore::connect("redis://127.0.0.1:6379")?;
/// let layer = SessionLayer::new(store, Key::generate());
/// # let _ = layer;
/// # Ok(()) }
/// ```
///
/// Customised with the [builder](Self::builder). The password, the ACL user
/// and the database number come from the URL
/// (`redis://user:password@host:6379/2`, or
/// `redis+unix:///run/redis.sock?db=2&user=u&pass=p`); `rediss://` needs the
/// `redis-tls` feature. Go's `redis.NewStore(size, "tcp", addr, password, keys...)`
/// becomes:
///
/// ```no_run
/// use std::time::Duration;
/// use sessio::{Key, RedisStore, SessionLayer};
///
/// # fn main() -> Result<(), sessio::Error> {
/// let store = RedisStore::builder()
///     .with_pool_size(10)
///     .with_prefix("myapp:session:")
///     .with_connect_timeout(Duration::from_millis(500))
///     .with_command_timeout(Duration::from_millis(250))
///     .connect("redis://:password@127.0.0.1:6379/0")?;
/// assert_eq!(store.prefix(), "myapp:session:");
/// let layer = SessionLayer::new(store, Key::generate());
/// # let _ = layer;
/// # Ok(()) }
/// ```
///
/// A pool you already have is used as it is ([`new`](Self::new),
/// [`RedisStoreBuilder::build`]); deadpool-redis is re-exported as
/// [`sessio::store::deadpool_redis`](crate::store::deadpool_redis) so its
/// version matches.
///
/// # Layout and round trips
///
/// Each session is one Redis hash under `prefix` + hex SHA-256 of the id
/// ([`storage_key`]), so a dump of Redis holds no usable session ids. The hash
/// has one field per session key holding the value's JSON, plus a reserved
/// version field (`\0v` = `1`) so the format can change later. Redis keeps the
/// TTL, equal to the cookie's expiry. A value nested deeper than JSON reads
/// back (127 levels, the record counted) is refused when it is saved, with
/// [`Error::Serialize`](crate::Error::Serialize), rather than stored and then unreadable.
///
/// - loading is one `HGETALL`; a session the handler never touches costs
///   nothing;
/// - saving is one script (`EVALSHA`): creation only where the key does not
///   exist (on a collision a new id is minted), an update only where the
///   record still exists, so a request that finishes after a logout or
///   `cycle_id` never brings the old session back; an update that leaves no
///   session key deletes the hash in the same script;
/// - a rotation (`cycle_id`) is one script on a single node (the old record
///   checked, moved to the new id and deleted in one step); on a cluster two,
///   one that takes the old record out only if it exists, the next that
///   creates it under the new id (four for a session bound to a user, see
///   below);
/// - extending the TTL is one `PEXPIRE`, deleting one `DEL`.
///
/// The store keeps one connection checked out of the pool and sends every
/// command on it (redis-rs multiplexes concurrent commands over one
/// connection; on a cluster, over one per node), so each of these is exactly
/// one round trip: the pool, and its `PING` health check, are consulted again
/// only after that connection has been discarded.
///
/// # A user's sessions
///
/// The store implements [`UserIndex`](crate::store::UserIndex), so
/// [`UserSessions`](crate::users::UserSessions) can list and end a user's
/// sessions. Each user has one index key, `prefix` + `user:` + hex SHA-256
/// of the user id: a sorted set of the handles (hex SHA-256 of the cookie
/// value) of the records bound to that user; a bound record names its index
/// in a reserved field. No key, member or field holds a user id in a key
/// name, a session id or a cookie value.
///
/// Only a change of binding writes the index: requests that read a bound
/// session, write other keys or extend its expiry cost exactly what they
/// cost unbound. On a single node the index is written in the same script
/// as the record, so a bound login or rotation is still one round trip,
/// and a listing is one. On a cluster the index and the records live in
/// different slots: a bound creation costs two round trips, a rotation of a
/// bound session four, a listing two reads of the index plus one per
/// session, ending a session two. A rotation racing the end of its session
/// either moves first (its new handle is listed, so "end all" ends it too)
/// or answers gone; the protocol that makes this hold on a cluster, with
/// tombstones in the index, is described in `src/store/redis/users.rs`.
///
/// Entries of records that expired or were deleted are dropped when the
/// index is next written (a single node) or listed: an index never outgrows
/// the user's live sessions plus those that ended since its last listing,
/// and at most [`with_max_sessions_per_user`](RedisStoreBuilder::with_max_sessions_per_user)
/// (1000 by default) live sessions: a login past it ends the oldest.
///
/// # Concurrent requests
///
/// An update writes only the keys the request changed. Two requests on one
/// session that change *different* keys both keep their change; two that
/// change the *same* key: the last write wins. Clearing the session replaces
/// everything, as of that request.
///
/// # Faults
///
/// Every operation runs within the connect timeout (getting a connection)
/// and the command timeout (the command itself), 1 s each by default. When
/// Redis is unreachable or slow, requests that need their session fail with
/// [`Error::StoreUnavailable`](crate::Error::StoreUnavailable) (a 503 from the layer, no `Set-Cookie`) within
/// those bounds, and succeed again once Redis is back, without a restart. A
/// connection whose command was cut off, by a timeout or because the request
/// was dropped, is closed instead of going back to the pool, so no later
/// request can read a reply meant for another.
///
/// A held connection that Redis dropped while no command was on it (a
/// restart, an idle `timeout`, as managed Redis, proxies and NAT also
/// enforce, or `CLIENT KILL`) costs no error: the first command after it
/// finds it closed before anything was sent, dials again and is sent once
/// on the new connection. A command that may have reached Redis before its
/// connection broke is not sent again (see below).
///
/// A Redis that is up but refuses writes for now (`OOM` at `maxmemory` with
/// the `noeviction` policy, `MISCONF`, `NOREPLICAS`, `READONLY`) is
/// unavailable too: requests that only read their session still succeed
/// (behind Sentinel, until its first `READONLY` reply: see below), and
/// those that change it get a 503 and nothing is written. A read that is due
/// a rolling TTL refresh skips the refresh (a WARN event) and still answers;
/// the record keeps the TTL it had. Other error replies
/// are [`Error::Store`](crate::Error::Store) (a 500).
///
/// A save that failed after its command was sent may still have been
/// applied: a Redis that was frozen (not down) runs what it had already
/// received when it thaws, and a connection cut just after the write loses
/// only the reply. So a 503 from a save means "not known", as with any
/// timeout; the store never retries a write, so none is applied twice.
///
/// # TLS
///
/// With the `redis-tls` feature, `rediss://` URLs connect over TLS (rustls,
/// with the ring provider unless the application installed another one
/// first). The server's certificate is verified against the system's roots;
/// `SSL_CERT_FILE` or `SSL_CERT_DIR` replace them, e.g. with a private CA.
/// Client certificates cannot be given in a URL.
///
/// # Redis Cluster
///
/// With the `redis-cluster` feature, [`connect_cluster`](Self::connect_cluster)
/// and [`cluster`](Self::cluster) run the same store on a cluster. A session
/// is one key, so it lives in one slot, and every script touches only that key
/// (a user's index is one key too, written by scripts of its own).
/// redis-rs' cluster connection follows redirects and reconnects to nodes by
/// itself, and in doing so it also resends a command whose node connection
/// broke after it was sent: on a cluster, such a write can be applied twice
/// (an update writes the same values again; a create leaves one unused
/// record until its TTL ends).
///
/// # Redis Sentinel
///
/// With the `redis-sentinel` feature,
/// [`connect_sentinel`](Self::connect_sentinel) and
/// [`sentinel`](Self::sentinel) run the store on the master that a set of
/// Sentinels names. While the master is down and the Sentinels have not yet
/// promoted a replica, requests that need their session answer 503 (as for
/// a Redis that is down); then the store asks the Sentinels again and follows
/// the new master, without a restart. A `READONLY` reply (an old master
/// that came back as a replica) drops the connection, so the next command
/// asks again: while the Sentinels still name that server (demoted by hand,
/// not yet noticed), it finds no master, and requests that need their
/// session answer 503, reads included. Replication is asynchronous and the
/// store does not use `WAIT`: a write the old master acknowledged just
/// before it died, and had not yet passed to a replica, is lost in the
/// failover.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    prefix: String,
    timeouts: Timeouts,
    ids: Box<IdGenerator>,
    max_record: Option<usize>,
    max_per_user: usize,
    cache: Option<cache::Tracking>,
}

impl RedisStore {
    /// SECURITY J49 / J48: what an update or rotation writes can be read
    /// back, and the request's copy of the record is within the size limit.
    fn check_changes(&self, record: &Record, changes: &Changes) -> Result<(), StoreError> {
        if changes
            .set()
            .filter_map(|k| record.get(k))
            .any(value_nests_too_deep)
        {
            return Err(format::too_deep());
        }
        self.check_size(record)
    }

    /// SECURITY J48: the request's copy of the record within the size limit.
    fn check_size(&self, record: &Record) -> Result<(), StoreError> {
        record.check_size(self.inner.max_record)
    }

    fn key(&self, id: &str) -> String {
        storage_key(&self.inner.prefix, id)
    }

    async fn run<T: redis::FromRedisValue + Send + 'static>(
        &self,
        request: impl Call,
    ) -> Result<T, StoreError> {
        self.inner.backend.run(self.inner.timeouts, request).await
    }
}

fn cmd(name: &str, key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd(name);
    cmd.arg(key);
    cmd
}

impl Store for RedisStore {
    async fn create(&self, record: &Record, expires: Deadline) -> Result<String, StoreError> {
        // SECURITY J49: refused here, not stored and then unreadable.
        if record.nests_too_deep() {
            return Err(format::too_deep());
        }
        self.check_size(record)?;
        if let Some(user) = bound_user(record) {
            return self.create_bound(record, expires, user).await;
        }
        for _ in 0..CREATE_ATTEMPTS {
            let id = (self.inner.ids)();
            let key = self.key(id.as_str());
            let call = scripts().create(&key, record, expires.ttl())?;
            match self.run::<i64>(call).await? {
                1 => return Ok(id.as_str().to_owned()),
                // SECURITY A2: never overwrite; mint another id.
                0 => tracing::warn!("session id collision in redis store; minting another id"),
                _ => return Err(StoreError::backend(Failure::UnexpectedReply)),
            }
        }
        Err(StoreError::backend(Failure::NoFreeId))
    }

    async fn load(&self, value: &str) -> Result<Option<Record>, StoreError> {
        // SECURITY A4: malformed values never reach Redis.
        if !id::is_valid(value) {
            return Ok(None);
        }
        let key = self.key(value);
        if let Some(cache) = &self.inner.cache {
            return self.load_cached(cache, key).await;
        }
        let reply: Value = self.run(cmd("HGETALL", &key)).await?;
        format::decode(reply).map_err(|f| match f {
            // SECURITY I44: ours, but unreadable: the layer starts afresh.
            Failure::Corrupt => StoreError::unreadable(f),
            f => StoreError::backend(f),
        })
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
        self.check_changes(record, changes)?;
        // `changes_binding`, with the binding it leads to: two set lookups,
        // and an ordinary write goes on as before.
        let to = match users::binding(record, changes) {
            users::Binding::Unchanged => None,
            users::Binding::Unbound => Some(None),
            users::Binding::To(user) => Some(Some(user)),
        };
        if let Some(to) = to {
            let done = self
                .update_binding(value, record, changes, expires, to)
                .await;
            self.after_write(Some(&self.key(value)), done.is_ok()).await;
            return done;
        }
        let key = self.key(value);
        let call = scripts().update(&key, record, changes, expires.ttl())?;
        let done = self.run::<i64>(call).await;
        self.after_write(Some(&key), done.is_ok()).await;
        match done? {
            1 => Ok(Updated::Written(value.to_owned())),
            // SECURITY I38: the merged record was empty and is deleted.
            2 => Ok(Updated::Emptied),
            // SECURITY F28: deleted or expired; nothing was written.
            0 => Ok(Updated::Gone),
            _ => Err(StoreError::backend(Failure::UnexpectedReply)),
        }
    }

    /// On a single node, one script (`rotate.lua`) checks the old record,
    /// moves it to a new id and moves its index entry along. On a cluster
    /// the old and new keys sit in different slots, so no single script could
    /// do both: `take.lua` applies the changes and takes the old record out
    /// only if it exists (one atomic step, so a rotation racing a logout
    /// brings nothing back), then `create.lua` writes it under a new id, and
    /// a bound record is then listed (see `users.rs`). If a later step fails
    /// the session is lost (the user signs in again); it is never duplicated
    /// or revived.
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
        self.check_changes(record, changes)?;
        let done = if self.single_node() {
            self.rotate_single(old, record, changes, expires).await
        } else {
            self.rotate_cluster(old, record, changes, expires).await
        };
        self.after_write(Some(&self.key(old)), done.is_ok()).await;
        done
    }

    async fn touch(&self, value: &str, expires: Deadline) -> Result<bool, StoreError> {
        if !id::is_valid(value) {
            return Ok(false);
        }
        let key = self.key(value);
        let mut pexpire = cmd("PEXPIRE", &key);
        pexpire.arg(ttl_ms(expires.ttl()));
        let done = self.run::<i64>(pexpire).await;
        self.after_write(Some(&key), done.is_ok()).await;
        match done {
            Ok(1) => Ok(true),
            Ok(0) => Ok(false),
            Ok(_) => Err(StoreError::backend(Failure::UnexpectedReply)),
            // SECURITY J55: the read that asked for the refresh still
            // answers; the record keeps its old TTL, and was there when the
            // read loaded it.
            Err(err) if conn::refuses_writes(&err) => {
                tracing::warn!(error = %err, "redis refuses writes for now; session TTL refresh skipped");
                Ok(true)
            }
            Err(err) => Err(err),
        }
    }

    async fn delete(&self, value: &str) -> Result<(), StoreError> {
        if !id::is_valid(value) {
            return Ok(());
        }
        let key = self.key(value);
        let deleted = self.run::<i64>(cmd("DEL", &key)).await;
        self.after_write(Some(&key), deleted.is_ok()).await;
        deleted?;
        Ok(())
    }
}

/// What went wrong inside the store, kept as the `source()` of [`Error`].
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("timed out getting a redis connection")]
    ConnectTimeout,
    #[error("redis command timed out")]
    CommandTimeout,
    #[error("no redis connection available")]
    PoolUnavailable,
    #[error("unexpected reply from redis")]
    UnexpectedReply,
    #[error("unreadable session record in redis")]
    Corrupt,
    #[error("session record in an unknown format version")]
    UnknownVersion,
    #[error("could not mint an unused session id")]
    NoFreeId,
}

/// Entry points for the fuzz targets in `fuzz/`; built only under
/// `cfg(fuzzing)`, which cargo-fuzz sets, so they are no part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use deadpool_redis::redis::Value;

    /// Decodes a hash reply made of `fields` (a flat RESP2 array, or a RESP3
    /// map), as `load` does; `Some(keys)` when it is a session.
    pub fn decode_hash(fields: Vec<(Vec<u8>, Vec<u8>)>, resp3: bool) -> Option<usize> {
        let reply = if resp3 {
            Value::Map(
                fields
                    .into_iter()
                    .map(|(k, v)| (Value::BulkString(k), Value::BulkString(v)))
                    .collect(),
            )
        } else {
            Value::Array(
                fields
                    .into_iter()
                    .flat_map(|(k, v)| [Value::BulkString(k), Value::BulkString(v)])
                    .collect(),
            )
        };
        super::format::decode(reply).ok().flatten().map(|r| r.len())
    }
}
