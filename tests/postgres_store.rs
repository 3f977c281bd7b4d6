//! SqlStore on a real PostgreSQL that each test starts (tests/common/postgres.rs),
//! beyond the conformance suite (tests/conformance.rs).

mod common;
mod sql_scenarios;

use std::time::Duration;

use common::postgres::PgServer;
use serde_json::json;
use sessio::store::sqlx::postgres::PgPoolOptions;
use sessio::store::sqlx::PgPool;
use sessio::store::StoreError;
use sessio::store::{storage_key, Store};
use sessio::{ConfigError, SqlStore};
use sql_scenarios::{expires_in, record};

async fn store(server: &PgServer) -> (SqlStore, PgPool) {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&server.url())
        .await
        .expect("postgres pool");
    let store = SqlStore::postgres(pool.clone());
    store.migrate().await.expect("migrate");
    (store, pool)
}

/// Runs `sql` with the hash of session `value` bound as `$1`.
async fn on_row(pool: &PgPool, sql: &'static str, value: &str) {
    sessio::store::sqlx::query(sql)
        .bind(storage_key("", value))
        .execute(pool)
        .await
        .expect("sql");
}

async fn rows(pool: &PgPool, table: &'static str) -> i64 {
    let sql = match table {
        "default" => "SELECT count(*) FROM sessio_sessions",
        _ => "SELECT count(*) FROM auth.\"Sessions\"",
    };
    sessio::store::sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap()
}

const EXPIRE: &str =
    "UPDATE sessio_sessions SET expires = now() - interval '1 second' WHERE id_hash = $1";

// SECURITY F29: per-key merges under real concurrency (8 connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_on_one_session_lose_nothing() {
    let server = PgServer::start();
    let (store, _) = store(&server).await;
    sql_scenarios::concurrent_updates_lose_nothing_and_last_write_wins(store, 64).await;
}

#[tokio::test]
async fn null_values_are_kept_and_objects_replaced() {
    let server = PgServer::start();
    let (store, _) = store(&server).await;
    sql_scenarios::null_values_are_kept_and_objects_replaced(store.clone()).await;
    sql_scenarios::forced_collisions_mint_another_id(&store).await;
    sql_scenarios::too_deep_values_are_refused_at_save(&store).await;
}

#[tokio::test]
async fn expired_rows_are_absent_deleted_on_read_and_swept() {
    let server = PgServer::start();
    let (store, pool) = store(&server).await;
    let v = store
        .create(&record(&[("a", json!(1))]), expires_in(60))
        .await
        .unwrap();
    on_row(&pool, EXPIRE, &v).await;
    assert_eq!(rows(&pool, "default").await, 1);
    assert_eq!(store.load(&v).await.unwrap(), None);
    assert_eq!(rows(&pool, "default").await, 0, "the expired row was kept");

    let expire = |v: String| {
        let pool = pool.clone();
        async move { on_row(&pool, EXPIRE, &v).await }
    };
    sql_scenarios::sweeps_delete_expired_rows_in_batches(&store, expire).await;
}

