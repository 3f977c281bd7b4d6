//! Scenarios both SqlStore backends run, beyond the conformance suite:
//! through the layer (so the changes are the ones a request makes) and on
//! the store directly.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use sessio::store::StoreError;
use sessio::store::{Changes, Deadline, Record, Store, Updated};
use sessio::{Id, Session, SessionLayer, SqlStore};

use crate::common::{call, key};

pub mod size_limit;
pub mod users;

pub fn expires_in(secs: u64) -> Deadline {
    let ttl = Duration::from_secs(secs);
    Deadline::new(SystemTime::now() + ttl, ttl)
}

pub fn record(pairs: &[(&str, Value)]) -> Record {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The store behind a layer, with routes that take JSON values:
/// - `/set?k=&v=` sets `k` to the JSON `v`;
/// - `/get?k=` answers the value's JSON, or `none`;
/// - `/count?n=` answers how many of `k0`..`k{n-1}` hold their own index;
/// - `/delete?k=`, `/cycle`, `/cycle-set?k=&v=` (cycles the id, then sets).
pub fn app(store: SqlStore) -> Router {
    type Q = Query<HashMap<String, String>>;
    Router::new()
        .route(
            "/set",
            get(|s: Session, Query(q): Q| async move {
                let v: Value = serde_json::from_str(&q["v"]).unwrap();
                s.set(&q["k"], v).unwrap();
                "set"
            }),
        )
        .route(
            "/get",
            get(|s: Session, Query(q): Q| async move {
                match s.get::<Value>(&q["k"]).unwrap() {
                    Some(v) => v.to_string(),
                    None => "none".to_owned(),
                }
            }),
        )
        .route(
            "/count",
            get(|s: Session, Query(q): Q| async move {
                let n: u64 = q["n"].parse().unwrap();
                let kept = (0..n)
                    .filter(|i| s.get::<u64>(&format!("k{i}")).unwrap() == Some(*i))
                    .count();
                kept.to_string()
            }),
        )
        .route(
            "/delete",
            get(|s: Session, Query(q): Q| async move {
                s.delete(&q["k"]).unwrap();
                "deleted"
            }),
        )
        .route(
            "/cycle",
            get(|s: Session| async move {
                s.cycle_id().unwrap();
                "cycled"
            }),
        )
        .route(
            "/cycle-set",
            get(|s: Session, Query(q): Q| async move {
                s.cycle_id().unwrap();
                let v: Value = serde_json::from_str(&q["v"]).unwrap();
                s.set(&q["k"], v).unwrap();
                "cycled"
            }),
        )
        .layer(SessionLayer::new(store, key()))
}

/// `/set` with `k` and the JSON `v`, percent-encoded.
pub fn set_path(k: &str, v: &Value) -> String {
    format!("/set?k={}&v={}", escape(k), escape(&v.to_string()))
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => char::from(b).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A session holding `user`, and its cookie.
async fn session(app: &Router) -> String {
    let r = call(app, &set_path("user", &json!("ada")), None).await;
    assert_eq!(r.status, StatusCode::OK);
    r.cookie("__Host-id").expect("cookie")
}

async fn get_value(app: &Router, cookie: &str, k: &str) -> String {
    let r = call(app, &format!("/get?k={}", escape(k)), Some(cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

/// SECURITY F29: many concurrent requests on one session, each setting a key
/// of its own, plus one key they all set: every request's own key is there
/// afterwards (counted), the shared key holds one of the values written,
/// whole, and a later write to it wins.
pub async fn concurrent_updates_lose_nothing_and_last_write_wins(store: SqlStore, n: usize) {
    let app = app(store);
    let cookie = session(&app).await;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move {
                let r = call(&app, &set_path(&format!("k{i}"), &json!(i)), Some(&cookie)).await;
                assert_eq!(r.status, StatusCode::OK, "request {i}");
                let shared = json!({"from": i, "pad": "x".repeat(64)});
                let r = call(&app, &set_path("shared", &shared), Some(&cookie)).await;
                assert_eq!(r.status, StatusCode::OK, "request {i}");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("no panic");
    }
    let r = call(&app, &format!("/count?n={n}"), Some(&cookie)).await;
    assert_eq!(
        r.body,
        n.to_string(),
        "concurrent updates to different keys lost"
    );
    assert_eq!(get_value(&app, &cookie, "user").await, "\"ada\"");
    let shared: Value = serde_json::from_str(&get_value(&app, &cookie, "shared").await).unwrap();
    assert!(shared["from"].as_u64().unwrap() < n as u64);
    assert_eq!(shared["pad"], json!("x".repeat(64)));
    for i in 0..3 {
        call(&app, &set_path("shared", &json!(i)), Some(&cookie)).await;
    }
    assert_eq!(get_value(&app, &cookie, "shared").await, "2");
}

/// A key set to JSON `null` is stored (an RFC 7396 merge patch would read it
/// as "delete"), an object value is replaced, not merged, and both survive a
/// rotation; removing every key deletes the record.
pub async fn null_values_are_kept_and_objects_replaced(store: SqlStore) {
    let app = app(store);
    let cookie = session(&app).await;
    let set = |k: &'static str, v: Value| {
        let (app, cookie) = (app.clone(), cookie.clone());
        async move {
            let r = call(&app, &set_path(k, &v), Some(&cookie)).await;
            assert_eq!(r.status, StatusCode::OK);
        }
    };
    set("o", json!({"a": 1, "b": 2})).await;
    set("o", json!({"c": null})).await;
    set("n", Value::Null).await;
    set("\u{0}odd \"key\"", Value::Null).await;
    assert_eq!(get_value(&app, &cookie, "o").await, r#"{"c":null}"#);
    assert_eq!(get_value(&app, &cookie, "n").await, "null");
    assert_eq!(get_value(&app, &cookie, "\u{0}odd \"key\"").await, "null");
    let r = call(&app, "/cycle", Some(&cookie)).await;
    let cookie = r.cookie("__Host-id").expect("a new cookie");
    assert_eq!(get_value(&app, &cookie, "n").await, "null");
    assert_eq!(get_value(&app, &cookie, "o").await, r#"{"c":null}"#);
    for k in ["o", "n", "user", "\u{0}odd \"key\""] {
        let r = call(&app, &format!("/delete?k={}", escape(k)), Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK);
        if k.starts_with('\0') {
            let removal = r.set_cookie("__Host-id").expect("removal cookie");
            assert!(removal.contains("Max-Age=0"), "{removal}");
        }
    }
    assert_eq!(get_value(&app, &cookie, "user").await, "none");
}

/// SECURITY A2: a forced id collision mints another id, on create and on
/// rotate; the existing record is untouched.
pub async fn forced_collisions_mint_another_id(store: &SqlStore) {
    let first = Id::generate();
    let second = Id::generate();
    let third = Id::generate();
    let queue = Arc::new(std::sync::Mutex::new(vec![
        third.clone(),
        first.clone(),
        second.clone(),
        first.clone(),
        first.clone(),
    ]));
    let store = store
        .clone()
        .with_id_generator(move || queue.lock().unwrap().pop().unwrap_or_else(Id::generate));
    let a = store
        .create(&record(&[("who", json!("a"))]), expires_in(60))
        .await
        .unwrap();
    assert_eq!(a, first.as_str());
    let b = store
        .create(&record(&[("who", json!("b"))]), expires_in(60))
        .await
        .unwrap();
    assert_eq!(b, second.as_str(), "collision not retried");
    let got = store
        .rotate(
            &b,
            &record(&[("who", json!("b"))]),
            &Changes::default(),
            expires_in(60),
        )
        .await
        .unwrap();
    assert_eq!(got, Updated::Written(third.as_str().to_owned()));
    let a_now = store.load(&a).await.unwrap().unwrap();
    assert_eq!(a_now.get("who"), Some(&json!("a")), "a collision overwrote");
    assert_eq!(store.load(&b).await.unwrap(), None);
    // Only colliding ids: a typed error, nothing overwritten.
    let stuck = store.clone().with_id_generator(move || first.clone());
    let err = stuck.create(&Record::new(), expires_in(60)).await;
    assert!(matches!(err, Err(StoreError::Backend(_))), "{err:?}");
}

/// SECURITY J49: a value nested deeper than JSON reads back is refused at
/// save, and nothing is written.
pub async fn too_deep_values_are_refused_at_save(store: &SqlStore) {
    let mut deep = json!(1);
    // 127 arrays: JSON text a handler can parse, one level too deep to be a
    // value of a record that reads back.
    for _ in 0..127 {
        deep = json!([deep]);
    }
    let err = store
        .create(&record(&[("deep", deep.clone())]), expires_in(60))
        .await;
    assert!(matches!(err, Err(StoreError::Encode(_))), "{err:?}");
    let app = app(store.clone());
    let cookie = session(&app).await;
    let r = call(&app, &set_path("deep", &deep), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.cookie("__Host-id").is_none());
    assert_eq!(get_value(&app, &cookie, "deep").await, "none");
    assert_eq!(get_value(&app, &cookie, "user").await, "\"ada\"");
}

/// The sweep deletes expired rows only, at most a batch at a time; the
/// sweeper task does it on its own and stops when dropped. `expire` moves a
/// row's expiry into the past (backend-specific SQL).
pub async fn sweeps_delete_expired_rows_in_batches<F, Fut>(store: &SqlStore, expire: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let store = store.clone().with_sweep_batch(2);
    assert_eq!(store.sweep_batch(), 2);
    let live = store
        .create(&record(&[("live", json!(1))]), expires_in(60))
        .await
        .unwrap();
    let mut dead = Vec::new();
    for i in 0..5 {
        let v = store
            .create(&record(&[("dead", json!(i))]), expires_in(60))
            .await
            .unwrap();
        expire(v.clone()).await;
        dead.push(v);
    }
    let mut swept = Vec::new();
    loop {
        let n = store.delete_expired().await.unwrap();
        swept.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(swept, [2, 2, 1, 0]);
    assert!(store.load(&live).await.unwrap().is_some());

    let sweeper = store.spawn_sweeper(Duration::from_millis(20));
    assert!(sweeper.is_running());
    let v = store
        .create(&record(&[("dead", json!(9))]), expires_in(60))
        .await
        .unwrap();
    expire(v).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.delete_expired().await.unwrap() == 0 {
        // The sweeper got there first (or will): wait for an empty sweep.
        if std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(sweeper);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let v = store
        .create(&record(&[("dead", json!(10))]), expires_in(60))
        .await
        .unwrap();
    expire(v).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        store.delete_expired().await.unwrap(),
        1,
        "the dropped sweeper kept sweeping"
    );
}
