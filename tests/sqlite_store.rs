//! SqlStore on SQLite, beyond the conformance suite (tests/conformance.rs).

mod common;
mod sql_scenarios;

use std::path::Path;

use serde_json::json;
use sessio::store::sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sessio::store::StoreError;
use sessio::store::{storage_key, Store, UserIndex};
use sessio::{ConfigError, SqlStore};
use sql_scenarios::{expires_in, record};

async fn pool(file: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true);
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .expect("sqlite pool")
}

async fn store(dir: &tempfile::TempDir) -> (SqlStore, SqlitePool) {
    let pool = pool(&dir.path().join("sessions.db")).await;
    let store = SqlStore::sqlite(pool.clone());
    store.migrate().await.expect("migrate");
    (store, pool)
}

/// Runs `sql` with the hash of session `value` bound as `?1`.
async fn on_row(pool: &SqlitePool, sql: &'static str, value: &str) {
    sqlx_query(pool, sql, &storage_key("", value)).await;
}

async fn sqlx_query(pool: &SqlitePool, sql: &'static str, bind: &str) -> u64 {
    sessio::store::sqlx::query(sql)
        .bind(bind)
        .execute(pool)
        .await
        .expect("sql")
        .rows_affected()
}

async fn rows(pool: &SqlitePool) -> i64 {
    sessio::store::sqlx::query_scalar("SELECT count(*) FROM sessio_sessions")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_on_one_session_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(&dir).await;
    sql_scenarios::concurrent_updates_lose_nothing_and_last_write_wins(store, 50).await;
}

#[tokio::test]
async fn null_values_are_kept_and_objects_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(&dir).await;
    sql_scenarios::null_values_are_kept_and_objects_replaced(store).await;
}

#[tokio::test]
async fn forced_collisions_mint_another_id() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(&dir).await;
    sql_scenarios::forced_collisions_mint_another_id(&store).await;
}

#[tokio::test]
async fn too_deep_values_are_refused_at_save() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(&dir).await;
    sql_scenarios::too_deep_values_are_refused_at_save(&store).await;
}

#[tokio::test]
async fn sweeps_delete_expired_rows_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pool) = store(&dir).await;
    let expire = |v: String| {
        let pool = pool.clone();
        async move {
            on_row(
                &pool,
                "UPDATE sessio_sessions SET expires = 0 WHERE id_hash = ?1",
                &v,
            )
            .await;
        }
    };
    sql_scenarios::sweeps_delete_expired_rows_in_batches(&store, expire).await;
}

#[tokio::test]
async fn an_expired_row_is_absent_and_deleted_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pool) = store(&dir).await;
    let v = store
        .create(&record(&[("a", json!(1))]), expires_in(60))
        .await
        .unwrap();
    on_row(
        &pool,
        "UPDATE sessio_sessions SET expires = 0 WHERE id_hash = ?1",
        &v,
    )
    .await;
    assert_eq!(rows(&pool).await, 1);
    assert_eq!(store.load(&v).await.unwrap(), None);
    assert_eq!(rows(&pool).await, 0, "the expired row was kept");
}

// SECURITY A5 / I44: the table holds hashes, never ids; a row that cannot be
// decoded is reported as unreadable (the layer then deletes it).
#[tokio::test]
async fn rows_hold_hashed_ids_and_corrupt_rows_are_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pool) = store(&dir).await;
    let v = store
        .create(&record(&[("a", json!(1))]), expires_in(60))
        .await
        .unwrap();
    let ids: Vec<String> = sessio::store::sqlx::query_scalar("SELECT id_hash FROM sessio_sessions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, [storage_key("", &v)]);
    on_row(
        &pool,
        r#"UPDATE sessio_sessions SET data = '{"a": 1}' WHERE id_hash = ?1"#,
        &v,
    )
    .await;
    assert!(matches!(
        store.load(&v).await,
        Err(StoreError::Unreadable(_))
    ));
}

