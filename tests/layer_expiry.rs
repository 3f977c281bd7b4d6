//! Expiry, idle and absolute timeouts, on an injected clock (no sleeps).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use base64::Engine as _;
use common::*;
use sessio::clock::ManualClock;
use sessio::store::Store;
use sessio::{Expiry, MemoryStore, SessionLayer};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

struct Env {
    clock: ManualClock,
    store: TestStore,
    app: Router,
}

fn env(expiry: Expiry, absolute: Option<Duration>) -> Env {
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let store = TestStore::new(MemoryStore::with_clock(clock.clone()));
    let mut b = SessionLayer::builder(store.clone(), key())
        .with_expiry(expiry)
        .with_clock(clock.clone());
    if let Some(abs) = absolute {
        b = b.with_absolute_timeout(abs);
    }
    let app = routes().layer(b.build().unwrap());
    Env { clock, store, app }
}

/// The id and the signed expiry inside a cookie pair `id=<payload>.<tag>`.
fn open(pair: &str) -> (String, u64) {
    let payload = pair["__Host-id=".len()..].rsplit_once('.').unwrap().0;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let expires = u64::from_be_bytes(bytes[17..25].try_into().unwrap());
    (String::from_utf8(bytes[25..].to_vec()).unwrap(), expires)
}

