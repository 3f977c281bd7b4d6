//! Checking connections out of the pool, with timeouts, and discarding any
//! connection whose command was cut off (SECURITY F31).
//!
//! A single Redis keeps one connection checked out of its pool and sends
//! every command on it: redis-rs multiplexes concurrent commands over one
//! connection, and a checkout per command would cost deadpool's recycle check
//! (`UNWATCH` + `PING`), a second round trip, every time. The pool is only
//! asked again when that connection has to be discarded.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use deadpool_redis::redis::aio::ConnectionLike;
use deadpool_redis::redis::{
    self, ErrorKind, FromRedisValue, RedisError, ScriptInvocation, ServerErrorKind,
};
use deadpool_redis::PoolError;

use super::Failure;
use crate::error::Error;

/// The pool a store draws its connections from.
pub(super) enum Backend {
    Single(Single),
    #[cfg(feature = "redis-cluster")]
    Cluster(deadpool_redis::cluster::Pool),
}

impl Backend {
    pub(super) fn single(pool: deadpool_redis::Pool) -> Self {
        Self::Single(Single {
            pool,
            held: Arc::new(Mutex::new(None)),
            checking_out: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        })
    }
}

/// A single Redis: its pool, and the connection every command shares.
pub(super) struct Single {
    pool: deadpool_redis::Pool,
    held: Arc<Mutex<Option<Held>>>,
    /// One check-out at a time: the others wait for its connection, not for
    /// a pool slot that it keeps.
    checking_out: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

/// The shared connection, checked out of the pool for as long as it is held.
struct Held {
    generation: u64,
    conn: deadpool_redis::Connection,
}

impl Single {
    fn held(&self) -> MutexGuard<'_, Option<Held>> {
        // Every critical section is one assignment or take.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle on the shared connection, if one is held.
    fn held_now(&self) -> Option<Shared> {
        self.held().as_ref().map(|h| self.shared(h))
    }

    /// A handle on the shared connection, checking one out of the pool
    /// first when none is held.
    async fn share(&self) -> Result<Shared, PoolError> {
        if let Some(h) = &*self.held() {
            return Ok(self.shared(h));
        }
        let _turn = self.checking_out.lock().await;
        if let Some(h) = &*self.held() {
            return Ok(self.shared(h));
        }
        let conn = self.pool.get().await?;
        let mut held = self.held();
        let h = held.insert(Held {
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            conn,
        });
        Ok(self.shared(h))
    }

    fn shared(&self, h: &Held) -> Shared {
        Shared {
            conn: (*h.conn).clone(),
            generation: h.generation,
            held: Some(self.held.clone()),
        }
    }
}

/// A clone of the shared connection for one command. Dropped before
/// [`release`](Self::release), with its command cut off, it takes the
/// shared connection out of the pool, so no later command shares it.
struct Shared {
    conn: redis::aio::MultiplexedConnection,
    generation: u64,
    held: Option<Arc<Mutex<Option<Held>>>>,
}

impl Shared {
    fn release(mut self) {
        self.held = None;
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
        if held
            .as_ref()
            .is_some_and(|h| h.generation == self.generation)
        {
            if let Some(h) = held.take() {
                drop(deadpool_redis::Connection::take(h.conn));
            }
        }
    }
}

/// A cluster connection checked out for one command, back to the pool only
/// when its command finished. Dropped while a command is in flight (a
/// timeout, or the request future itself dropped), it is taken out of the
/// pool and closed, so no later request can ever read the reply meant for
/// this one.
#[cfg(feature = "redis-cluster")]
struct Checkout {
    conn: Option<deadpool_redis::cluster::Connection>,
}

#[cfg(feature = "redis-cluster")]
impl Checkout {
    fn conn(&mut self) -> &mut deadpool_redis::cluster::Connection {
        self.conn
            .as_mut()
            .expect("present until released or dropped")
    }

    /// The command finished cleanly: the connection may be reused.
    fn release(mut self) {
        drop(self.conn.take());
    }
}

#[cfg(feature = "redis-cluster")]
impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            drop(deadpool_redis::cluster::Connection::take(c));
        }
    }
}

/// One round trip: a command or a script call.
///
/// A trait, not an enum: `run` is then compiled once per kind, and a plain
/// command's future (every load) is not sized for a script call's, which
/// can reload the script and retry. That keeps a Redis load's boxed future
/// under 1 KiB, where the allocator serves it from its per-thread cache
/// (perf showed glibc's large-chunk path, `malloc_consolidate` and
/// `unlink_chunk`, on every read when it was 1.2 KiB).
pub(super) trait Call: Sync {
    fn call<'a, C, T>(
        &'a self,
        conn: &'a mut C,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send + 'a
    where
        C: ConnectionLike + Send,
        T: FromRedisValue + Send + 'static;
}

impl Call for redis::Cmd {
    fn call<'a, C, T>(
        &'a self,
        conn: &'a mut C,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send + 'a
    where
        C: ConnectionLike + Send,
        T: FromRedisValue + Send + 'static,
    {
        self.query_async(conn)
    }
}

impl Call for ScriptInvocation<'_> {
    fn call<'a, C, T>(
        &'a self,
        conn: &'a mut C,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send + 'a
    where
        C: ConnectionLike + Send,
        T: FromRedisValue + Send + 'static,
    {
        self.invoke_async(conn)
    }
}

/// Timeouts applied to every operation.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timeouts {
    pub(super) connect: Duration,
    pub(super) command: Duration,
}

