//! RedisStore against a real redis-server: round trips, layout, ids, and
//! concurrent requests through the layer.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::redis::{app, is_removal, Monitor, RedisServer};
use common::{call, key};
use http::StatusCode;
use serde_json::json;
use sessio::clock::ManualClock;
use sessio::store::deadpool_redis::redis::AsyncCommands;
use sessio::store::StoreError;
use sessio::store::{storage_key, Changes, Deadline, Record, Store, Updated};
use sessio::{Error, Expiry, Id, RedisStore, SessionLayer};
use tokio::sync::Barrier;

fn expires_in(secs: u64) -> Deadline {
    let ttl = Duration::from_secs(secs);
    Deadline::new(SystemTime::now() + ttl, ttl)
}

fn record(pairs: &[(&str, serde_json::Value)]) -> Record {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Round trips since the last look, without connection housekeeping:
/// deadpool's health check (`UNWATCH` + `PING` when it hands a pooled
/// connection out again) and the `CLIENT SETINFO` of a new connection.
fn session_calls(monitor: &mut Monitor) -> (BTreeMap<String, u64>, u64) {
    let mut calls = monitor.commands();
    let pings = calls.get("ping").copied().unwrap_or(0);
    calls.retain(|name, _| !matches!(name.as_str(), "ping" | "unwatch" | "client"));
    (calls, pings)
}

fn calls(expected: &[(&str, u64)]) -> BTreeMap<String, u64> {
    expected
        .iter()
        .map(|(k, n)| ((*k).to_owned(), *n))
        .collect()
}

// SECURITY B8: no store I/O for an untouched session; one round trip to load,
// one to save, one to extend the TTL.
#[tokio::test]
async fn each_request_costs_the_fewest_commands() {
    let server = RedisServer::start();
    let clock = ManualClock::new(SystemTime::now());
    let store = RedisStore::connect(&server.url()).expect("store");
    let layer = SessionLayer::builder(store, key())
        .with_expiry(Expiry::OnInactivity(Duration::from_secs(60)))
        .with_clock(clock.clone())
        .build()
        .expect("layer");
    let app = app(layer, Arc::new(Barrier::new(1)));
    // Warm up: the first save of each kind loads its script into Redis.
    let first = call(&app, "/incr", None)
        .await
        .cookie("__Host-id")
        .expect("cookie");
    // An update early in the window keeps the browser's cookie.
    let r = call(&app, "/incr", Some(&first)).await;
    assert!(r.cookie("__Host-id").is_none());
    let cookie = first;
    let mut monitor = server.monitor();

    let r = call(&app, "/untouched", Some(&cookie)).await;
    assert!(r.cookie("__Host-id").is_none());
    assert_eq!(
        monitor.commands(),
        calls(&[]),
        "untouched: no traffic at all"
    );

    let r = call(&app, "/read", Some(&cookie)).await;
    assert_eq!(
        (r.body.as_str(), r.cookie("__Host-id").as_deref()),
        ("Some(2)", None)
    );
    let (seen, pings) = session_calls(&mut monitor);
    assert_eq!(seen, calls(&[("hgetall", 1)]), "read-only");
    assert!(pings <= 1, "at most one pool check per checkout");

    let r = call(&app, "/incr", Some(&cookie)).await;
    assert!(
        r.cookie("__Host-id").is_none(),
        "a write before half the window keeps the cookie"
    );
    let (seen, pings) = session_calls(&mut monitor);
    assert_eq!(seen, calls(&[("evalsha", 1), ("hgetall", 1)]), "changed");
    assert!(pings <= 2);

    clock.advance(Duration::from_secs(40));
    let r = call(&app, "/read", Some(&cookie)).await;
    assert!(
        r.cookie("__Host-id").is_some(),
        "rolling expiry re-issues the cookie"
    );
    let (seen, _) = session_calls(&mut monitor);
    assert_eq!(
        seen,
        calls(&[("hgetall", 1), ("pexpire", 1)]),
        "rolling touch"
    );
}

#[tokio::test]
async fn two_servers_on_one_redis_share_sessions() {
    let server = RedisServer::start();
    let one = app(
        SessionLayer::new(RedisStore::connect(&server.url()).expect("store"), key()),
        Arc::new(Barrier::new(1)),
    );
    let two = app(
        SessionLayer::new(RedisStore::connect(&server.url()).expect("store"), key()),
        Arc::new(Barrier::new(1)),
    );
    let cookie = call(&one, "/set?k=user&v=ada", None)
        .await
        .cookie("__Host-id")
        .expect("login");
    assert_eq!(
        call(&two, "/get?k=user", Some(&cookie)).await.body,
        "\"ada\""
    );
    assert!(is_removal(&call(&two, "/destroy", Some(&cookie)).await));
    assert_eq!(call(&one, "/get?k=user", Some(&cookie)).await.body, "none");
}

// SECURITY F29: both requests loaded the same state before either saved.
#[tokio::test]
async fn concurrent_changes_to_different_keys_both_survive() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).expect("store");
    let app = app(SessionLayer::new(store, key()), Arc::new(Barrier::new(2)));
    let cookie = call(&app, "/set?k=base&v=x", None)
        .await
        .cookie("__Host-id")
        .expect("cookie");
    let (a, b) = tokio::join!(
        call(&app, "/gated-set?k=a&v=1", Some(&cookie)),
        call(&app, "/gated-set?k=b&v=2", Some(&cookie)),
    );
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
    for (k, v) in [("a", "\"1\""), ("b", "\"2\""), ("base", "\"x\"")] {
        let r = call(&app, &format!("/get?k={k}"), Some(&cookie)).await;
        assert_eq!(r.body, v, "key {k}");
    }
}

