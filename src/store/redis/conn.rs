//! Checking connections out of the pool, with timeouts, and discarding any
//! connection whose command was cut off (SECURITY F31).

use std::future::Future;
use std::time::Duration;

use deadpool_redis::redis::aio::ConnectionLike;
use deadpool_redis::redis::{
    self, ErrorKind, FromRedisValue, RedisError, RedisFuture, ScriptInvocation,
};
use deadpool_redis::PoolError;

use super::Failure;
use crate::error::Error;

/// The pool a store draws its connections from.
#[derive(Clone)]
pub(super) enum Backend {
    Single(deadpool_redis::Pool),
    #[cfg(feature = "redis-cluster")]
    Cluster(deadpool_redis::cluster::Pool),
}

/// A connection checked out of either pool.
enum Conn {
    Single(deadpool_redis::Connection),
    #[cfg(feature = "redis-cluster")]
    Cluster(deadpool_redis::cluster::Connection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A checked-out connection that goes back to the pool only when its command
/// finished. Dropped while a command is in flight (a timeout, or the request
/// future itself dropped), it is taken out of the pool and closed, so no
/// later request can ever read the reply meant for this one.
struct Checkout {
    conn: Option<Conn>,
}

impl Checkout {
    fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("present until released or dropped")
    }

    /// The command finished cleanly: the connection may be reused.
    fn release(mut self) {
        drop(self.conn.take());
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        match self.conn.take() {
            None => {}
            Some(Conn::Single(c)) => drop(deadpool_redis::Connection::take(c)),
            #[cfg(feature = "redis-cluster")]
            Some(Conn::Cluster(c)) => drop(deadpool_redis::cluster::Connection::take(c)),
        }
    }
}

/// One round trip.
pub(super) enum Request<'a> {
    Cmd(redis::Cmd),
    Script(ScriptInvocation<'a>),
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
    pub(super) async fn run<T: FromRedisValue>(
        &self,
        timeouts: Timeouts,
        request: Request<'_>,
    ) -> Result<T, Error> {
        let mut checkout = self.checkout(timeouts.connect).await?;
        let conn = checkout.conn();
        let call = async move {
            match &request {
                Request::Cmd(cmd) => cmd.query_async(conn).await,
                Request::Script(script) => script.invoke_async(conn).await,
            }
        };
        match tokio::time::timeout(timeouts.command, call).await {
            Ok(Ok(value)) => {
                checkout.release();
                Ok(value)
            }
            Ok(Err(err)) => {
                if !is_transport(&err) {
                    // A well-formed error reply: the connection is in step.
                    checkout.release();
                }
                Err(classify(err))
            }
            // `checkout` is dropped with the command in flight: discarded.
            Err(_elapsed) => Err(Error::unavailable(Failure::CommandTimeout)),
        }
    }

    async fn checkout(&self, connect: Duration) -> Result<Checkout, Error> {
        let conn = match self {
            Backend::Single(pool) => within(connect, pool.get()).await?.map(Conn::Single),
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(pool) => within(connect, pool.get()).await?.map(Conn::Cluster),
        };
        match conn {
            Ok(conn) => Ok(Checkout { conn: Some(conn) }),
            Err(PoolError::Backend(err)) => Err(classify(err)),
            Err(PoolError::Timeout(_) | PoolError::Closed) => {
                Err(Error::unavailable(Failure::PoolUnavailable))
            }
            Err(err) => Err(Error::store(err)),
        }
    }

    /// Size and idle connections, for `Debug`.
    pub(super) fn status(&self) -> (&'static str, usize, usize) {
        match self {
            Backend::Single(pool) => {
                let s = pool.status();
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
        || matches!(err.kind(), ErrorKind::ParseError | ErrorKind::ClientError)
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
            ErrorKind::BusyLoadingError
                | ErrorKind::TryAgain
                | ErrorKind::ClusterDown
                | ErrorKind::MasterDown
                | ErrorKind::ReadOnly
                | ErrorKind::ClusterConnectionNotFound
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
        let err = classify(RedisError::from((ErrorKind::ReadOnly, "replica")));
        assert!(err.is_unavailable());
    }

    #[test]
    fn other_error_replies_are_store_failures() {
        for code in ["WRONGTYPE", "NOPERM", "SOMETHINGNEW"] {
            let err = classify(server_error(code));
            assert!(!err.is_unavailable(), "{code}: {err:?}");
        }
        let err = classify(RedisError::from((ErrorKind::ResponseError, "ERR")));
        assert!(!err.is_unavailable());
    }
}