#[tokio::test]
async fn sessions_survive_a_new_pool_on_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessions.db");
    let first = SqlStore::sqlite(pool(&file).await);
    first.migrate().await.unwrap();
    let v = first
        .create(&record(&[("user", json!("ada"))]), expires_in(60))
        .await
        .unwrap();
    drop(first);
    let again = SqlStore::sqlite(pool(&file).await);
    again.migrate().await.unwrap();
    assert_eq!(
        again.load(&v).await.unwrap(),
        Some(record(&[("user", json!("ada"))]))
    );
}

#[tokio::test]
async fn migrate_is_idempotent_and_table_names_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pool) = store(&dir).await;
    store.migrate().await.expect("second migrate");
    assert_eq!(
        store.schema_sql(),
        "CREATE TABLE IF NOT EXISTS \"sessio_sessions\" (\n    \
         id_hash TEXT PRIMARY KEY NOT NULL,\n    \
         data TEXT NOT NULL,\n    \
         expires INTEGER NOT NULL\n);\n\
         CREATE INDEX IF NOT EXISTS \"sessio_sessions_expires_idx\" ON \"sessio_sessions\" (expires);\n\
         CREATE INDEX IF NOT EXISTS \"sessio_sessions_user_idx\" ON \"sessio_sessions\" \
         (json_extract(data, '$._user')) WHERE json_extract(data, '$._user') IS NOT NULL;\n"
    );
    let custom = store.clone().with_table_name("main.Custom_2").unwrap();
    assert_eq!(custom.table_name(), "main.Custom_2");
    custom.migrate().await.unwrap();
    custom.migrate().await.unwrap();
    let v = custom
        .create(&record(&[("a", json!(1))]), expires_in(60))
        .await
        .unwrap();
    assert!(custom.load(&v).await.unwrap().is_some());
    assert!(store.load(&v).await.unwrap().is_none(), "tables mixed up");
    let index: i64 = sessio::store::sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'Custom_2_expires_idx'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(index, 1);
    for bad in ["", "a;drop table x", "x\"y", "a.b.c", "1a", "sessions--"] {
        match store.clone().with_table_name(bad) {
            Err(ConfigError::InvalidTableName) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let shown = format!("{store:?}");
    assert!(
        shown.contains("sqlite") && shown.contains("sessio_sessions"),
        "{shown}"
    );
}

// A database locked by another writer past the busy timeout is unavailable
// (503), not a 500, and works again once the lock is gone.
#[tokio::test]
async fn a_database_locked_past_the_busy_timeout_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessions.db");
    let (_, other) = store(&dir).await;
    let options = SqliteConnectOptions::new()
        .filename(&file)
        .busy_timeout(std::time::Duration::from_millis(200));
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    let store = SqlStore::sqlite(pool);
    let lock = other.begin_with("BEGIN EXCLUSIVE").await.unwrap();
    let got = store
        .create(&record(&[("a", json!(1))]), expires_in(60))
        .await;
    assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
    drop(lock);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(store
        .create(&record(&[("a", json!(1))]), expires_in(60))
        .await
        .is_ok());
}

// SECURITY K56 / K57: a user's sessions through the layer on SQLite.
#[tokio::test]
async fn two_logins_of_one_user_list_and_end_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(&dir).await;
    sql_scenarios::users::two_logins_list_and_end_the_other(store).await;
}

// SECURITY K57: "end all others" racing the other session's cycle_id loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_others_racing_a_cycling_session_leaves_none() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(&dir).await;
    sql_scenarios::users::end_others_racing_a_cycling_session_leaves_none(store, 10).await;
}

// SECURITY K56: two processes' pools on one database file see each other's
// logins and ends.
#[tokio::test]
async fn two_pools_on_one_file_see_each_others_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (one, _) = store(&dir).await;
    let (two, _) = store(&dir).await;
    sql_scenarios::users::two_instances_see_each_others_ends(one, two).await;
}

