//! The PostgreSQL statements: one per operation, each one round trip.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, PgPool, Row};

use super::format::Patch;
use super::table::Table;
use super::users::UserRow;
use super::{ttl_ms, Failure, IdGenerator, Merged, CREATE_ATTEMPTS};
use crate::error::StoreError;
use crate::store::{storage_key, Deadline, Updated};
use crate::users::{META_KEY, SEEN_KEY, SINCE_KEY, USER_KEY};

/// A SQL string rendered once for the store's table.
type Sql = Arc<str>;

pub(super) struct PgBackend {
    pub(super) pool: PgPool,
    sql: Statements,
}

struct Statements {
    ddl: [String; 3],
    insert: Sql,
    load: Sql,
    delete_expired_one: Sql,
    update: Sql,
    rotate: Sql,
    touch: Sql,
    delete: Sql,
    sweep: Sql,
    sessions_of: Sql,
    end_session: Sql,
}

impl PgBackend {
    pub(super) fn new(pool: PgPool, table: &Table) -> Self {
        let t = table.quoted();
        // Expiry is `now() + ttl` on the database's clock (the TTL bound in
        // milliseconds): one clock for every application server.
        let until = |p: &str| format!("now() + {p} * interval '1 millisecond'");
        let merged =
            "(CASE WHEN $2::boolean THEN '{}'::jsonb ELSE data END - $3::text[]) || $4::jsonb";
        let sql = Statements {
            ddl: [
                format!(
                    "CREATE TABLE IF NOT EXISTS {t} (\n    \
                     id_hash text PRIMARY KEY,\n    \
                     data jsonb NOT NULL,\n    \
                     expires timestamptz NOT NULL\n)"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {t} (expires)",
                    table.quoted_index()
                ),
                // The user index is an expression index over the row's own
                // `_user` member rather than a column the store keeps in
                // step: it cannot disagree with the data, and adding it to
                // an existing table rewrites nothing. Partial, so anonymous
                // sessions cost it nothing; `user = $1` (a strict operator)
                // implies its predicate, so listings use it.
                format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {t} ((data ->> '{USER_KEY}')) \
                     WHERE (data ->> '{USER_KEY}') IS NOT NULL",
                    table.quoted_user_index()
                ),
            ],
            insert: format!(
                "INSERT INTO {t} (id_hash, data, expires) VALUES ($1, $2::jsonb, {}) \
                 ON CONFLICT (id_hash) DO NOTHING",
                until("$3::float8")
            )
            .into(),
            load: format!("SELECT data::text, expires > now() FROM {t} WHERE id_hash = $1").into(),
            delete_expired_one: format!("DELETE FROM {t} WHERE id_hash = $1 AND expires <= now()")
                .into(),
            // The row is locked and merged in `cur` (after a concurrent
            // writer commits, on its version), then either written back or,
            // when the merge left nothing, deleted: one statement, atomic.
            update: format!(
                "WITH cur AS (\
                   SELECT id_hash, {merged} AS merged FROM {t} \
                   WHERE id_hash = $1 AND expires > now() FOR UPDATE), \
                 written AS (\
                   UPDATE {t} AS s SET data = cur.merged, expires = {} FROM cur \
                   WHERE s.id_hash = cur.id_hash AND cur.merged <> '{{}}'::jsonb RETURNING 1), \
                 emptied AS (\
                   DELETE FROM {t} AS s USING cur \
                   WHERE s.id_hash = cur.id_hash AND cur.merged = '{{}}'::jsonb RETURNING 1) \
                 SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM emptied)",
                until("$5::float8")
            )
            .into(),
            // The old row is deleted only if live, and its merged data
            // inserted under the new id in the same statement; a conflict on
            // the new id fails the whole statement, so nothing is lost.
            rotate: format!(
                "WITH old AS (\
                   DELETE FROM {t} WHERE id_hash = $1 AND expires > now() \
                   RETURNING {merged} AS merged), \
                 moved AS (\
                   INSERT INTO {t} (id_hash, data, expires) \
                   SELECT $5, merged, {} FROM old WHERE merged <> '{{}}'::jsonb RETURNING 1) \
                 SELECT (SELECT count(*) FROM old), (SELECT count(*) FROM moved)",
                until("$6::float8")
            )
            .into(),
            touch: format!(
                "UPDATE {t} SET expires = {} WHERE id_hash = $1 AND expires > now()",
                until("$2::float8")
            )
            .into(),
            delete: format!("DELETE FROM {t} WHERE id_hash = $1").into(),
            // SKIP LOCKED: sweepers on several servers share the work.
            sweep: format!(
                "DELETE FROM {t} WHERE id_hash IN (SELECT id_hash FROM {t} \
                 WHERE expires <= now() ORDER BY expires LIMIT $1 FOR UPDATE SKIP LOCKED)"
            )
            .into(),
            // Live rows of one user, through the user index; only the
            // `_user…` members are read, never the rest of the data.
            sessions_of: format!(
                "SELECT id_hash, data ->> '{SINCE_KEY}', data ->> '{SEEN_KEY}', \
                 data ->> '{META_KEY}', (extract(epoch FROM expires) * 1000)::int8 \
                 FROM {t} WHERE (data ->> '{USER_KEY}') = $1 AND expires > now()"
            )
            .into(),
            end_session: format!(
                "DELETE FROM {t} WHERE id_hash = $1 AND (data ->> '{USER_KEY}') = $2 \
                 AND expires > now()"
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
        // Two servers migrating at once would race on the catalog (`IF NOT
        // EXISTS` is no lock); the key is this crate's own constant.
        sqlx::query("SELECT pg_advisory_xact_lock(7365737369)")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        for ddl in &self.sql.ddl {
            sqlx::raw_sql(AssertSqlSafe(ddl.as_str()))
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    pub(super) async fn create(
        &self,
        data: &str,
        expires: Deadline,
        ids: &IdGenerator,
    ) -> Result<String, StoreError> {
        for _ in 0..CREATE_ATTEMPTS {
            let id = ids();
            let done = sqlx::query(AssertSqlSafe(self.sql.insert.clone()))
                .bind(storage_key("", id.as_str()))
                .bind(data)
                .bind(ttl_ms(expires))
                .execute(&self.pool)
                .await
                .map_err(classify)?;
            if done.rows_affected() == 1 {
                return Ok(id.as_str().to_owned());
            }
            // SECURITY A2: never overwrite; mint another id.
            tracing::warn!("session id collision in sql store; minting another id");
        }
        Err(StoreError::backend(Failure::NoFreeId))
    }

    pub(super) async fn load(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(self.sql.load.clone()))
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        let Some(row) = row else { return Ok(None) };
        if row.try_get::<bool, _>(1).map_err(StoreError::backend)? {
            return row.try_get(0).map(Some).map_err(StoreError::backend);
        }
        sqlx::query(AssertSqlSafe(self.sql.delete_expired_one.clone()))
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(None)
    }

    pub(super) async fn update(
        &self,
        key: &str,
        patch: &Patch,
        expires: Deadline,
    ) -> Result<Merged, StoreError> {
        let row = sqlx::query(AssertSqlSafe(self.sql.update.clone()))
            .bind(key)
            .bind(patch.cleared)
            .bind(&patch.removed)
            .bind(patch.set_object()?)
            .bind(ttl_ms(expires))
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        let written: i64 = row.try_get(0).map_err(StoreError::backend)?;
        let emptied: i64 = row.try_get(1).map_err(StoreError::backend)?;
        Ok(match (written, emptied) {
            (1, 0) => Merged::Written,
            (0, 1) => Merged::Emptied,
            _ => Merged::Gone,
        })
    }

    /// A rotation racing `end_session` of its old row (the user index
    /// contract), under `READ COMMITTED`: both statements delete the old row,
    /// so both take its row lock, and the second waits for the first to
    /// commit, then re-checks the row (it is gone) and deletes nothing.
    /// - `end_session` first: the rotation's `old` finds no row, inserts
    ///   nothing, and answers `Gone`.
    /// - The rotation first (or already committed): `end_session` answers
    ///   `false`, and only after the rotation committed, whose new row is
    ///   then visible to any statement that starts later, such as the next
    ///   listing of an "end all", which ends it.
    ///
    /// Either way no live copy outlives a listing taken after `end_session`.
    /// The delete and the insert are one statement, one transaction: no
    /// moment shows neither row or both.
    pub(super) async fn rotate(
        &self,
        old: &str,
        patch: &Patch,
        expires: Deadline,
        ids: &IdGenerator,
    ) -> Result<Updated, StoreError> {
        let set = patch.set_object()?;
        for _ in 0..CREATE_ATTEMPTS {
            let id = ids();
            let row = sqlx::query(AssertSqlSafe(self.sql.rotate.clone()))
                .bind(old)
                .bind(patch.cleared)
                .bind(&patch.removed)
                .bind(&set)
                .bind(storage_key("", id.as_str()))
                .bind(ttl_ms(expires))
                .fetch_one(&self.pool)
                .await;
            let row = match row {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    // The statement failed as a whole: the old row is intact.
                    tracing::warn!("session id collision in sql store; minting another id");
                    continue;
                }
                other => other.map_err(classify)?,
            };
            let found: i64 = row.try_get(0).map_err(StoreError::backend)?;
            let moved: i64 = row.try_get(1).map_err(StoreError::backend)?;
            return Ok(match (found, moved) {
                (0, _) => Updated::Gone,
                (_, 0) => Updated::Emptied,
                _ => Updated::Written(id.as_str().to_owned()),
            });
        }
        Err(StoreError::backend(Failure::NoFreeId))
    }

    pub(super) async fn touch(&self, key: &str, expires: Deadline) -> Result<bool, StoreError> {
        let done = sqlx::query(AssertSqlSafe(self.sql.touch.clone()))
            .bind(key)
            .bind(ttl_ms(expires))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(self.sql.delete.clone()))
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    pub(super) async fn sessions_of(&self, user: &str) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(self.sql.sessions_of.clone()))
            .bind(user)
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
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete_expired(&self, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(AssertSqlSafe(self.sql.sweep.clone()))
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }
}

/// [`Error::StoreUnavailable`] for a database that cannot be reached or is
/// going away, [`Error::Store`] for everything else.
fn classify(e: sqlx::Error) -> StoreError {
    let unavailable = match &e {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 53: insufficient resources (too many
            // connections); 57P01-03: shutting down, crashed, starting up;
            // 57014: cancelled, e.g. by `statement_timeout`; 55P03: lock
            // timeout; 25006: a read-only server (a standby) refused a write.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || matches!(&*code, "57014" | "55P03" | "25006")
        }),
        e => super::unreachable(e),
    };
    if unavailable {
        StoreError::unavailable(e)
    } else {
        StoreError::backend(e)
    }
}
