//! Sending one command on the held connection, with timeouts; dialling again
//! when that connection was found dead before the command went out; and
//! discarding any connection whose command was cut off (SECURITY F31).

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::time::Duration;

use deadpool_redis::redis::aio::ConnectionLike;
use deadpool_redis::redis::{
    self, ErrorKind, FromRedisValue, RedisError, ScriptInvocation, ServerErrorKind,
};
use deadpool_redis::{HookError, PoolError};

use super::hold::{Holder, Shared, Source};
use super::Failure;
use crate::error::StoreError;

/// Where a store's connection comes from.
pub(super) enum Backend {
    Single(Holder<deadpool_redis::Pool>),
    #[cfg(feature = "redis-cluster")]
    Cluster(Holder<deadpool_redis::cluster::Pool>),
    #[cfg(feature = "redis-sentinel")]
    Sentinel(Holder<deadpool_redis::sentinel::Pool>),
}

impl Backend {
    pub(super) fn single(pool: deadpool_redis::Pool) -> Self {
        Self::Single(Holder::new(pool))
    }

    #[cfg(feature = "redis-cluster")]
    pub(super) fn cluster(pool: deadpool_redis::cluster::Pool) -> Self {
        Self::Cluster(Holder::new(pool))
    }

    #[cfg(feature = "redis-sentinel")]
    pub(super) fn sentinel(pool: deadpool_redis::sentinel::Pool) -> Self {
        Self::Sentinel(Holder::new(pool))
    }
}

/// One round trip: a command or a script call.
///
/// A trait, not an enum: `run` is then compiled once per kind, and a plain
/// command's future (every load) is not sized for a script call's, which
/// can reload the script and retry. That keeps a Redis load's boxed future
/// under 1 KiB, small enough for the allocator's per-thread cache rather
/// than its slower large-chunk path (measurements in BENCHMARKS.md).
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

impl Call for redis::Pipeline {
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
    /// Sends one command or script on the held connection, within the
    /// connect and command timeouts.
    pub(super) async fn run<T: FromRedisValue + Send + 'static>(
        &self,
        timeouts: Timeouts,
        request: impl Call,
    ) -> Result<T, StoreError> {
        match self {
            Backend::Single(holder) => run(holder, timeouts, &request).await,
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(holder) => run(holder, timeouts, &request).await,
            #[cfg(feature = "redis-sentinel")]
            Backend::Sentinel(holder) => run(holder, timeouts, &request).await,
        }
    }

    /// Kind, size and idle connections, for `Debug`.
    pub(super) fn status(&self) -> (&'static str, usize, usize) {
        let (kind, (size, available)) = match self {
            Backend::Single(holder) => ("single", Source::status(&holder.pool)),
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(holder) => ("cluster", Source::status(&holder.pool)),
            #[cfg(feature = "redis-sentinel")]
            Backend::Sentinel(holder) => ("sentinel", Source::status(&holder.pool)),
        };
        (kind, size, available)
    }
}

/// Sends `request` once on the held connection. When that connection turns
/// out to have died since its last use (Redis restarted, closed it as idle,
/// or an operator killed it) and the command therefore never left this
/// process, it is sent once more on a newly dialled connection. A command
/// that may have reached Redis is never sent again.
async fn run<P: Source, T: FromRedisValue + Send + 'static>(
    holder: &Holder<P>,
    timeouts: Timeouts,
    request: &impl Call,
) -> Result<T, StoreError> {
    let mut shared = match holder.held_now() {
        Some(shared) => shared,
        None => dial(holder, timeouts).await?,
    };
    if holder.idle_before() > IDLE {
        // Lets the task that owns the socket run first: if Redis closed the
        // connection meanwhile, that task sees it now and ends, and this
        // command then fails before it is sent, which allows sending it
        // again. Twice: a runtime's `block_on` future is polled again before
        // the tasks that the first yield let the I/O driver wake. Only after
        // an idle spell, so a busy store pays nothing.
        for _ in 0..2 {
            tokio::task::yield_now().await;
        }
    }
    let (result, unsent) = send(timeouts, &mut shared.conn, request).await;
    let dead_before = unsent && matches!(&result, Ok(Err(err)) if is_transport(err));
    if dead_before && shared.reused {
        // Dropped unreleased: the dead connection leaves the pool.
        drop(shared);
        tracing::debug!("redis connection closed while idle; dialling again");
        let mut shared = dial(holder, timeouts).await?;
        let (result, _) = send(timeouts, &mut shared.conn, request).await;
        return release_or_discard(result, shared);
    }
    release_or_discard(result, shared)
}

