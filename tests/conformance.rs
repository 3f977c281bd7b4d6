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
        let report = Suite::new(store).with_client_side().run().await;
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

/// A store whose rotation is not atomic with the end of a session: it takes
/// the old record out, waits, and creates the new one. The suite must catch
/// the session that survives an "end all".
#[derive(Clone)]
struct SlowRotate(MemoryStore);

mod slow_rotate {
    use std::time::Duration;

    use sessio::store::{Changes, Deadline, Listed, Record, Store, StoreError, Updated, UserIndex};

    use super::SlowRotate;

    impl Store for SlowRotate {
        async fn create(&self, r: &Record, e: Deadline) -> Result<String, StoreError> {
            self.0.create(r, e).await
        }
        async fn load(&self, v: &str) -> Result<Option<Record>, StoreError> {
            self.0.load(v).await
        }
        async fn update(
            &self,
            v: &str,
            r: &Record,
            c: &Changes,
            e: Deadline,
        ) -> Result<Updated, StoreError> {
            self.0.update(v, r, c, e).await
        }
        async fn rotate(
            &self,
            old: &str,
            r: &Record,
            c: &Changes,
            e: Deadline,
        ) -> Result<Updated, StoreError> {
            let Some(mut stored) = self.0.load(old).await? else {
                return Ok(Updated::Gone);
            };
            self.0.delete(old).await?;
            tokio::time::sleep(Duration::from_millis(5)).await;
            stored.apply(c, r);
            Ok(Updated::Written(self.0.create(&stored, e).await?))
        }
        async fn touch(&self, v: &str, e: Deadline) -> Result<bool, StoreError> {
            self.0.touch(v, e).await
        }
        async fn delete(&self, v: &str) -> Result<(), StoreError> {
            self.0.delete(v).await
        }
    }

    impl UserIndex for SlowRotate {
        async fn sessions_of(&self, user: &str) -> Result<Vec<Listed>, StoreError> {
            self.0.sessions_of(user).await
        }
        async fn end_session(&self, user: &str, handle: &str) -> Result<bool, StoreError> {
            self.0.end_session(user, handle).await
        }
    }
}

// SECURITY K57
#[tokio::test]
async fn the_user_index_suite_catches_a_rotation_that_outlives_an_end() {
    let run = tokio::spawn(Suite::new(SlowRotate(MemoryStore::new())).run_user_index());
    let err = run.await.expect_err("a racy rotation passed the suite");
    let msg = err.into_panic();
    let msg = msg
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("survived"), "failed for another reason: {msg}");
}