impl Backend {
    /// Sends one command or script on a pooled connection, within the
    /// connect and command timeouts.
    pub(super) async fn run<T: FromRedisValue + Send + 'static>(
        &self,
        timeouts: Timeouts,
        request: impl Call,
    ) -> Result<T, Error> {
        match self {
            Backend::Single(single) => {
                let mut shared = match single.held_now() {
                    Some(shared) => shared,
                    // Boxed: checking a connection out of the pool is rare,
                    // and its future would make every command's larger.
                    None => Box::pin(within(timeouts.connect, single.share()))
                        .await?
                        .map_err(pool_error)?,
                };
                let result = send(timeouts, &mut shared.conn, &request).await;
                finish(result, || shared.release())
            }
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(pool) => {
                // Boxed like the single checkout: inline, the cluster pool's
                // checkout (about 10 KiB) sized every store future, the
                // single-Redis path's included, in any build with this
                // feature.
                let conn = Box::pin(within(timeouts.connect, pool.get()))
                    .await?
                    .map_err(pool_error)?;
                let mut checkout = Checkout { conn: Some(conn) };
                let result = send(timeouts, checkout.conn(), &request).await;
                finish(result, || checkout.release())
            }
        }
    }

    /// Size and idle connections, for `Debug`.
    pub(super) fn status(&self) -> (&'static str, usize, usize) {
        match self {
            Backend::Single(single) => {
                let s = single.pool.status();
                ("single", s.size, s.available)
            }
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(pool) => {
                let s = pool.status();
                ("cluster", s.size, s.available)
            }
        }
    }
}

/// Sends `request` on `conn` within the command timeout; `Err` when it timed out.
async fn send<C: ConnectionLike + Send, T: FromRedisValue + Send + 'static>(
    timeouts: Timeouts,
    conn: &mut C,
    request: &impl Call,
) -> Result<redis::RedisResult<T>, tokio::time::error::Elapsed> {
    tokio::time::timeout(timeouts.command, request.call(conn)).await
}

/// The outcome of [`send`]; `release` keeps the connection for reuse, which
/// it may be unless the command was cut off or the connection itself failed.
fn finish<T>(
    result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    release: impl FnOnce(),
) -> Result<T, Error> {
    match result {
        Ok(Ok(value)) => {
            release();
            Ok(value)
        }
        Ok(Err(err)) => {
            if !is_transport(&err) {
                // A well-formed error reply: the connection is in step.
                release();
            }
            Err(classify(err))
        }
        // Not released: the connection is discarded.
        Err(_elapsed) => Err(Error::unavailable(Failure::CommandTimeout)),
    }
}

fn pool_error(err: PoolError) -> Error {
    match err {
        PoolError::Backend(err) => classify(err),
        PoolError::Timeout(_) | PoolError::Closed => Error::unavailable(Failure::PoolUnavailable),
        err => Error::store(err),
    }
}

async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Result<T, Error> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| Error::unavailable(Failure::ConnectTimeout))
}

/// The connection itself failed: its stream may be out of step with its
/// replies, so it must not be reused.
fn is_transport(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || matches!(err.kind(), ErrorKind::Parse | ErrorKind::Client)
}

/// 503 for failures that pass when Redis is back; 500 for the rest.
///
/// "Back" includes a Redis that is up but refuses writes for a while, for a
/// reason of its own that no change to the request would fix: `OOM` (at
/// `maxmemory` with nothing it may evict, until keys expire or an operator
/// frees memory), `MISCONF` (snapshots failing with
/// `stop-writes-on-bgsave-error`), `NOREPLICAS` (`min-replicas-to-write` not
/// met), `READONLY` (a replica after a failover). Answering those with 503
/// tells clients and load balancers to retry later, as for a Redis that is
/// down, rather than report a bug. The reply was well formed, so the
/// connection itself stays in the pool, and a refused script wrote nothing
/// (Redis refuses a script's first write, before it changed anything).
fn classify(err: RedisError) -> Error {
    let transient = is_transport(&err)
        || matches!(
            err.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            ) | ErrorKind::ClusterConnectionNotFound
        )
        || matches!(err.code(), Some("BUSY" | "OOM" | "MISCONF" | "NOREPLICAS"));
    if transient {
        Error::unavailable(err)
    } else {
        Error::store(err)
    }
}

#[cfg(test)]
mod tests {
    use deadpool_redis::redis::make_extension_error;

    use super::*;

    fn server_error(code: &str) -> RedisError {
        make_extension_error(code.to_owned(), Some("detail".to_owned()))
    }

    #[test]
    fn redis_refusing_writes_for_now_is_unavailable() {
        for code in ["OOM", "MISCONF", "NOREPLICAS", "BUSY"] {
            let err = classify(server_error(code));
            assert!(err.is_unavailable(), "{code}: {err:?}");
            assert!(
                !is_transport(&server_error(code)),
                "{code} keeps its connection"
            );
        }
        let err = classify(RedisError::from((
            ServerErrorKind::ReadOnly.into(),
            "replica",
        )));
        assert!(err.is_unavailable());
    }

    #[test]
    fn other_error_replies_are_store_failures() {
        for code in ["WRONGTYPE", "NOPERM", "SOMETHINGNEW"] {
            let err = classify(server_error(code));
            assert!(!err.is_unavailable(), "{code}: {err:?}");
        }
        let err = classify(RedisError::from((
            ServerErrorKind::ResponseError.into(),
            "ERR",
        )));
        assert!(!err.is_unavailable());
    }
}
