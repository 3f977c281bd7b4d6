//! One connection checked out of a pool and shared by every command, dialled
//! again when Redis dropped it.
//!
//! redis-rs multiplexes concurrent commands over one connection (a cluster
//! connection over one per node), and a checkout per command would cost
//! deadpool's recycle check (a `PING`), a second round trip, every time. The
//! pool is only asked again when the held connection has to be discarded.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::PoolError;

/// A pool the store draws its held connection from.
pub(super) trait Source: Send + Sync {
    /// What the pool hands out.
    type Pooled: Send;
    /// A clone of it that one command uses.
    type Conn: ConnectionLike + Clone + Send;
    /// `true` where a `READONLY` reply means the connection points at a
    /// server that is no longer the master (Sentinel): it is then dropped, so
    /// the next command asks where the master is now.
    const FOLLOWS_MASTER: bool = false;

    fn get(&self) -> impl Future<Output = Result<Self::Pooled, PoolError>> + Send;
    fn conn(pooled: &Self::Pooled) -> Self::Conn;
    /// Takes the connection out of the pool for good; it closes once the
    /// last clone is gone.
    fn discard(pooled: Self::Pooled);
    /// Size and idle connections.
    fn status(&self) -> (usize, usize);
}

impl Source for deadpool_redis::Pool {
    type Pooled = deadpool_redis::Connection;
    type Conn = MultiplexedConnection;

    fn get(&self) -> impl Future<Output = Result<Self::Pooled, PoolError>> + Send {
        deadpool_redis::Pool::get(self)
    }
    fn conn(pooled: &Self::Pooled) -> Self::Conn {
        (**pooled).clone()
    }
    fn discard(pooled: Self::Pooled) {
        drop(deadpool_redis::Connection::take(pooled));
    }
    fn status(&self) -> (usize, usize) {
        let s = deadpool_redis::Pool::status(self);
        (s.size, s.available)
    }
}

#[cfg(feature = "redis-cluster")]
impl Source for deadpool_redis::cluster::Pool {
    type Pooled = deadpool_redis::cluster::Connection;
    type Conn = deadpool_redis::cluster::ClusterConnection;

    fn get(&self) -> impl Future<Output = Result<Self::Pooled, PoolError>> + Send {
        deadpool_redis::cluster::Pool::get(self)
    }
    fn conn(pooled: &Self::Pooled) -> Self::Conn {
        (**pooled).clone()
    }
    fn discard(pooled: Self::Pooled) {
        drop(deadpool_redis::cluster::Connection::take(pooled));
    }
    fn status(&self) -> (usize, usize) {
        let s = deadpool_redis::cluster::Pool::status(self);
        (s.size, s.available)
    }
}

#[cfg(feature = "redis-sentinel")]
impl Source for deadpool_redis::sentinel::Pool {
    type Pooled = deadpool_redis::sentinel::Connection;
    type Conn = MultiplexedConnection;
    const FOLLOWS_MASTER: bool = true;

    fn get(&self) -> impl Future<Output = Result<Self::Pooled, PoolError>> + Send {
        deadpool_redis::sentinel::Pool::get(self)
    }
    fn conn(pooled: &Self::Pooled) -> Self::Conn {
        (**pooled).clone()
    }
    fn discard(pooled: Self::Pooled) {
        drop(deadpool_redis::sentinel::Connection::take(pooled));
    }
    fn status(&self) -> (usize, usize) {
        let s = deadpool_redis::sentinel::Pool::status(self);
        (s.size, s.available)
    }
}

type Slot<P> = Arc<Mutex<Option<Held<<P as Source>::Pooled>>>>;

/// A pool and the connection every command shares.
pub(super) struct Holder<P: Source> {
    pub(super) pool: P,
    held: Slot<P>,
    /// One check-out at a time: the others wait for its connection, not for
    /// a pool slot that it keeps.
    checking_out: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    /// When the last command started, in nanoseconds since `epoch`.
    last_start: AtomicU64,
    epoch: Instant,
}

/// The shared connection, checked out of the pool for as long as it is held.
struct Held<C> {
    generation: u64,
    conn: C,
}

impl<P: Source> Holder<P> {
    pub(super) fn new(pool: P) -> Self {
        Self {
            pool,
            held: Arc::new(Mutex::new(None)),
            checking_out: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            last_start: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Notes that a command starts now; how long none had started before.
    pub(super) fn idle_before(&self) -> Duration {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.last_start.swap(now, Ordering::Relaxed);
        Duration::from_nanos(now.saturating_sub(last))
    }

    fn held(&self) -> MutexGuard<'_, Option<Held<P::Pooled>>> {
        // Every critical section is one assignment or take.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle on the shared connection, if one is held.
    pub(super) fn held_now(&self) -> Option<Shared<P>> {
        self.held().as_ref().map(|h| self.shared(h, true))
    }

    /// A handle on the shared connection, checking one out of the pool
    /// first when none is held.
    pub(super) async fn share(&self) -> Result<Shared<P>, PoolError> {
        if let Some(h) = &*self.held() {
            return Ok(self.shared(h, false));
        }
        let _turn = self.checking_out.lock().await;
        if let Some(h) = &*self.held() {
            return Ok(self.shared(h, false));
        }
        let conn = self.pool.get().await?;
        let mut held = self.held();
        let h = held.insert(Held {
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            conn,
        });
        Ok(self.shared(h, false))
    }

    fn shared(&self, h: &Held<P::Pooled>, reused: bool) -> Shared<P> {
        Shared {
            conn: P::conn(&h.conn),
            generation: h.generation,
            held: Some(self.held.clone()),
            reused,
        }
    }
}

/// A clone of the shared connection for one command. Dropped before
/// [`release`](Self::release), with its command cut off or its connection
/// failed, it takes the shared connection out of the pool, so no later
/// command shares it.
pub(super) struct Shared<P: Source> {
    pub(super) conn: P::Conn,
    generation: u64,
    held: Option<Slot<P>>,
    /// Held before this command asked for it (not dialled for it), so it may
    /// have died unnoticed since its last use.
    pub(super) reused: bool,
}

impl<P: Source> Shared<P> {
    /// The command finished in step: the connection stays shared.
    pub(super) fn release(mut self) {
        self.held = None;
    }
}

impl<P: Source> Drop for Shared<P> {
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
                P::discard(h.conn);
            }
        }
    }
}
