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
use sessio::store::{storage_key, Store, UserIndex};
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

// SECURITY J48: SqlStore's record size limit on PostgreSQL: a save over it
// is a 500 with no Set-Cookie, the rows are unchanged and the session goes on
// working; a save under it is stored.
#[tokio::test]
async fn records_over_the_size_limit_are_refused() {
    let server = PgServer::start();
    let (store, pool) = store(&server).await;
    let pool = &pool;
    let rows = move || async move {
        let all: Vec<String> = sessio::store::sqlx::query_scalar(
            "SELECT id_hash || ' ' || data::text || ' ' || expires::text \
             FROM sessio_sessions ORDER BY id_hash",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        all
    };
    sql_scenarios::size_limit::records_over_the_size_limit_are_refused(&store, rows).await;
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
    store.sessions_of("ada").await.unwrap();
    count("sessions_of", 1, at);
    let at = mark();
    store
        .end_session("ada", &storage_key("", &moved))
        .await
        .unwrap();
    count("end_session", 1, at);
    let at = mark();
    store.delete(&moved).await.unwrap();
    count("delete", 1, at);
    let v = store.create(&r, expires_in(60)).await.unwrap();
    on_row(&pool, EXPIRE, &v).await;
    let at = mark();
    assert_eq!(store.load(&v).await.unwrap(), None);
    count("load of an expired row", 2, at);
}

// SECURITY K56 / K57: a user's sessions through the layer on PostgreSQL.
#[tokio::test]
async fn two_logins_of_one_user_list_and_end_each_other() {
    let server = PgServer::start();
    let (store, _) = store(&server).await;
    sql_scenarios::users::two_logins_list_and_end_the_other(store).await;
}

// SECURITY K57: "end all others" racing the other session's cycle_id loop,
// on 8 connections (READ COMMITTED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_others_racing_a_cycling_session_leaves_none() {
    let server = PgServer::start();
    let (store, _) = store(&server).await;
    sql_scenarios::users::end_others_racing_a_cycling_session_leaves_none(store, 20).await;
}

// SECURITY K56: two app instances (two pools, two stores) on one database
// see each other's logins and ends.
#[tokio::test]
async fn two_instances_on_one_database_see_each_others_ends() {
    let server = PgServer::start();
    let (one, _) = store(&server).await;
    let (two, _) = store(&server).await;
    sql_scenarios::users::two_instances_see_each_others_ends(one, two).await;
}

async fn user_index_count(pool: &PgPool) -> i64 {
    sessio::store::sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'sessio_sessions_user_idx'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

// SECURITY K56: `migrate` on a table made by the previous schema (no user
// index) adds the index; its sessions are listed; a second run changes
// nothing. Listings and ends can use the index, and it holds no session id.
#[tokio::test]
async fn migrate_adds_the_user_index_to_a_table_of_the_previous_schema() {
    let server = PgServer::start();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&server.url())
        .await
        .unwrap();
    sessio::store::sqlx::raw_sql(
        "CREATE TABLE sessio_sessions (id_hash text PRIMARY KEY, data jsonb NOT NULL, \
         expires timestamptz NOT NULL); \
         CREATE INDEX sessio_sessions_expires_idx ON sessio_sessions (expires);",
    )
    .execute(&pool)
    .await
    .unwrap();
    let store = SqlStore::postgres(pool.clone());
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

    // The planner can answer a listing from the index (a tiny table would
    // be scanned, so scans are turned off for the check).
    let mut conn = pool.acquire().await.unwrap();
    sessio::store::sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan: Vec<String> = sessio::store::sqlx::query_scalar(
        "EXPLAIN SELECT id_hash FROM sessio_sessions \
         WHERE (data ->> '_user') = $1 AND expires > now()",
    )
    .bind("\"ada\"")
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert!(
        plan.iter().any(|l| l.contains("sessio_sessions_user_idx")),
        "the listing cannot use the user index: {plan:?}"
    );
    // What the index holds: the user text, beside the row's hashed key.
    let def: String = sessio::store::sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'sessio_sessions_user_idx'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(def.contains("'_user'") && !def.contains("id_hash"), "{def}");
}

