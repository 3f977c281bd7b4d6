//! [`RedisStore`]'s constructors and its `Debug`.

use std::fmt;
use std::sync::Arc;

use super::cache::Tracking;
use super::conn::Backend;
use super::{Inner, RedisStore, RedisStoreBuilder};
use crate::error::Error;

impl RedisStore {
    /// A store over `pool`, with the default prefix (`session:`) and timeouts
    /// (1 s to get a connection, 1 s per command).
    pub fn new(pool: deadpool_redis::Pool) -> Self {
        Self::from_parts(Backend::single(pool), RedisStoreBuilder::default(), None)
    }

    /// A store on the Redis at `url`, with the defaults of [`new`](Self::new)
    /// and deadpool's default pool size. Connects lazily: a Redis that is down
    /// now answers 503s until it is up, and this does not fail.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] for a URL that does not parse (the error does not
    /// contain the URL).
    pub fn connect(url: &str) -> Result<Self, Error> {
        Self::builder().connect(url)
    }

    /// A store over a Redis Cluster `pool`, with the defaults of [`new`](Self::new).
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn cluster(pool: deadpool_redis::cluster::Pool) -> Self {
        Self::from_parts(Backend::cluster(pool), RedisStoreBuilder::default(), None)
    }

    /// A store on the Redis Cluster reached through any of `urls` (the other
    /// nodes are discovered), with the defaults of [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the pool cannot be made from `urls` (a URL that
    /// does not parse).
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn connect_cluster<I, S>(urls: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::builder().connect_cluster(urls)
    }

    /// A store over a Redis Sentinel `pool`, with the defaults of
    /// [`new`](Self::new); see [`RedisStoreBuilder::build_sentinel`].
    #[cfg(feature = "redis-sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-sentinel")))]
    pub fn sentinel(pool: deadpool_redis::sentinel::Pool) -> Self {
        Self::from_parts(Backend::sentinel(pool), RedisStoreBuilder::default(), None)
    }

    /// A store on the master that the Sentinels at `sentinels` know as
    /// `service_name`, with the defaults of [`connect`](Self::connect); see
    /// [`RedisStoreBuilder::connect_sentinel`].
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the pool cannot be made from `sentinels` (a URL
    /// that does not parse).
    #[cfg(feature = "redis-sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-sentinel")))]
    pub fn connect_sentinel<I, S>(sentinels: I, service_name: &str) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::builder().connect_sentinel(sentinels, service_name)
    }

    /// A builder for a customised store.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// The prefix of every key this store writes.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub(super) fn from_parts(
        backend: Backend,
        b: RedisStoreBuilder,
        cache: Option<Tracking>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                prefix: b.prefix,
                timeouts: b.timeouts,
                ids: b.ids,
                max_record: b.max_record,
                max_per_user: b.max_per_user,
                cache,
            }),
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's own Debug would show the connection info, password included.
        let (kind, size, available) = self.inner.backend.status();
        f.debug_struct("RedisStore")
            .field("backend", &kind)
            .field("prefix", &self.inner.prefix)
            .field("connect_timeout", &self.inner.timeouts.connect)
            .field("command_timeout", &self.inner.timeouts.command)
            .field("pool_size", &size)
            .field("pool_available", &available)
            .field("client_cache", &self.client_cache_len())
            .finish_non_exhaustive()
    }
}