/// How long without a command before one yields to the connection's task
/// first (see [`run`]).
const IDLE: Duration = Duration::from_millis(1);

/// A handle on the held connection, checking one out of the pool (dialling
/// a new one if need be) when none is held.
async fn dial<P: Source>(holder: &Holder<P>, timeouts: Timeouts) -> Result<Shared<P>, StoreError> {
    // Boxed: checking a connection out is rare, and its future (about
    // 10 KiB for the cluster pool's) would make every command's larger.
    Box::pin(within(timeouts.connect, holder.share()))
        .await?
        .map_err(pool_error)
}

/// The outcome of a command: `Err` when it timed out.
type Outcome<T> = Result<redis::RedisResult<T>, tokio::time::error::Elapsed>;

/// Sends `request` on `conn` within the command timeout; `true` beside the
/// outcome when it came on the first poll.
///
/// A command that fails with a connection error on its very first poll
/// never left this process: redis-rs hands every command to the task that
/// owns the socket, and only that task, polled separately, can write it or
/// fail it once written. Failing at once means that task had already ended,
/// with the socket closed.
async fn send<C: ConnectionLike + Send, T: FromRedisValue + Send + 'static>(
    timeouts: Timeouts,
    conn: &mut C,
    request: &impl Call,
) -> (Outcome<T>, bool) {
    let mut call = pin!(request.call(conn));
    let mut waited = false;
    let attempt = poll_fn(|cx| {
        let poll = call.as_mut().poll(cx);
        waited |= poll.is_pending();
        poll
    });
    let result = tokio::time::timeout(timeouts.command, attempt).await;
    (result, !waited)
}

/// The outcome of [`send`]; the connection stays shared unless the command
/// was cut off, the connection itself failed, or (Sentinel) it no longer
/// points at the master.
fn release_or_discard<P: Source, T>(
    result: Outcome<T>,
    shared: Shared<P>,
) -> Result<T, StoreError> {
    match result {
        Ok(Ok(value)) => {
            shared.release();
            Ok(value)
        }
        Ok(Err(err)) => {
            let demoted = P::FOLLOWS_MASTER && err.kind() == ServerErrorKind::ReadOnly.into();
            if !is_transport(&err) && !demoted {
                // A well-formed error reply: the connection is in step.
                shared.release();
            }
            Err(classify(err))
        }
        // Not released: the connection is discarded.
        Err(_elapsed) => Err(StoreError::unavailable(Failure::CommandTimeout)),
    }
}

/// `true` for a Redis that is up but refuses writes for now (see
/// [`classify`]): a read may go on without the write it wanted.
pub(super) fn refuses_writes(err: &StoreError) -> bool {
    let StoreError::Unavailable(err) = err else {
        return false;
    };
    let Some(err) = err.downcast_ref::<RedisError>() else {
        return false;
    };
    err.kind() == ServerErrorKind::ReadOnly.into()
        || matches!(err.code(), Some("OOM" | "MISCONF" | "NOREPLICAS"))
}

fn pool_error(err: PoolError) -> StoreError {
    match err {
        PoolError::Backend(err) | PoolError::PostCreateHook(HookError::Backend(err)) => {
            classify(err)
        }
        PoolError::Timeout(_) | PoolError::Closed => {
            StoreError::unavailable(Failure::PoolUnavailable)
        }
        err => StoreError::backend(err),
    }
}

async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Result<T, StoreError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| StoreError::unavailable(Failure::ConnectTimeout))
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
/// Sentinels that name no usable master are in the middle of a failover.
fn classify(err: RedisError) -> StoreError {
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
                | ErrorKind::MasterNameNotFoundBySentinel
                | ErrorKind::NoValidReplicasFoundBySentinel
        )
        || matches!(err.code(), Some("BUSY" | "OOM" | "MISCONF" | "NOREPLICAS"));
    if transient {
        StoreError::unavailable(err)
    } else {
        StoreError::backend(err)
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
    fn only_refused_writes_let_a_read_skip_its_refresh() {
        for code in ["OOM", "MISCONF", "NOREPLICAS"] {
            assert!(refuses_writes(&classify(server_error(code))), "{code}");
        }
        let readonly = RedisError::from((ServerErrorKind::ReadOnly.into(), "replica"));
        assert!(refuses_writes(&classify(readonly)));
        for code in ["BUSY", "WRONGTYPE"] {
            assert!(!refuses_writes(&classify(server_error(code))), "{code}");
        }
        assert!(!refuses_writes(&StoreError::unavailable(
            Failure::CommandTimeout
        )));
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