// SECURITY K56: a listing shows live sessions only: an expired row is never
// listed nor ended, whatever the sweeper has done.
#[tokio::test]
async fn expired_rows_are_neither_listed_nor_ended() {
    let server = PgServer::start();
    let (store, pool) = store(&server).await;
    let bound = record(&[("_user", json!("ada"))]);
    let live = store.create(&bound, expires_in(60)).await.unwrap();
    let dead = store.create(&bound, expires_in(60)).await.unwrap();
    on_row(&pool, EXPIRE, &dead).await;
    let listed = store.sessions_of("ada").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, storage_key("", &live));
    assert!(!store
        .end_session("ada", &storage_key("", &dead))
        .await
        .unwrap());
    assert_eq!(
        rows(&pool, "default").await,
        2,
        "the expired row is the sweeper's"
    );
    assert_eq!(store.delete_expired().await.unwrap(), 1);
}

/// The statements one request ran, counted in the server's log.
async fn statements_of(
    server: &PgServer,
    app: &axum::Router,
    path: &str,
    cookie: Option<&str>,
) -> (usize, common::Reply) {
    let at = server.log().len();
    let r = common::call(app, path, cookie).await;
    std::thread::sleep(Duration::from_millis(50));
    (statements_since(server, at), r)
}

// Binding a session to a user adds no statement to a request that does not
// change the binding: a read is one statement, a write two (load, merge),
// bound or not; a login on an existing session is a load and a rotation.
#[tokio::test]
async fn binding_a_user_adds_no_statement_to_a_request() {
    use sql_scenarios::users::{app, COOKIE};
    let server = PgServer::start();
    let (store, _) = store(&server).await;
    let app = app(store);
    let (n, r) = statements_of(&server, &app, "/note?v=1", None).await;
    assert_eq!(n, 1, "anonymous first write: one insert");
    let anon = r.cookie(COOKIE).unwrap();
    let (read, _) = statements_of(&server, &app, "/whoami", Some(&anon)).await;
    let (write, _) = statements_of(&server, &app, "/note?v=2", Some(&anon)).await;
    let (login, r) = statements_of(&server, &app, "/login?user=ada&device=d", Some(&anon)).await;
    assert_eq!(login, 2, "login on a session: load, rotate");
    let bound = r.cookie(COOKIE).unwrap();
    let (bound_read, r) = statements_of(&server, &app, "/whoami", Some(&bound)).await;
    assert_eq!(r.body, "ada");
    let (bound_write, _) = statements_of(&server, &app, "/note?v=3", Some(&bound)).await;
    assert_eq!((read, write), (1, 2), "unbound read, write");
    assert_eq!(
        (bound_read, bound_write),
        (read, write),
        "bound read, write"
    );
    let (fresh_login, _) = statements_of(&server, &app, "/login?user=ada&device=e", None).await;
    assert_eq!(fresh_login, 1, "login on a fresh browser: one insert");
    let (list, r) = statements_of(&server, &app, "/list", Some(&bound)).await;
    assert_eq!(list, 2, "list: load, select");
    let other = r.body.lines().find(|l| l.ends_with(" e")).unwrap();
    let handle = other.split(' ').next().unwrap();
    let (end, r) = statements_of(&server, &app, &format!("/end?h={handle}"), Some(&bound)).await;
    assert_eq!(r.body, "true");
    assert_eq!(end, 2, "end: load, delete");
    eprintln!(
        "statements per request, bound session: read {bound_read}, write {bound_write}, \
         login {login} (fresh browser {fresh_login}), list {list}, end {end}"
    );
}

// SECURITY K57: what a listing holds, and in which order.
#[tokio::test]
async fn a_listing_holds_the_user_keys_only_oldest_first() {
    let server = PgServer::start();
    let (store, _) = store(&server).await;
    sql_scenarios::users::listing_holds_user_keys_only_oldest_first(store).await;
}