// SECURITY F28 / G35: a slow request finishing after logout keeps its own
// response (not the error handler's) and does not bring the session back.
#[tokio::test]
async fn slow_request_after_logout_does_not_resurrect_the_session() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).expect("store");
    let layer = SessionLayer::builder(store, key())
        .with_error_handler(|err| {
            let mut res = http::Response::new(());
            *res.status_mut() = match err {
                Error::RecordGone => StatusCode::CONFLICT,
                other => other.status(),
            };
            res
        })
        .build()
        .expect("layer");
    let gate = Arc::new(Barrier::new(2));
    let app = app(layer, gate.clone());
    let cookie = call(&app, "/set?k=user&v=ada", None)
        .await
        .cookie("__Host-id")
        .expect("cookie");

    let slow = tokio::spawn({
        let (app, cookie) = (app.clone(), cookie.clone());
        async move { call(&app, "/gated-set?k=user&v=mallory", Some(&cookie)).await }
    });
    gate.wait().await; // the slow request has loaded the session
    assert!(is_removal(&call(&app, "/destroy", Some(&cookie)).await));
    gate.wait().await; // let it save
    let slow = slow.await.expect("no panic");
    // SECURITY G35: the handler's response, with a removal cookie.
    assert_eq!(slow.status, StatusCode::OK);
    assert!(is_removal(&slow), "the gone session's cookie is removed");
    assert_eq!(server.cli(&["DBSIZE"]), "0", "the record came back");
    assert_eq!(call(&app, "/get?k=user", Some(&cookie)).await.body, "none");
}