const PREVIOUS_SCHEMA: &str = "CREATE TABLE sessio_sessions (\
     id_hash TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, expires INTEGER NOT NULL);\
     CREATE INDEX sessio_sessions_expires_idx ON sessio_sessions (expires);";

async fn user_index_count(pool: &SqlitePool) -> i64 {
    sessio::store::sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'sessio_sessions_user_idx'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

// SECURITY K56: `migrate` on a table made by the previous schema (no user
// index) adds the index; its sessions are listed; a second run changes
// nothing. Listings go through the index, and it holds no session id.
#[tokio::test]
async fn migrate_adds_the_user_index_to_a_table_of_the_previous_schema() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir.path().join("sessions.db")).await;
    sessio::store::sqlx::raw_sql(PREVIOUS_SCHEMA)
        .execute(&pool)
        .await
        .unwrap();
    let store = SqlStore::sqlite(pool.clone());
    let bound = record(&[("_user", json!("ada")), ("_user_since", json!(1))]);
    let old = store.create(&bound, expires_in(60)).await.unwrap();
    assert_eq!(user_index_count(&pool).await, 0);

    store.migrate().await.expect("migrate");
    assert_eq!(user_index_count(&pool).await, 1);
    let listed = store.sessions_of("ada").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, storage_key("", &old));
    store.migrate().await.expect("second migrate");
    assert_eq!(user_index_count(&pool).await, 1);
    assert_eq!(store.sessions_of("ada").await.unwrap().len(), 1);

    let plan: Vec<(i64, i64, i64, String)> = sessio::store::sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT id_hash FROM sessio_sessions \
         WHERE json_extract(data, '$._user') = ?1 AND expires > ?2",
    )
    .bind("\"ada\"")
    .bind(0_i64)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        plan.iter()
            .any(|p| p.3.contains("sessio_sessions_user_idx")),
        "the listing does not use the user index: {plan:?}"
    );
}

// SECURITY K56: a listing shows live sessions only: an expired row is never
// listed nor ended, whatever the sweeper has done.
#[tokio::test]
async fn expired_rows_are_neither_listed_nor_ended() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pool) = store(&dir).await;
    let bound = record(&[("_user", json!("ada"))]);
    let live = store.create(&bound, expires_in(60)).await.unwrap();
    let dead = store.create(&bound, expires_in(60)).await.unwrap();
    on_row(
        &pool,
        "UPDATE sessio_sessions SET expires = 0 WHERE id_hash = ?1",
        &dead,
    )
    .await;
    let listed = store.sessions_of("ada").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, storage_key("", &live));
    assert!(!store
        .end_session("ada", &storage_key("", &dead))
        .await
        .unwrap());
    assert_eq!(rows(&pool).await, 2, "the expired row is the sweeper's");
    assert_eq!(store.delete_expired().await.unwrap(), 1);
}

// SECURITY K57: what a listing holds, and in which order.
#[tokio::test]
async fn a_listing_holds_the_user_keys_only_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(&dir).await;
    sql_scenarios::users::listing_holds_user_keys_only_oldest_first(store).await;
}

/// Every row of the default table, raw (hash, data, expiry), in hash order.
async fn raw_rows(pool: &SqlitePool) -> Vec<String> {
    sessio::store::sqlx::query_scalar(
        "SELECT id_hash || ' ' || data || ' ' || expires FROM sessio_sessions ORDER BY id_hash",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

// SECURITY J48: SqlStore's record size limit on SQLite, in a file and in
// memory: a save over it is a 500 with no Set-Cookie, the rows are unchanged
// and the session goes on working; a save under it is stored.
#[tokio::test]
async fn records_over_the_size_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pool) = store(&dir).await;
    let rows = || raw_rows(&pool);
    sql_scenarios::size_limit::records_over_the_size_limit_are_refused(&store, rows).await;

    let memory = SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let store = SqlStore::sqlite(memory.clone());
    store.migrate().await.unwrap();
    let rows = || raw_rows(&memory);
    sql_scenarios::size_limit::records_over_the_size_limit_are_refused(&store, rows).await;
}
