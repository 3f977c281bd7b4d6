//! The SQLite statements. Expiry is unix milliseconds on the application's
//! clock (SQLite runs in the application's process).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Row, Sqlite, SqlitePool};

use super::format::Patch;
use super::table::Table;
use super::users::UserRow;
use super::{ttl_ms, Failure, IdGenerator, Merged, CREATE_ATTEMPTS};
use crate::error::StoreError;
use crate::store::{storage_key, Deadline, Updated};
use crate::users::{META_KEY, SEEN_KEY, SINCE_KEY, USER_KEY};

type Sql = Arc<str>;

pub(super) struct SqliteBackend {
    pub(super) pool: SqlitePool,
    sql: Statements,
}

struct Statements {
    ddl: [String; 3],
    insert: Sql,
    load: Sql,
    delete_expired_one: Sql,
    update: Sql,
    take: Sql,
    touch: Sql,
    delete: Sql,
    sweep: Sql,
    sessions_of: Sql,
    end_session: Sql,
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn until(expires: Deadline) -> i64 {
    now_ms().saturating_add(ttl_ms(expires))
}

impl SqliteBackend {
    pub(super) fn new(pool: SqlitePool, table: &Table) -> Self {
        let t = table.quoted();
        // `json_patch` (RFC 7396) sets every key of the patch and removes
        // those whose patch value is null; stored values are never null.
        let merged = "json_patch(CASE WHEN ?2 THEN '{}' ELSE data END, ?3)";
        let user = format!("json_extract(data, '$.{USER_KEY}')");
        let member = |key: &str| format!("json_extract(data, '$.{key}')");
        let sql = Statements {
            ddl: [
                format!(
                    "CREATE TABLE IF NOT EXISTS {t} (\n    \
                     id_hash TEXT PRIMARY KEY NOT NULL,\n    \
                     data TEXT NOT NULL,\n    \
                     expires INTEGER NOT NULL\n)"
                ),
                // SQLite names the index in the table's schema, and the table
                // in `ON` without one.
                format!(
                    "CREATE INDEX IF NOT EXISTS {}{} ON {} (expires)",
                    table.quoted_schema_prefix(),
                    table.quoted_index(),
                    table.quoted_unqualified()
                ),
                // An expression index over the row's own `_user` member, not
                // a generated column: it cannot disagree with the data, and an
                // existing table gains it without `ALTER TABLE` (SQLite can
                // add only virtual generated columns, which would be indexed
                // the same way). Partial, so anonymous sessions cost it
                // nothing; `user = ?` implies its predicate.
                format!(
                    "CREATE INDEX IF NOT EXISTS {}{} ON {} ({user}) WHERE {user} IS NOT NULL",
                    table.quoted_schema_prefix(),
                    table.quoted_user_index(),
                    table.quoted_unqualified()
                ),
            ],
            insert: format!(
                "INSERT INTO {t} (id_hash, data, expires) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id_hash) DO NOTHING"
            )
            .into(),
            load: format!("SELECT data, expires > ?2 FROM {t} WHERE id_hash = ?1").into(),
            delete_expired_one: format!("DELETE FROM {t} WHERE id_hash = ?1 AND expires <= ?2")
                .into(),
            update: format!(
                "UPDATE {t} SET data = {merged}, expires = ?4 \
                 WHERE id_hash = ?1 AND expires > ?5 RETURNING data = '{{}}'"
            )
            .into(),
            take: format!("DELETE FROM {t} WHERE id_hash = ?1 AND expires > ?4 RETURNING {merged}")
                .into(),
            touch: format!("UPDATE {t} SET expires = ?2 WHERE id_hash = ?1 AND expires > ?3")
                .into(),
            delete: format!("DELETE FROM {t} WHERE id_hash = ?1").into(),
            sweep: format!(
                "DELETE FROM {t} WHERE id_hash IN (SELECT id_hash FROM {t} \
                 WHERE expires <= ?1 ORDER BY expires LIMIT ?2)"
            )
            .into(),
            sessions_of: format!(
                "SELECT id_hash, {}, {}, {}, expires FROM {t} WHERE {user} = ?1 AND expires > ?2",
                member(SINCE_KEY),
                member(SEEN_KEY),
                member(META_KEY),
            )
            .into(),
            end_session: format!(
                "DELETE FROM {t} WHERE id_hash = ?1 AND {user} = ?2 AND expires > ?3"
            )
            .into(),
        };
        Self { pool, sql }
    }