// SECURITY A2: a collision mints another id; the existing record is untouched.
#[tokio::test]
async fn forced_id_collision_regenerates() {
    let server = RedisServer::start();
    let fixed = Id::parse("AAAAAAAAAAAAAAAAAAAAAA").expect("id");
    let n = Arc::new(AtomicUsize::new(0));
    let store = RedisStore::builder()
        .with_id_generator({
            let fixed = fixed.clone();
            move || match n.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => fixed.clone(),
                _ => Id::generate(),
            }
        })
        .connect(&server.url())
        .expect("store");
    let a = record(&[("who", json!("a"))]);
    let b = record(&[("who", json!("b"))]);
    let first = store.create(&a, expires_in(60)).await.expect("create");
    let second = store.create(&b, expires_in(60)).await.expect("create");
    assert_eq!(first, fixed.as_str());
    assert_ne!(second, first);
    assert_eq!(store.load(&first).await.expect("load"), Some(a.clone()));
    assert_eq!(store.load(&second).await.expect("load"), Some(b.clone()));

    let stuck = RedisStore::builder()
        .with_id_generator(move || fixed.clone())
        .connect(&server.url())
        .expect("store");
    let err = stuck.create(&b, expires_in(60)).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert_eq!(store.load(&first).await.expect("load"), Some(a));
}

// SECURITY A5: the key is prefix + sha256(id); the id is nowhere in Redis.
#[tokio::test]
async fn redis_holds_hashed_keys_not_ids() {
    let server = RedisServer::start();
    let store = RedisStore::builder()
        .with_prefix("app:sess:")
        .connect(&server.url())
        .expect("store");
    let id = store
        .create(&record(&[("user", json!("ada"))]), expires_in(60))
        .await
        .expect("create");
    let keys = server.cli(&["KEYS", "*"]);
    assert_eq!(keys, storage_key("app:sess:", &id));
    assert!(!keys.contains(&id));
    assert!(!server.cli(&["HGETALL", &keys]).contains(&id));

    let default = RedisStore::connect(&server.url()).expect("store");
    assert_eq!(default.prefix(), "session:");
    let id = default
        .create(&Record::new(), expires_in(60))
        .await
        .expect("create");
    assert_eq!(server.cli(&["EXISTS", &storage_key("session:", &id)]), "1");
}

// SECURITY A4: malformed values are answered without a single command.
#[tokio::test]
async fn malformed_ids_never_reach_redis() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).expect("store");
    let mut monitor = server.monitor();
    for bad in [
        "",
        "short",
        "../../etc/passwd",
        "AAAAAAAAAAAAAAAAAAAAA*",
        "é",
        "a b",
    ] {
        assert_eq!(store.load(bad).await.expect("load"), None);
        let c = Changes::default();
        let updated = store.update(bad, &Record::new(), &c, expires_in(60)).await;
        assert_eq!(updated.expect("update"), Updated::Gone);
        let rotated = store.rotate(bad, &Record::new(), &c, expires_in(60)).await;
        assert_eq!(rotated.expect("rotate"), Updated::Gone);
        assert!(!store.touch(bad, expires_in(60)).await.expect("touch"));
        store.delete(bad).await.expect("delete");
    }
    assert_eq!(monitor.commands(), calls(&[]));
}

#[tokio::test]
async fn foreign_and_corrupt_records_are_not_sessions() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).expect("store");
    let mut raw = server.raw().await;
    let id = Id::generate();
    let key = storage_key("session:", id.as_str());

    let _: () = raw.hset(&key, "user", "\"ada\"").await.expect("hset");
    let got = store
        .load(id.as_str())
        .await
        .expect("a foreign hash is no error");
    assert_eq!(
        got, None,
        "a hash without the version field is not a session"
    );

    let _: () = raw.hset(&key, "\0v", "1").await.expect("hset");
    let got = store.load(id.as_str()).await.expect("load");
    assert_eq!(got, Some(record(&[("user", json!("ada"))])));

    let _: () = raw.hset(&key, "user", "{not json").await.expect("hset");
    let err = store.load(id.as_str()).await.unwrap_err();
    // SECURITY I44: ours but unreadable; the layer deletes it and starts afresh.
    assert!(
        matches!(err, StoreError::Unreadable(_)),
        "corrupt JSON: {err:?}"
    );

    let _: () = raw.hset(&key, "\0v", "2").await.expect("hset");
    let err = store.load(id.as_str()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Backend(_)),
        "unknown version: {err:?}"
    );

    let _: () = raw.set(&key, "a string").await.expect("set");
    let err = store.load(id.as_str()).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "wrong type: {err:?}");
    assert_eq!(
        sessio::Error::from(err).status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn session_keys_cannot_touch_the_version_field() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).expect("store");
    let tricky = record(&[("\0v", json!("2")), ("\0\0x", json!(1)), ("", json!(null))]);
    let id = store.create(&tricky, expires_in(60)).await.expect("create");
    assert_eq!(store.load(&id).await.expect("load"), Some(tricky));
    let mut raw = server.raw().await;
    let version: String = raw
        .hget(storage_key("session:", &id), "\0v")
        .await
        .expect("hget");
    assert_eq!(version, "1");
}

