//! The `custom_store` example's SQLite store passes the public conformance
//! suite, as any user's store can be checked.

#[allow(dead_code)]
#[path = "../examples/custom_store.rs"]
mod custom_store;

use custom_store::SqliteStore;
use sessio::test_util::Suite;

#[tokio::test]
async fn the_sqlite_store_of_the_example_passes_the_conformance_suite() {
    let store = SqliteStore::open(":memory:").expect("an in-memory database");
    let report = Suite::new(store).run().await;
    assert!(report.skipped().is_empty(), "{:?}", report.skipped());
    assert!(
        report.passed() >= 16,
        "only {} scenarios ran",
        report.passed()
    );
}

#[tokio::test]
async fn the_sqlite_store_keeps_sessions_in_a_file_across_reopening() {
    use sessio::store::{Deadline, Record, Store};
    use std::time::{Duration, SystemTime};

    let path = std::env::temp_dir().join(format!(
        "sessio-custom-store-{}.sqlite3",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let path_str = path.to_str().unwrap();
    let mut record = Record::new();
    record.insert("user", serde_json::json!("ada"));
    let ttl = Duration::from_secs(60);
    let value = SqliteStore::open(path_str)
        .unwrap()
        .create(&record, Deadline::new(SystemTime::now() + ttl, ttl))
        .await
        .unwrap();
    let reopened = SqliteStore::open(path_str).unwrap();
    assert_eq!(reopened.load(&value).await.unwrap(), Some(record));
    let _ = std::fs::remove_file(&path);
}
