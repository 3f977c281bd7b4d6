//! [`SqlStore`]: sessions in PostgreSQL or SQLite, over the application's
//! sqlx pool.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{storage_key, Changes, Deadline, Record, Store, Updated};
use crate::error::{ConfigError, StoreError};
use crate::id::{self, Id};

mod format;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod sweep;
mod table;

use format::Patch;
pub use sweep::Sweeper;
use table::Table;

/// The table a [`SqlStore`] uses unless told otherwise: `sessio_sessions`.
pub const DEFAULT_TABLE_NAME: &str = "sessio_sessions";

/// How many expired rows one sweep deletes at most, by default: 1,000.
pub const DEFAULT_SWEEP_BATCH: u32 = 1_000;

/// How many fresh ids `create` and `rotate` try before giving up; with
/// 128-bit random ids a second attempt already means something is wrong.
const CREATE_ATTEMPTS: usize = 8;

/// The longest TTL written: 100 years, far past any session's, and within
/// every database's range of timestamps and intervals.
const MAX_TTL_MS: i64 = 100 * 366 * 24 * 60 * 60 * 1000;

use crate::id::IdGenerator;

#[doc = include_str!("doc.md")]
#[derive(Clone)]
pub struct SqlStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    table: Table,
    sweep_batch: u32,
    ids: Arc<IdGenerator>,
    max_record: Option<usize>,
}

enum Backend {
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgBackend),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqliteBackend),
}

/// Runs `$call` on whichever backend the store has.
macro_rules! on_backend {
    ($store:expr, $b:ident => $call:expr) => {
        match &$store.inner.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres($b) => $call,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite($b) => $call,
        }
    };
}

// After `on_backend!`, which it uses.
mod users;

/// What a per-key merge did to the stored row.
enum Merged {
    Written,
    Emptied,
    Gone,
}