fn max_age(set_cookie: &str) -> Option<u64> {
    set_cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .map(|v| v.parse().unwrap())
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

// The default: a browser-session cookie; the server forgets after 24 h idle.
#[tokio::test]
async fn browser_session_cookie_has_no_max_age_and_idles_out_on_the_server() {
    let e = env(Expiry::default(), None);
    let r = call(&e.app, "/incr", None).await;
    assert_eq!(max_age(&r.set_cookie("__Host-id").unwrap()), None);
    let cookie = r.cookie("__Host-id").unwrap();
    e.clock.advance(23 * HOUR);
    assert_eq!(call(&e.app, "/read", Some(&cookie)).await.body, "Some(1)");
    e.clock.advance(2 * HOUR);
    // The read at 23 h extended the record (more than half the window had
    // passed), but this cookie still carries the old deadline: fresh session.
    assert_eq!(call(&e.app, "/read", Some(&cookie)).await.body, "None");
}

// Rolling: a read after more than half the window extends the TTL without
// rewriting data, and re-issues the cookie.
#[tokio::test]
async fn inactivity_expiry_rolls_with_a_touch_not_a_rewrite() {
    let e = env(Expiry::OnInactivity(HOUR), None);
    let r = call(&e.app, "/incr", None).await;
    assert_eq!(max_age(&r.set_cookie("__Host-id").unwrap()), Some(3600));
    let first = r.cookie("__Host-id").unwrap();
    e.store.take_ops();

    e.clock.advance(20 * MIN);
    let r = call(&e.app, "/read", Some(&first)).await;
    assert!(r.set_cookies().is_empty(), "refreshed too early");
    assert_eq!(e.store.take_ops(), vec!["load"]);

    e.clock.advance(20 * MIN);
    let r = call(&e.app, "/read", Some(&first)).await;
    assert_eq!(r.body, "Some(1)");
    assert_eq!(e.store.take_ops(), vec!["load", "touch"]);
    let set = r.set_cookie("__Host-id").expect("cookie re-issued");
    assert_eq!(max_age(&set), Some(3600));
    let second = r.cookie("__Host-id").unwrap();
    assert_eq!(open(&second).0, open(&first).0, "same id");
    assert_eq!(open(&second).1, secs(e.clock_now()) + 3600);

    e.clock.advance(30 * MIN);
    assert_eq!(
        call(&e.app, "/read", Some(&first)).await.body,
        "None",
        "old deadline honoured"
    );
    assert_eq!(call(&e.app, "/read", Some(&second)).await.body, "Some(1)");
}

impl Env {
    fn clock_now(&self) -> SystemTime {
        sessio::clock::Clock::now(&self.clock)
    }
}

#[tokio::test]
async fn fixed_expiry_never_moves() {
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let at = start + 2 * HOUR;
    let e = env(Expiry::AtTime(at), None);
    let r = call(&e.app, "/incr", None).await;
    assert_eq!(max_age(&r.set_cookie("__Host-id").unwrap()), Some(7200));
    let cookie = r.cookie("__Host-id").unwrap();
    e.store.take_ops();
    e.clock.advance(110 * MIN);
    let r = call(&e.app, "/read", Some(&cookie)).await;
    assert!(r.set_cookies().is_empty());
    assert_eq!(e.store.take_ops(), vec!["load"]);
    // A write keeps the moment too: the browser's cookie already carries it,
    // so none is sent, and the record's TTL is what is left of it.
    let r = call(&e.app, "/incr", Some(&cookie)).await;
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    assert_eq!(e.store.take_ops(), vec!["load", "update"]);
    e.clock.advance(10 * MIN);
    assert_eq!(call(&e.app, "/read", Some(&cookie)).await.body, "None");
}

// SECURITY E25: the absolute timeout is enforced on the server; activity does
// not extend it.
#[tokio::test]
async fn absolute_timeout_ends_an_active_session() {
    let e = env(Expiry::OnInactivity(HOUR), Some(2 * HOUR));
    let mut cookie = call(&e.app, "/incr", None)
        .await
        .cookie("__Host-id")
        .unwrap();
    let mut set = String::new();
    for _ in 0..2 {
        // Past half the hour each time: the write re-issues the cookie.
        e.clock.advance(45 * MIN);
        let r = call(&e.app, "/incr", Some(&cookie)).await;
        set = r.set_cookie("__Host-id").unwrap();
        cookie = r.cookie("__Host-id").unwrap();
    }
    // 90 minutes in: the cookie may not outlive the absolute limit.
    assert_eq!(max_age(&set), Some(30 * 60));
    // Nothing left to extend: a write keeps that cookie.
    let r = call(&e.app, "/incr", Some(&cookie)).await;
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    e.clock.advance(31 * MIN);
    assert_eq!(call(&e.app, "/read", Some(&cookie)).await.body, "None");
}

// SECURITY E25: the store's TTL equals the cookie's expiry.
#[tokio::test]
async fn store_ttl_equals_cookie_expiry() {
    let e = env(Expiry::OnInactivity(HOUR), None);
    let r = call(&e.app, "/incr", None).await;
    let cookie = r.cookie("__Host-id").unwrap();
    let (id, expires) = open(&cookie);
    assert_eq!(
        expires,
        secs(e.clock_now()) + max_age(&r.set_cookie("__Host-id").unwrap()).unwrap()
    );
    e.clock.advance(HOUR - Duration::from_secs(1));
    assert!(e.store.inner.load(&id).await.unwrap().is_some());
    e.clock.advance(Duration::from_secs(1));
    assert!(e.store.inner.load(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn set_expiry_changes_one_session() {
    let e = env(Expiry::default(), None);
    let app = Router::new()
        .route(
            "/remember",
            axum::routing::get(|s: sessio::Session| async move {
                s.set_expiry(Expiry::OnInactivity(Duration::from_secs(30 * 24 * 3600)));
                "ok"
            }),
        )
        .merge(routes())
        .layer(
            SessionLayer::builder(e.store.clone(), key())
                .with_clock(e.clock.clone())
                .build()
                .unwrap(),
        );
    let cookie = call(&app, "/incr", None).await.cookie("__Host-id").unwrap();
    e.store.take_ops();
    let r = call(&app, "/remember", Some(&cookie)).await;
    assert_eq!(e.store.take_ops(), vec!["load", "touch"]);
    assert_eq!(
        max_age(&r.set_cookie("__Host-id").unwrap()),
        Some(30 * 24 * 3600)
    );
    let cookie = r.cookie("__Host-id").unwrap();
    e.clock.advance(10 * 24 * HOUR);
    assert_eq!(call(&app, "/read", Some(&cookie)).await.body, "Some(1)");
}
