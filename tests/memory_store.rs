//! MemoryStore specifics: bounded memory under churn and floods, id
//! collisions, record size limits.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use sessio::clock::ManualClock;
use sessio::store::{Deadline, Record, Store};
use sessio::{Id, MemoryStore};

fn expires(clock: &ManualClock, secs: u64) -> Deadline {
    let ttl = Duration::from_secs(secs);
    Deadline::new(sessio::clock::Clock::now(clock) + ttl, ttl)
}

// Churn: 100k sessions created over time, each living 60 s. The store must
// not hold more than a small multiple of the live ones.
#[tokio::test]
async fn memory_does_not_grow_without_bound_under_churn() {
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000_000));
    let store = MemoryStore::with_clock(clock.clone());
    let mut peak = 0;
    for _ in 0..100 {
        for _ in 0..1000 {
            store
                .create(&Record::new(), expires(&clock, 60))
                .await
                .unwrap();
        }
        // 1000 new sessions every 30 s: about 2000 alive at any time.
        clock.advance(Duration::from_secs(30));
        peak = peak.max(store.len());
    }
    assert!(
        peak <= 8 * 2000,
        "store held {peak} records for ~2000 live sessions"
    );
    clock.advance(Duration::from_secs(61));
    store.sweep();
    assert_eq!(store.len(), 0);
}

// SECURITY A2: a forced id collision never overwrites; another id is minted.
#[tokio::test]
async fn id_collision_mints_another_id() {
    let fixed = Id::generate();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let store = MemoryStore::new().with_id_generator(move || {
        // The first two calls return the same id, then fresh ones.
        if c.fetch_add(1, Ordering::SeqCst) < 2 {
            fixed.clone()
        } else {
            Id::generate()
        }
    });
    let ttl = Duration::from_secs(60);
    let e = Deadline::new(std::time::SystemTime::now() + ttl, ttl);
    let mut first = Record::new();
    first.insert("owner", "first".into());
    let a = store.create(&first, e).await.unwrap();
    let b = store.create(&Record::new(), e).await.unwrap();
    assert_ne!(a, b);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        store.load(&a).await.unwrap(),
        Some(first),
        "first record overwritten"
    );
}

#[tokio::test]
async fn concurrent_use_from_many_tasks() {
    let store = MemoryStore::new();
    let ttl = Duration::from_secs(60);
    let e = Deadline::new(std::time::SystemTime::now() + ttl, ttl);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..500 {
                let v = s.create(&Record::new(), e).await.unwrap();
                assert!(s.load(&v).await.unwrap().is_some());
                s.delete(&v).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(store.is_empty());
}

// Records are kept as JSON inside the store; whatever a handler can put in a
// session comes back exactly, floats and data nested past what JSON reads
// back included.
#[tokio::test]
async fn records_come_back_exactly() {
    use serde_json::{json, Value};
    let store = MemoryStore::new();
    let ttl = Duration::from_secs(60);
    let e = Deadline::new(std::time::SystemTime::now() + ttl, ttl);
    let mut record = Record::new();
    record.insert("f", json!(1.0559953781465763e232_f64));
    record.insert("neg", json!(-0.0));
    record.insert("big", json!(u64::MAX));
    record.insert("text", json!("é \u{0} \"q\""));
    let v = store.create(&record, e).await.unwrap();
    assert_eq!(store.load(&v).await.unwrap(), Some(record.clone()));

    let mut deep = Value::Null;
    for _ in 0..200 {
        deep = Value::Array(vec![deep]);
    }
    record.insert("deep", deep);
    let v = store.create(&record, e).await.unwrap();
    assert_eq!(store.load(&v).await.unwrap(), Some(record));
}

// SECURITY J46: a flood of new sessions stays within the store's capacity;
// the least recently used go first, with a WARN, and a session in use stays.
#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_sessions_stays_within_capacity() {
    use common::{call, key, routes, Logs};
    let store = MemoryStore::new().with_max_sessions(1_000);
    let app = routes().layer(sessio::SessionLayer::new(store.clone(), key()));
    let mine = call(&app, "/incr", None).await.cookie("__Host-id").unwrap();
    let (logs, _g) = Logs::capture();
    for i in 0..5_000 {
        call(&app, "/incr", None).await;
        if i % 100 == 0 {
            // Keep using one session: it is never the least recently used.
            assert_eq!(call(&app, "/read", Some(&mine)).await.body, "Some(1)");
        }
    }
    assert!(store.len() <= 1_000, "{} sessions held", store.len());
    assert!(logs.text().contains("evicted"), "no WARN on eviction");
    assert_eq!(call(&app, "/read", Some(&mine)).await.body, "Some(1)");
}

// SECURITY J48: a record over the store's size limit is refused with a typed
// error; the stored session is left as it was.
#[tokio::test]
async fn records_over_the_size_limit_are_refused() {
    use common::{call, key, routes};
    let store = MemoryStore::new().with_max_record_size(200);
    let err = store
        .create(
            &[("k".to_owned(), serde_json::json!("x".repeat(300)))]
                .into_iter()
                .collect(),
            expires_far(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, sessio::store::StoreError::TooLarge { limit: 200, .. }),
        "{err:?}"
    );
    let app = routes().layer(sessio::SessionLayer::new(store.clone(), key()));
    let cookie = call(&app, "/set?k=a&v=small", None)
        .await
        .cookie("__Host-id")
        .unwrap();
    let big = "y".repeat(300);
    let r = call(&app, &format!("/set?k=a&v={big}"), Some(&cookie)).await;
    assert_eq!(r.status, http::StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.set_cookies().is_empty());
    let r = call(&app, "/delete?k=zzz", Some(&cookie)).await;
    assert_eq!(r.status, http::StatusCode::OK);
    assert_eq!(store.len(), 1, "the stored session is intact");
}

fn expires_far() -> Deadline {
    let ttl = std::time::Duration::from_secs(60);
    Deadline::new(std::time::SystemTime::now() + ttl, ttl)
}
