//! [`RedisStoreBuilder`]: prefix, timeouts, pool size.

use std::fmt;
use std::time::Duration;

use deadpool_redis::redis::AsyncConnectionConfig;
use deadpool_redis::{Manager, Pool, Runtime};

use super::cache::Tracking;
use super::conn::{Backend, Timeouts};
use super::{IdGenerator, RedisStore};
use crate::error::{ConfigError, Error, StoreError};
use crate::id::Id;

const DEFAULT_PREFIX: &str = "session:";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Configures a [`RedisStore`]; see [`RedisStore::builder`].
///
/// Finish with [`connect`](Self::connect) (a URL) or [`build`](Self::build)
/// (a pool you made), or their cluster or Sentinel forms.
pub struct RedisStoreBuilder {
    pub(super) prefix: String,
    pub(super) timeouts: Timeouts,
    pub(super) pool_size: Option<usize>,
    pub(super) ids: Box<IdGenerator>,
    pub(super) max_record: Option<usize>,
    pub(super) max_per_user: usize,
    pub(super) client_cache: Option<usize>,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            timeouts: Timeouts {
                connect: DEFAULT_TIMEOUT,
                command: DEFAULT_TIMEOUT,
            },
            pool_size: None,
            ids: Box::new(Id::generate),
            max_record: None,
            max_per_user: super::users::DEFAULT_MAX_PER_USER,
            client_cache: None,
        }
    }
}

impl RedisStoreBuilder {
    /// The largest record a save may write, in bytes of JSON (as gorilla's
    /// `MaxLength`): a request whose copy of the session is larger gets
    /// [`StoreError::TooLarge`](crate::store::StoreError::TooLarge) and nothing is
    /// written. Default none.
    #[must_use]
    pub fn with_max_record_size(mut self, bytes: usize) -> Self {
        self.max_record = Some(bytes);
        self
    }