    pub(super) fn ddl(&self) -> &[String; 3] {
        &self.sql.ddl
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        for ddl in &self.sql.ddl {
            sqlx::raw_sql(AssertSqlSafe(ddl.as_str()))
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn insert<'c, E>(
        &self,
        e: E,
        key: &str,
        data: &str,
        until: i64,
    ) -> Result<bool, StoreError>
    where
        E: sqlx::Executor<'c, Database = Sqlite>,
    {
        let done = sqlx::query(AssertSqlSafe(self.sql.insert.clone()))
            .bind(key)
            .bind(data)
            .bind(until)
            .execute(e)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn create(
        &self,
        data: &str,
        expires: Deadline,
        ids: &IdGenerator,
    ) -> Result<String, StoreError> {
        for _ in 0..CREATE_ATTEMPTS {
            let id = ids();
            let key = storage_key("", id.as_str());
            if self.insert(&self.pool, &key, data, until(expires)).await? {
                return Ok(id.as_str().to_owned());
            }
            // SECURITY A2: never overwrite; mint another id.
            tracing::warn!("session id collision in sql store; minting another id");
        }
        Err(StoreError::backend(Failure::NoFreeId))
    }

    pub(super) async fn load(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = now_ms();
        let row = sqlx::query(AssertSqlSafe(self.sql.load.clone()))
            .bind(key)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        let Some(row) = row else { return Ok(None) };
        if row.try_get::<bool, _>(1).map_err(StoreError::backend)? {
            return row.try_get(0).map(Some).map_err(StoreError::backend);
        }
        sqlx::query(AssertSqlSafe(self.sql.delete_expired_one.clone()))
            .bind(key)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(None)
    }

    async fn merge<'c, E>(
        &self,
        e: E,
        key: &str,
        patch: &str,
        p: &Patch,
        exp: Deadline,
    ) -> Result<Option<bool>, StoreError>
    where
        E: sqlx::Executor<'c, Database = Sqlite>,
    {
        let row = sqlx::query(AssertSqlSafe(self.sql.update.clone()))
            .bind(key)
            .bind(p.cleared)
            .bind(patch)
            .bind(until(exp))
            .bind(now_ms())
            .fetch_optional(e)
            .await
            .map_err(classify)?;
        row.map(|r| r.try_get::<bool, _>(0).map_err(StoreError::backend))
            .transpose()
    }

    pub(super) async fn update(
        &self,
        key: &str,
        patch: &Patch,
        expires: Deadline,
    ) -> Result<Merged, StoreError> {
        let text = patch.merge_patch()?;
        if patch.sets_a_key() {
            // The merged record keeps at least that key: one statement.
            return Ok(
                match self.merge(&self.pool, key, &text, patch, expires).await? {
                    Some(_) => Merged::Written,
                    None => Merged::Gone,
                },
            );
        }
        // It may come out empty: merge and delete in one transaction, which
        // takes the write lock first so nothing slips in between.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)?;
        let merged = match self.merge(&mut *tx, key, &text, patch, expires).await? {
            None => return Ok(Merged::Gone),
            Some(false) => Merged::Written,
            Some(true) => {
                self.delete_on(&mut *tx, key).await?;
                Merged::Emptied
            }
        };
        tx.commit().await.map_err(classify)?;
        Ok(merged)
    }

    /// Takes the old row out (only if live) and inserts its merged data under
    /// a new id, in one transaction.
    ///
    /// A rotation racing `end_session` of its old row (the user index
    /// contract): SQLite has one writer at a time, and `BEGIN IMMEDIATE`
    /// takes the write lock before the rotation reads the old row, so the
    /// take and the insert run with no write in between, and `end_session`
    /// (one `DELETE`) runs wholly before or after them. Before: the take
    /// finds no row and the rotation answers `Gone`. After: `end_session`
    /// finds no old row, and the new row is committed, so the next listing
    /// (which starts after `end_session` returned) shows it.
    pub(super) async fn rotate(
        &self,
        old: &str,
        patch: &Patch,
        expires: Deadline,
        ids: &IdGenerator,
    ) -> Result<Updated, StoreError> {
        let text = patch.merge_patch()?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)?;
        let row = sqlx::query(AssertSqlSafe(self.sql.take.clone()))
            .bind(old)
            .bind(patch.cleared)
            .bind(&text)
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        let Some(row) = row else {
            return Ok(Updated::Gone);
        };
        let merged: String = row.try_get(0).map_err(StoreError::backend)?;
        if merged == "{}" {
            tx.commit().await.map_err(classify)?;
            return Ok(Updated::Emptied);
        }
        for _ in 0..CREATE_ATTEMPTS {
            let id = ids();
            let key = storage_key("", id.as_str());
            if self.insert(&mut *tx, &key, &merged, until(expires)).await? {
                tx.commit().await.map_err(classify)?;
                return Ok(Updated::Written(id.as_str().to_owned()));
            }
            tracing::warn!("session id collision in sql store; minting another id");
        }
        // Dropping the transaction rolls it back: the old row stays.
        Err(StoreError::backend(Failure::NoFreeId))
    }

    pub(super) async fn touch(&self, key: &str, expires: Deadline) -> Result<bool, StoreError> {
        let done = sqlx::query(AssertSqlSafe(self.sql.touch.clone()))
            .bind(key)
            .bind(until(expires))
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_on<'c, E>(&self, e: E, key: &str) -> Result<(), StoreError>
    where
        E: sqlx::Executor<'c, Database = Sqlite>,
    {
        sqlx::query(AssertSqlSafe(self.sql.delete.clone()))
            .bind(key)
            .execute(e)
            .await
            .map_err(classify)?;
        Ok(())
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.delete_on(&self.pool, key).await
    }

    pub(super) async fn sessions_of(&self, user: &str) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(self.sql.sessions_of.clone()))
            .bind(user)
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(UserRow {
                    id_hash: r.try_get(0)?,
                    since: r.try_get(1)?,
                    seen: r.try_get(2)?,
                    meta: r.try_get(3)?,
                    expires_ms: r.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::backend)
    }

    pub(super) async fn end_session(&self, handle: &str, user: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(AssertSqlSafe(self.sql.end_session.clone()))
            .bind(handle)
            .bind(user)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete_expired(&self, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(AssertSqlSafe(self.sql.sweep.clone()))
            .bind(now_ms())
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }
}

/// [`Error::StoreUnavailable`] for a database that cannot be opened or stays
/// locked past the busy timeout, [`Error::Store`] for everything else.
fn classify(e: sqlx::Error) -> StoreError {
    const BUSY: i64 = 5;
    const LOCKED: i64 = 6;
    const CANTOPEN: i64 = 14;
    let unavailable = match &e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            // The primary result code is the low byte of the extended one.
            .is_some_and(|code| matches!(code & 0xff, BUSY | LOCKED | CANTOPEN)),
        e => super::unreachable(e),
    };
    if unavailable {
        StoreError::unavailable(e)
    } else {
        StoreError::backend(e)
    }
}
