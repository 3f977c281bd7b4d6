//! The store conformance suite, run against the built-in stores.

use sessio::test_util::Suite;
use sessio::MemoryStore;

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    let report = Suite::new(MemoryStore::new()).run().await;
    assert_eq!(report.passed(), 16);
    assert!(report.skipped().is_empty());
}