// SECURITY A5 / I44: the table holds hashes, never ids; a row that cannot be
// decoded is reported as unreadable (the layer then deletes it).
#[tokio::test]
async fn rows_hold_hashed_ids_and_corrupt_rows_are_unreadable() {
    let server = PgServer::start();
    let (store, pool) = store(&server).await;
    let v = store
        .create(
            &record(&[("a", json!(1)), ("\0k", json!("\0"))]),
            expires_in(60),
        )
        .await
        .unwrap();
    let (id, data): (String, String) =
        sessio::store::sqlx::query_as("SELECT id_hash, data::text FROM sessio_sessions")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(id, storage_key("", &v));
    assert!(!data.contains(&v));
    // Values are readable in SQL as documented.
    let a: String = sessio::store::sqlx::query_scalar(
        "SELECT ((data ->> 'a')::jsonb)::text FROM sessio_sessions",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(a, "1");
    on_row(
        &pool,
        r#"UPDATE sessio_sessions SET data = '{"a": 1}' WHERE id_hash = $1"#,
        &v,
    )
    .await;
    assert!(matches!(
        store.load(&v).await,
        Err(StoreError::Unreadable(_))
    ));
}

#[tokio::test]
async fn migrate_is_idempotent_and_table_names_are_validated() {
    let server = PgServer::start();
    let (store, pool) = store(&server).await;
    assert_eq!(
        store.schema_sql(),
        "CREATE TABLE IF NOT EXISTS \"sessio_sessions\" (\n    \
         id_hash text PRIMARY KEY,\n    \
         data jsonb NOT NULL,\n    \
         expires timestamptz NOT NULL\n);\n\
         CREATE INDEX IF NOT EXISTS \"sessio_sessions_expires_idx\" ON \"sessio_sessions\" (expires);\n\
         CREATE INDEX IF NOT EXISTS \"sessio_sessions_user_idx\" ON \"sessio_sessions\" \
         ((data ->> '_user')) WHERE (data ->> '_user') IS NOT NULL;\n"
    );
    // Several servers starting at once.
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().expect("concurrent migrate");
    }
    sessio::store::sqlx::query("CREATE SCHEMA auth")
        .execute(&pool)
        .await
        .unwrap();
    let custom = store.clone().with_table_name("auth.Sessions").unwrap();
    custom.migrate().await.unwrap();
    custom.migrate().await.unwrap();
    let v = custom
        .create(&record(&[("a", json!(1))]), expires_in(60))
        .await
        .unwrap();
    assert!(custom.load(&v).await.unwrap().is_some());
    assert!(store.load(&v).await.unwrap().is_none(), "tables mixed up");
    assert_eq!(rows(&pool, "custom").await, 1);
    let index: i64 = sessio::store::sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'auth' AND indexname = 'Sessions_expires_idx'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(index, 1);
    for bad in ["", "a;drop table x", "x\"y", "a.b.c", "1a", "s'--"] {
        match store.clone().with_table_name(bad) {
            Err(ConfigError::InvalidTableName) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let shown = format!("{store:?}");
    assert!(
        shown.contains("postgres") && !shown.contains("127.0.0.1"),
        "{shown}"
    );
}

/// The statements the server ran since `from` (the length of the log then):
/// `log_statement=all` logs each execution once, naming the table.
fn statements_since(server: &PgServer, from: usize) -> usize {
    server.log()[from..]
        .lines()
        .filter(|l| l.contains("LOG:") && l.contains("sessio_sessions"))
        .count()
}

// The store docs promise one statement per operation (load finding an
// expired row: two). Counted in the server's statement log.
#[tokio::test]
async fn every_operation_is_one_statement() {
    let server = PgServer::start();
    let (store, pool) = store(&server).await;
    let c = sessio::store::Changes::default();
    let r = record(&[("a", json!(1))]);
    let count = |what: &str, expected: usize, from: usize| {
        // The log is written as statements run; give it a moment to land.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(statements_since(&server, from), expected, "{what}");
    };
    let mark = || server.log().len();

    let at = mark();
    let v = store.create(&r, expires_in(60)).await.unwrap();
    count("create", 1, at);
    let at = mark();
    store.load(&v).await.unwrap();
    count("load", 1, at);
    let at = mark();
    store.update(&v, &r, &c, expires_in(60)).await.unwrap();
    count("update", 1, at);
    let at = mark();
    store.touch(&v, expires_in(60)).await.unwrap();
    count("touch", 1, at);
    let at = mark();
    let moved = match store.rotate(&v, &r, &c, expires_in(60)).await.unwrap() {
        sessio::store::Updated::Written(moved) => moved,
        other => panic!("rotate answered {other:?}"),
    };
    count("rotate", 1, at);
    let at = mark();
    store.delete(&moved).await.unwrap();
    count("delete", 1, at);
    let v = store.create(&r, expires_in(60)).await.unwrap();
    on_row(&pool, EXPIRE, &v).await;
    let at = mark();
    assert_eq!(store.load(&v).await.unwrap(), None);
    count("load of an expired row", 2, at);
}