impl SqlStore {
    /// A store in PostgreSQL over the application's `pool`, in the table
    /// [`DEFAULT_TABLE_NAME`]. Nothing is sent until the first request (or
    /// [`migrate`](Self::migrate)).
    ///
    /// ```no_run
    /// use sessio::store::sqlx::postgres::PgPoolOptions;
    /// use sessio::{Key, SessionLayer, SqlStore};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = PgPoolOptions::new()
    ///     .max_connections(10)
    ///     .acquire_timeout(std::time::Duration::from_secs(1))
    ///     .connect_lazy("postgres://app@localhost/app")?;
    /// let store = SqlStore::postgres(pool).with_table_name("auth.sessions")?;
    /// store.migrate().await?; // or run `store.schema_sql()` in your migrations
    /// let _sweeper = store.spawn_sweeper(std::time::Duration::from_secs(300));
    /// let layer = SessionLayer::new(store, Key::generate());
    /// # let _ = layer;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn postgres(pool: sqlx::PgPool) -> Self {
        Self::build(Table::default_table(), |t| {
            Backend::Postgres(postgres::PgBackend::new(pool, t))
        })
    }

    /// A store in SQLite over the application's `pool`, in the table
    /// [`DEFAULT_TABLE_NAME`].
    ///
    /// An in-memory database (`sqlite::memory:`) is one database per
    /// connection, gone when the connection closes: give such a pool
    /// `max_connections(1)`, `idle_timeout(None)` and `max_lifetime(None)`
    /// (or name a shared cache), or sessions vanish or differ between
    /// connections.
    ///
    /// ```
    /// use sessio::store::sqlx::sqlite::SqlitePoolOptions;
    /// use sessio::{Key, SessionLayer, SqlStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A file keeps sessions across restarts: "sqlite://sessions.db?mode=rwc".
    /// let pool = SqlitePoolOptions::new()
    ///     .max_connections(1)
    ///     .idle_timeout(None)
    ///     .max_lifetime(None)
    ///     .connect("sqlite::memory:")
    ///     .await?;
    /// let store = SqlStore::sqlite(pool);
    /// store.migrate().await?;
    /// assert_eq!(store.table_name(), "sessio_sessions");
    /// let layer = SessionLayer::new(store, Key::generate());
    /// # let _ = layer;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub fn sqlite(pool: sqlx::SqlitePool) -> Self {
        Self::build(Table::default_table(), |t| {
            Backend::Sqlite(sqlite::SqliteBackend::new(pool, t))
        })
    }

    fn build(table: Table, backend: impl FnOnce(&Table) -> Backend) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend: backend(&table),
                table,
                sweep_batch: DEFAULT_SWEEP_BATCH,
                ids: Arc::new(Id::generate),
                max_record: None,
            }),
        }
    }

    /// Rebuilds the store with a change to its settings, keeping the pool.
    fn with(
        self,
        table: Table,
        sweep_batch: u32,
        ids: Arc<IdGenerator>,
        max_record: Option<usize>,
    ) -> Self {
        let backend = match &self.inner.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(b) => {
                Backend::Postgres(postgres::PgBackend::new(b.pool.clone(), &table))
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(b) => {
                Backend::Sqlite(sqlite::SqliteBackend::new(b.pool.clone(), &table))
            }
        };
        Self {
            inner: Arc::new(Inner {
                backend,
                table,
                sweep_batch,
                ids,
                max_record,
            }),
        }
    }

    /// Uses the table `name` (default [`DEFAULT_TABLE_NAME`]): `table` or
    /// `schema.table` (on SQLite the schema is an attached database's name),
    /// each part ASCII letters, digits and `_`, not starting with a digit, at
    /// most 48 long. Names are quoted in SQL, so their case is kept. The
    /// schema itself is not created.
    ///
    /// # Errors
    ///
    /// Anything else fails with [`ConfigError::InvalidTableName`](crate::ConfigError::InvalidTableName):
    /// the name is written into SQL, so nothing that could carry SQL is
    /// accepted.
    pub fn with_table_name(self, name: &str) -> Result<Self, ConfigError> {
        let table = Table::parse(name)?;
        let i = &self.inner;
        let (batch, ids, max) = (i.sweep_batch, i.ids.clone(), i.max_record);
        Ok(self.with(table, batch, ids, max))
    }

    /// The most expired rows one sweep ([`delete_expired`](Self::delete_expired),
    /// each tick of [`spawn_sweeper`](Self::spawn_sweeper)) deletes, so a
    /// sweep never holds the table for long. Default [`DEFAULT_SWEEP_BATCH`];
    /// at least 1.
    #[must_use]
    pub fn with_sweep_batch(self, rows: u32) -> Self {
        let i = &self.inner;
        let (table, ids, max) = (i.table.clone(), i.ids.clone(), i.max_record);
        self.with(table, rows.max(1), ids, max)
    }

    /// The largest record a save may write, in bytes of its JSON (as
    /// gorilla's `MaxLength`, and measured as the memory and Redis stores
    /// measure it). A create, update or rotation whose copy of the session is
    /// larger fails with [`StoreError::TooLarge`] before any statement is
    /// sent, so the stored row stays as it was; the layer answers 500
    /// without a `Set-Cookie`. Default none.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sessio::store::{Deadline, Record, Store, StoreError};
    /// use sessio::SqlStore;
    ///
    /// # let pool = sessio::store::sqlx::sqlite::SqlitePoolOptions::new().max_connections(1)
    /// #     .idle_timeout(None).max_lifetime(None).connect("sqlite::memory:").await?;
    /// let store = SqlStore::sqlite(pool).with_max_record_size(16 * 1024);
    /// # store.migrate().await?;
    /// # let ttl = std::time::Duration::from_secs(60);
    /// # let expires = Deadline::new(std::time::SystemTime::now() + ttl, ttl);
    /// let mut big = Record::new();
    /// big.insert("notes", "x".repeat(20_000).into());
    /// let refused = store.create(&big, expires).await;
    /// assert!(matches!(refused, Err(StoreError::TooLarge { limit: 16384, .. })));
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sqlite"))]
    /// # fn main() {}
    /// ```
    #[must_use]
    pub fn with_max_record_size(self, bytes: usize) -> Self {
        let i = &self.inner;
        let (table, batch, ids) = (i.table.clone(), i.sweep_batch, i.ids.clone());
        self.with(table, batch, ids, Some(bytes))
    }

    /// Replaces the id generator. Meant for tests that force id collisions;
    /// production code keeps the default CSPRNG ids.
    #[cfg(any(test, feature = "test-util"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    #[must_use]
    pub fn with_id_generator(self, ids: impl Fn() -> Id + Send + Sync + 'static) -> Self {
        let i = &self.inner;
        let (table, batch, max) = (i.table.clone(), i.sweep_batch, i.max_record);
        self.with(table, batch, Arc::new(ids), max)
    }

    /// The session table's name, as given.
    pub fn table_name(&self) -> &str {
        self.inner.table.name()
    }

    /// The most rows one sweep deletes.
    pub fn sweep_batch(&self) -> u32 {
        self.inner.sweep_batch
    }

    /// The largest record a save may write, in bytes of JSON; `None` (the
    /// default) for no limit.
    pub fn max_record_size(&self) -> Option<usize> {
        self.inner.max_record
    }

    /// The SQL [`migrate`](Self::migrate) runs, for teams that run their own
    /// migrations: the table, its expiry index and its user index
    /// ([`UserIndex`](crate::store::UserIndex)), each `IF NOT EXISTS`, each
    /// ended by `;` and a newline.
    pub fn schema_sql(&self) -> String {
        let ddl = on_backend!(self, b => b.ddl());
        ddl.iter().map(|d| format!("{d};\n")).collect()
    }

    /// Creates the table and its indexes if they do not exist; on a table
    /// made by an earlier version, adds the indexes it lacks (the user
    /// index). Safe to run on every start, from several servers at once (on
    /// PostgreSQL an advisory lock keeps them from racing on the catalog).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the database cannot be reached (a
    /// refused connection, a pool timeout, a shutting-down server), else
    /// [`StoreError::Backend`] (e.g. no right to create the table; on
    /// SQLite, an existing row whose data is not valid JSON, as the user
    /// index is built from it).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        on_backend!(self, b => b.migrate().await)
    }

    /// Deletes up to [`sweep_batch`](Self::sweep_batch) expired rows, oldest
    /// first, and answers how many went. Reads never return an expired row
    /// (and delete the one they find); this keeps the table from growing
    /// with sessions nobody comes back for.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the database cannot be reached, else
    /// [`StoreError::Backend`]; no row is deleted then.
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        let batch = self.inner.sweep_batch;
        on_backend!(self, b => b.delete_expired(batch).await)
    }

    /// Starts a task that calls [`delete_expired`](Self::delete_expired) now
    /// and then every `every`; a failed sweep is logged (WARN) and retried
    /// at the next tick. The task stops when the returned [`Sweeper`] is
    /// dropped. Each server may run one: on PostgreSQL concurrent sweeps
    /// skip each other's rows.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn spawn_sweeper(&self, every: Duration) -> Sweeper {
        Sweeper::spawn(self.clone(), every)
    }

    /// SECURITY J48: the request's copy of the record within the size
    /// limit, checked before any statement, so nothing is written.
    fn check_size(&self, record: &Record) -> Result<(), StoreError> {
        record.check_size(self.inner.max_record)
    }

    fn kind(&self) -> &'static str {
        match &self.inner.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => "sqlite",
        }
    }
}

