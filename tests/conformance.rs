//! The store conformance suite, run against the built-in stores.

use sessio::test_util::Suite;
use sessio::MemoryStore;

#[cfg(any(feature = "redis", feature = "postgres"))]
mod common;

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    let report = Suite::new(MemoryStore::new()).run().await;
    assert_eq!(report.passed(), 21);
    assert!(report.skipped().is_empty());
}

#[tokio::test]
async fn memory_store_keeps_the_user_index_contract() {
    let report = Suite::new(MemoryStore::new()).run_user_index().await;
    assert_eq!(report.passed(), 6);
}

#[cfg(feature = "cookie-store")]
#[tokio::test]
async fn cookie_store_passes_the_conformance_suite() {
    use sessio::CookieStore;
    for store in [CookieStore::new(), CookieStore::signed_only()] {
        let report = Suite::new(store).client_side().run().await;
        // The twelve scenarios that need a server-side record are skipped;
        // counting both sides catches a scenario silently dropped.
        assert_eq!(report.passed(), 9, "{store:?}");
        assert_eq!(report.skipped().len(), 12, "{store:?}");
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_store_passes_the_conformance_suite() {
    let server = common::redis::RedisServer::start();
    let store = sessio::RedisStore::connect(&server.url()).expect("store");
    let report = Suite::new(store).run().await;
    assert_eq!(report.passed(), 21);
    assert!(report.skipped().is_empty());
}

// SECURITY K56, K57: the index contract on a single Redis.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_store_keeps_the_user_index_contract() {
    let server = common::redis::RedisServer::start();
    let store = sessio::RedisStore::connect(&server.url()).expect("store");
    let report = Suite::new(store).run_user_index().await;
    assert_eq!(report.passed(), 6);
}

// SECURITY K56, K57: the index contract on a real Redis Cluster, where a
// record and its user's index live in different slots.
#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn redis_cluster_store_keeps_the_user_index_contract() {
    let cluster = common::redis::RedisCluster::start();
    let store = sessio::RedisStore::connect_cluster(cluster.urls()).expect("store");
    let report = Suite::new(store).run_user_index().await;
    assert_eq!(report.passed(), 6);
}

#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn redis_cluster_store_passes_the_conformance_suite() {
    let cluster = common::redis::RedisCluster::start();
    let store = sessio::RedisStore::connect_cluster(cluster.urls()).expect("store");
    let report = Suite::new(store.clone()).run().await;
    assert_eq!(report.passed(), 21);
    assert!(report.skipped().is_empty());
    // The sessions spread over the masters: each key lives in its own slot.
    let holding = cluster
        .nodes()
        .iter()
        .filter(|n| n.cli(&["DBSIZE"]) != "0")
        .count();
    assert!(holding >= 2, "all sessions landed on one master");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store_passes_the_conformance_suite_on_a_file() {
    use sessio::store::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("sessions.db"))
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    let store = sessio::SqlStore::sqlite(pool);
    store.migrate().await.expect("migrate");
    let report = Suite::new(store.clone()).run().await;
    assert_eq!(report.passed(), 21);
    assert!(report.skipped().is_empty());
    // SECURITY K56 / K57: the user index contract.
    let report = Suite::new(store).run_user_index().await;
    assert_eq!(report.passed(), 6);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store_passes_the_conformance_suite_in_memory() {
    use sessio::store::sqlx::sqlite::SqlitePoolOptions;
    // One connection: each in-memory connection is a database of its own.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let store = sessio::SqlStore::sqlite(pool);
    store.migrate().await.expect("migrate");
    let report = Suite::new(store.clone()).run().await;
    assert_eq!(report.passed(), 21);
    assert!(report.skipped().is_empty());
    // SECURITY K56 / K57: the user index contract.
    let report = Suite::new(store).run_user_index().await;
    assert_eq!(report.passed(), 6);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_store_passes_the_conformance_suite() {
    let server = common::postgres::PgServer::start();
    let pool = sessio::store::sqlx::PgPool::connect(&server.url())
        .await
        .expect("pool");
    let store = sessio::SqlStore::postgres(pool);
    store.migrate().await.expect("migrate");
    let report = Suite::new(store.clone()).run().await;
    assert_eq!(report.passed(), 21);
    assert!(report.skipped().is_empty());
    // SECURITY K56 / K57: the user index contract.
    let report = Suite::new(store).run_user_index().await;
    assert_eq!(report.passed(), 6);
}