    /// The most sessions one user may have
    /// ([`UserSessions`](crate::users::UserSessions)), at least 1 (0 counts
    /// as 1). A login past it ends the user's oldest sessions (their records
    /// are deleted, with a WARN event), so a user's index stays bounded and
    /// every indexed session can still be listed and ended. Default 1000.
    #[must_use]
    pub fn with_max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_per_user = max.max(1);
        self
    }

    /// Keeps up to `entries` loaded sessions in this process and answers
    /// later loads of them from memory, with no round trip, until Redis says
    /// they changed (server-assisted client-side caching: RESP3
    /// `CLIENT TRACKING ON OPTIN`, for session loads only). Default off.
    ///
    /// Only with [`connect`](Self::connect) and a `redis://` or unix socket
    /// URL: the cache dials a connection of its own (RESP3, tracking on,
    /// whatever the URL says about the protocol), so it needs Redis 6 or
    /// later (on an older Redis every request that needs its session gets a
    /// 503, never an uncached answer). [`build`](Self::build) with a pool of
    /// your own, the Cluster and the Sentinel forms, `rediss://` and 0
    /// entries are refused with [`ConfigError::ClientCache`].
    ///
    /// **Memory**: at most `entries` records, each kept as its JSON and at
    /// most the [record size limit](Self::with_max_record_size) long (16 KiB
    /// when none is set; larger records are always loaded from Redis), plus
    /// about 200 bytes per entry for its key and bookkeeping.
    ///
    /// **Consistency**: before a request answers from memory it reads
    /// whatever the cache's connection has received, without waiting, and
    /// applies the invalidations in it; and every write of a store with the
    /// cache on to an existing session (an update, refresh, rotation, logout
    /// or end; not the creation of a new one, which nobody can have cached)
    /// is followed by a `PING` round trip, which Redis answers only
    /// after it has written that write's invalidations to every tracking
    /// client. So a write, logout (`destroy`) or `cycle_id` done through
    /// one cached instance is seen by the next request on every other
    /// cached instance of the same Redis, on one host; across a network, once
    /// the invalidation's packet has arrived. A writer without the cache (an
    /// uncached store, another program) does not fence its writes: its
    /// changes are seen once Redis has written the invalidation out, usually
    /// but not certainly before the next request. When the connection is
    /// closed or out of step, nothing it loaded is served again; an entry
    /// is also dropped after its key's TTL and after 60 s at most. See the
    /// README's Operations section for when to turn it on and what it costs
    /// (one more round trip per write, and a write's next read misses: a
    /// read-modify-write on every request is slower with the cache than
    /// without).
    ///
    /// ```no_run
    /// use sessio::RedisStore;
    ///
    /// # fn main() -> Result<(), sessio::Error> {
    /// let store = RedisStore::builder()
    ///     .with_client_cache(10_000)
    ///     .with_max_record_size(4096)
    ///     .connect("redis://127.0.0.1:6379")?;
    /// assert_eq!(store.client_cache_len(), Some(0));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_client_cache(mut self, entries: usize) -> Self {
        self.client_cache = Some(entries);
        self
    }

    /// The prefix of every key the store writes. Default `session:`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long an operation may wait for a pooled connection, dialling a new
    /// one included. Default 1 s.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self
    }

    /// How long one command may take once sent. Default 1 s.
    #[must_use]
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.command = timeout;
        self
    }

    /// The most connections the pool opens, at least 1 (0 counts as 1). Used
    /// by the `connect` forms; a pool you pass to `build` keeps its own size.
    /// Default deadpool's: four per CPU core. The store itself holds one
    /// connection at a time (see [`RedisStore`]); more matter only for a
    /// pool shared with the rest of the application.
    #[must_use]
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = Some(size.max(1));
        self
    }

    /// Replaces the id generator. Meant for tests that force id collisions;
    /// production code keeps the default CSPRNG ids.
    #[cfg(any(test, feature = "test-util"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    #[must_use]
    pub fn with_id_generator(mut self, ids: impl Fn() -> Id + Send + Sync + 'static) -> Self {
        self.ids = Box::new(ids);
        self
    }

    /// The store over `pool`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`]: [`ConfigError::ZeroDuration`] for a zero connect
    /// or command timeout, [`ConfigError::ClientCache`] with
    /// [`with_client_cache`](Self::with_client_cache), which needs
    /// connections the store makes itself.
    pub fn build(self, pool: deadpool_redis::Pool) -> Result<RedisStore, Error> {
        if self.client_cache.is_some() {
            return Err(ConfigError::ClientCache(
                "needs the store to make its own connections (connect), not a pool passed to build",
            )
            .into());
        }
        self.into_store(Backend::single(pool), None)
    }

    /// The store on the Redis at `url`, over a new pool that connects lazily.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] for a URL that does not parse (the error does not
    /// contain the URL); [`Error::Config`]: [`ConfigError::ZeroDuration`]
    /// for a zero connect or command timeout, [`ConfigError::ClientCache`]
    /// for a client cache of 0 entries or on a `rediss://` URL.
    pub fn connect(self, url: &str) -> Result<RedisStore, Error> {
        let cache = match self.client_cache {
            Some(entries) => Some(Tracking::new(
                url,
                entries,
                self.max_record.unwrap_or(super::cache::DEFAULT_ENTRY_BYTES),
                self.timeouts,
            )?),
            None => None,
        };
        install_crypto_provider(url);
        // No response timeout of redis-rs' own (500 ms by default): the
        // store's command timeout is the one that applies.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(None);
        let manager = Manager::new_with_config(url, config)
            .map_err(|e| Error::from(StoreError::backend(e)))?;
        let mut pool = Pool::builder(manager).runtime(Runtime::Tokio1);
        if let Some(size) = self.pool_size {
            pool = pool.max_size(size);
        }
        let pool = pool
            .build()
            .map_err(|e| Error::from(StoreError::backend(e)))?;
        self.into_store(Backend::single(pool), cache)
    }

    /// The store over a Redis Cluster `pool`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`]: [`ConfigError::ZeroDuration`] for a zero connect
    /// or command timeout, [`ConfigError::ClientCache`] with
    /// [`with_client_cache`](Self::with_client_cache) (single node only).
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn build_cluster(self, pool: deadpool_redis::cluster::Pool) -> Result<RedisStore, Error> {
        self.into_store(Backend::cluster(pool), None)
    }

    /// The store on the Redis Cluster reached through any of `urls`, over a
    /// new pool that connects lazily.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the pool cannot be made from `urls` (a URL that
    /// does not parse); otherwise as [`build_cluster`](Self::build_cluster).
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn connect_cluster<I, S>(self, urls: I) -> Result<RedisStore, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        urls.iter().for_each(|url| install_crypto_provider(url));
        let mut config = deadpool_redis::cluster::Config::from_urls(urls);
        config.pool = self.pool_size.map(deadpool_redis::PoolConfig::new);
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| Error::from(StoreError::backend(e)))?;
        self.build_cluster(pool)
    }

    /// The store over a Redis Sentinel `pool`: its connections go to the
    /// master the Sentinels name, and follow it when they fail over.
    ///
    /// A pool of your own is the way to give the master's password, ACL
    /// user or database (deadpool-redis' `node_connection_info`):
    ///
    /// ```no_run
    /// use sessio::store::deadpool_redis::sentinel::{
    ///     Config, SentinelNodeConnectionInfo, SentinelServerType,
    /// };
    /// use sessio::store::deadpool_redis::{RedisConnectionInfo, Runtime};
    /// use sessio::RedisStore;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sentinels = vec!["redis://10.0.0.1:26379".to_owned(), "redis://10.0.0.2:26379".to_owned()];
    /// let master = SentinelNodeConnectionInfo {
    ///     tls_mode: None,
    ///     redis_connection_info: Some(RedisConnectionInfo {
    ///         password: Some("secret".to_owned()),
    ///         ..RedisConnectionInfo::default()
    ///     }),
    /// };
    /// let pool = Config::from_urls(sentinels, "mymaster".to_owned(), SentinelServerType::Master)
    ///     .with_node_connection_info(Some(master))
    ///     .create_pool(Some(Runtime::Tokio1))?;
    /// let store = RedisStore::builder().build_sentinel(pool)?;
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`]: [`ConfigError::ZeroDuration`] for a zero connect
    /// or command timeout, [`ConfigError::ClientCache`] with
    /// [`with_client_cache`](Self::with_client_cache) (single node only).
    #[cfg(feature = "redis-sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-sentinel")))]
    pub fn build_sentinel(self, pool: deadpool_redis::sentinel::Pool) -> Result<RedisStore, Error> {
        self.into_store(Backend::sentinel(pool), None)
    }

    /// The store on the master that the Sentinels at `sentinels` (URLs such
    /// as `redis://127.0.0.1:26379`, any of them may be down) know as
    /// `service_name`, over a new pool that connects lazily. After a
    /// failover the store asks the Sentinels again and follows the new
    /// master, without a restart.
    ///
    /// The connections deadpool-redis dials for a Sentinel pool keep
    /// redis-rs' own 500 ms response timeout, so a
    /// [command timeout](Self::with_command_timeout) above that has no effect
    /// here.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the pool cannot be made from `sentinels` (a URL
    /// that does not parse); otherwise as
    /// [`build_sentinel`](Self::build_sentinel).
    #[cfg(feature = "redis-sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-sentinel")))]
    pub fn connect_sentinel<I, S>(
        self,
        sentinels: I,
        service_name: &str,
    ) -> Result<RedisStore, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        use deadpool_redis::sentinel::{Config, SentinelServerType};

        let urls: Vec<String> = sentinels.into_iter().map(Into::into).collect();
        urls.iter().for_each(|url| install_crypto_provider(url));
        let mut config =
            Config::from_urls(urls, service_name.to_owned(), SentinelServerType::Master);
        config.pool = self.pool_size.map(deadpool_redis::PoolConfig::new);
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| Error::from(StoreError::backend(e)))?;
        self.build_sentinel(pool)
    }

    /// Checks the settings against `backend` and makes the store.
    fn into_store(self, backend: Backend, cache: Option<Tracking>) -> Result<RedisStore, Error> {
        super::cache::check(&self, &backend)?;
        if self.timeouts.connect.is_zero() {
            return Err(ConfigError::ZeroDuration("the redis connect timeout").into());
        }
        if self.timeouts.command.is_zero() {
            return Err(ConfigError::ZeroDuration("the redis command timeout").into());
        }
        Ok(RedisStore::from_parts(backend, self, cache))
    }
}

/// rustls needs one process-wide crypto provider. With only ours (ring)
/// compiled in it would pick it by itself; when the application also compiles
/// another and has not chosen, pick ring now rather than let the first
/// `rediss://` connection panic. An application that installs its own
/// provider first keeps it.
#[cfg_attr(not(feature = "redis-tls"), allow(unused_variables))]
pub(super) fn install_crypto_provider(url: &str) {
    #[cfg(feature = "redis-tls")]
    if (url.starts_with("rediss:") || url.starts_with("valkeys:"))
        && rustls::crypto::CryptoProvider::get_default().is_none()
    {
        // Err means another thread installed one first; that one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.timeouts.connect)
            .field("command_timeout", &self.timeouts.command)
            .field("pool_size", &self.pool_size)
            .field("max_sessions_per_user", &self.max_per_user)
            .field("client_cache", &self.client_cache)
            .finish_non_exhaustive()
    }
}
