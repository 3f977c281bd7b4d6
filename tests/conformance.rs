//! The store conformance suite, run against the built-in stores.

use sessio::test_util::Suite;
use sessio::MemoryStore;

#[cfg(feature = "redis")]
mod common;

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    let report = Suite::new(MemoryStore::new()).run().await;
    assert_eq!(report.passed(), 21);
    assert!(report.skipped().is_empty());
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