impl Store for SqlStore {
    async fn create(&self, record: &Record, expires: Deadline) -> Result<String, StoreError> {
        let data = format::encode(record)?;
        self.check_size(record)?;
        let ids = &*self.inner.ids;
        on_backend!(self, b => b.create(&data, expires, ids).await)
    }

    async fn load(&self, value: &str) -> Result<Option<Record>, StoreError> {
        // SECURITY A4: malformed values never reach the database.
        if !id::is_valid(value) {
            return Ok(None);
        }
        let key = storage_key("", value);
        let data = on_backend!(self, b => b.load(&key).await)?;
        // SECURITY I44: ours, but unreadable: the layer starts afresh.
        data.map(|d| format::decode(&d)).transpose()
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
        let patch = Patch::new(record, changes)?;
        self.check_size(record)?;
        let key = storage_key("", value);
        let merged = on_backend!(self, b => b.update(&key, &patch, expires).await)?;
        Ok(match merged {
            Merged::Written => Updated::Written(value.to_owned()),
            // SECURITY I38: the merged record was empty and is deleted.
            Merged::Emptied => Updated::Emptied,
            // SECURITY F28: deleted or expired; nothing was written.
            Merged::Gone => Updated::Gone,
        })
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
        let patch = Patch::new(record, changes)?;
        self.check_size(record)?;
        let key = storage_key("", old);
        let ids = &*self.inner.ids;
        // SECURITY I39: the move happens only if the old row is live, atomically.
        on_backend!(self, b => b.rotate(&key, &patch, expires, ids).await)
    }

    async fn touch(&self, value: &str, expires: Deadline) -> Result<bool, StoreError> {
        if !id::is_valid(value) {
            return Ok(false);
        }
        let key = storage_key("", value);
        on_backend!(self, b => b.touch(&key, expires).await)
    }

    async fn delete(&self, value: &str) -> Result<(), StoreError> {
        if !id::is_valid(value) {
            return Ok(());
        }
        let key = storage_key("", value);
        on_backend!(self, b => b.delete(&key).await)
    }
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's own Debug shows its connect options, password included.
        let (size, idle) = on_backend!(self, b => (b.pool.size(), b.pool.num_idle()));
        f.debug_struct("SqlStore")
            .field("backend", &self.kind())
            .field("table", &self.table_name())
            .field("sweep_batch", &self.inner.sweep_batch)
            .field("max_record_size", &self.inner.max_record)
            .field("pool_size", &size)
            .field("pool_idle", &idle)
            .finish_non_exhaustive()
    }
}

/// The TTL to write, in milliseconds.
fn ttl_ms(expires: Deadline) -> i64 {
    i64::try_from(expires.ttl().as_millis())
        .unwrap_or(i64::MAX)
        .min(MAX_TTL_MS)
}

/// `true` for the driver-level errors that mean the database cannot be
/// reached now: I/O (refused, reset, closed), TLS, the pool timing out or
/// closed, SQLite's worker thread gone.
fn unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// What went wrong inside the store, kept as the `source()` of [`Error`].
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("unreadable session record in the sql store")]
    Corrupt,
    #[error("could not mint an unused session id")]
    NoFreeId,
}