// SECURITY E25: the store TTL equals the cookie's expiry.
#[tokio::test]
async fn redis_ttl_follows_the_session_expiry() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).expect("store");
    let layer = SessionLayer::builder(store, key())
        .with_expiry(Expiry::OnInactivity(Duration::from_secs(3600)))
        .build()
        .expect("layer");
    let app = app(layer, Arc::new(Barrier::new(1)));
    let r = call(&app, "/set?k=user&v=ada", None).await;
    let max_age = r.set_cookie("__Host-id").expect("Set-Cookie");
    assert!(max_age.contains("Max-Age=3600"), "{max_age}");
    let key = server.cli(&["KEYS", "*"]);
    let pttl: u64 = server.cli(&["PTTL", &key]).parse().expect("pttl");
    assert!((3_595_000..=3_600_000).contains(&pttl), "PTTL {pttl}");
}

#[tokio::test]
async fn resp3_connections_work_too() {
    let server = RedisServer::start();
    let url = format!("{}?protocol=resp3", server.url());
    let store = RedisStore::connect(&url).expect("store");
    let r = record(&[("n", json!(1)), ("nested", json!({"a": [1, 2]}))]);
    let id = store.create(&r, expires_in(60)).await.expect("create");
    assert_eq!(store.load(&id).await.expect("load"), Some(r));
}

// SECURITY H36: neither Debug nor errors show the URL's password.
#[tokio::test]
async fn debug_and_errors_keep_the_password_out() {
    let store = RedisStore::builder()
        .with_connect_timeout(Duration::from_millis(200))
        .connect("redis://user:hunter2secret@127.0.0.1:1/0")
        .expect("store");
    assert!(!format!("{store:?}").contains("hunter2secret"));
    let err = store.load(Id::generate().as_str()).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(!format!("{err:?} {err}").contains("hunter2secret"));
    let bad = RedisStore::connect("redis://user:hunter2secret@127.0.0.1:6379/notadb");
    let err = bad.unwrap_err();
    assert!(
        !format!("{err:?} {err}").contains("hunter2secret"),
        "{err:?}"
    );
}

// SECURITY J48: a record over the Redis store's size limit is refused with a
// typed error before anything is sent; the stored session stays as it was.
#[tokio::test]
async fn records_over_the_size_limit_are_refused() {
    let server = RedisServer::start();
    let store = RedisStore::builder()
        .with_max_record_size(200)
        .connect(&server.url())
        .expect("store");
    let big: Record = [("k".to_owned(), json!("x".repeat(300)))]
        .into_iter()
        .collect();
    let err = store.create(&big, expires_in(60)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { limit: 200, .. }),
        "{err:?}"
    );
    assert_eq!(server.cli(&["DBSIZE"]), "0");
    let small: Record = [("k".to_owned(), json!("small"))].into_iter().collect();
    let id = store.create(&small, expires_in(60)).await.expect("create");
    let c = sessio::test_util::changes(&["k"], &[], false);
    let err = store
        .update(&id, &big, &c, expires_in(60))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}");
    assert_eq!(store.load(&id).await.expect("load"), Some(small));
}
