//! Store failures become the error handler's response (SECURITY G32, G33, F28, G35).

mod common;

use axum::http::{Response, StatusCode};
use axum::routing::get;
use axum::Router;
use common::*;
use sessio::store::Store;
use sessio::{Error, MemoryStore, Session, SessionLayer};

fn setup() -> (TestStore, Router) {
    let store = TestStore::new(MemoryStore::new());
    let app = routes().layer(SessionLayer::new(store.clone(), key()));
    (store, app)
}

// SECURITY G32: a failed load is an opaque 503 (unreachable) or 500, never an
// empty session that looks logged out; the handler does not run.
#[tokio::test(flavor = "current_thread")]
async fn load_failure_is_503_or_500_and_the_handler_does_not_run() {
    let (store, app) = setup();
    let cookie = call(&app, "/incr", None).await.cookie("__Host-id").unwrap();
    store.fail_on("load", Fail::Unavailable);
    let (logs, _g) = Logs::capture();
    let r = call(&app, "/incr", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body, "");
    assert!(r.set_cookies().is_empty());
    assert!(logs.text().contains("ERROR"), "{}", logs.text());
    assert!(
        !logs.text().contains(&cookie["__Host-id=".len()..]),
        "cookie logged"
    );
    store.fail_on("load", Fail::Broken);
    let r = call(&app, "/incr", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(store.ops().iter().filter(|o| **o == "update").count(), 0);
    store.heal();
    assert_eq!(call(&app, "/read", Some(&cookie)).await.body, "Some(1)");
}

// SECURITY G33: a failed save is a 5xx with no Set-Cookie and an ERROR event.
#[tokio::test(flavor = "current_thread")]
async fn save_failure_sends_no_cookie() {
    let (store, app) = setup();
    store.fail_on("create", Fail::Unavailable);
    let (logs, _g) = Logs::capture();
    let r = call(&app, "/incr", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.set_cookies().is_empty(),
        "cookie for an id that was not stored"
    );
    assert!(
        logs.text().contains("saving the session failed"),
        "{}",
        logs.text()
    );
    store.heal();
    let cookie = call(&app, "/incr", None).await.cookie("__Host-id").unwrap();
    store.fail_on("update", Fail::Broken);
    let r = call(&app, "/incr", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.set_cookies().is_empty());
    store.heal();
    assert_eq!(
        call(&app, "/read", Some(&cookie)).await.body,
        "Some(1)",
        "stored session intact"
    );
}

#[tokio::test]
async fn custom_error_handler_shapes_the_response() {
    let store = TestStore::new(MemoryStore::new());
    let layer = SessionLayer::builder(store.clone(), key())
        .with_error_handler(|err: &Error| {
            Response::builder()
                .status(if err.is_unavailable() {
                    StatusCode::IM_A_TEAPOT
                } else {
                    StatusCode::BAD_GATEWAY
                })
                .header("retry-after", "1")
                .body(())
                .unwrap()
        })
        .build()
        .unwrap();
    let app = routes().layer(layer);
    store.fail_on("create", Fail::Unavailable);
    let r = call(&app, "/incr", None).await;
    assert_eq!(r.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(r.header("retry-after"), Some("1"));
}

// SECURITY F28 / G35: a slow request that saves after a logout in another
// request does not bring the session back; the handler's response still goes
// out, with a removal cookie and a WARN.
#[tokio::test]
async fn save_after_concurrent_logout_does_not_resurrect() {
    let store = MemoryStore::new();
    let raw = store.clone();
    let app = Router::new()
        .route(
            "/slow",
            get(move |s: Session| {
                let raw = raw.clone();
                async move {
                    // Another request logs out while this one is running.
                    raw.delete(s.id().unwrap().as_str()).await.unwrap();
                    s.set("n", 100).unwrap();
                    "done"
                }
            }),
        )
        .merge(routes())
        .layer(SessionLayer::new(store.clone(), key()));
    let cookie = call(&app, "/incr", None).await.cookie("__Host-id").unwrap();
    let r = call(&app, "/slow", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "done"));
    assert_eq!(r.set_cookies().len(), 1);
    assert!(r
        .set_cookie("__Host-id")
        .unwrap()
        .starts_with("__Host-id=; Max-Age=0"));
    assert_eq!(call(&app, "/read", Some(&cookie)).await.body, "None");
    assert!(store.is_empty(), "record came back");
}

#[tokio::test]
async fn explicit_save_returns_store_errors_to_the_handler() {
    let store = TestStore::new(MemoryStore::new());
    let failing = store.clone();
    let app = Router::new()
        .route(
            "/",
            get(move |s: Session| {
                let failing = failing.clone();
                async move {
                    s.set("a", 1).unwrap();
                    failing.fail_on("create", Fail::Unavailable);
                    let err = s.save().await.unwrap_err();
                    assert!(err.is_unavailable());
                    failing.heal();
                    s.save().await.unwrap();
                    "saved"
                }
            }),
        )
        .layer(SessionLayer::new(store.clone(), key()));
    let r = call(&app, "/", None).await;
    assert_eq!(r.body, "saved");
    assert_eq!(r.set_cookies().len(), 1);
    assert_eq!(store.ops(), vec!["create", "create"]);
}

/// With several sessions, a save that fails stops the way out with the
/// error handler's response; the sessions not saved yet keep their changes,
/// so a handle the handler kept can still save them once the store is back.
#[tokio::test(flavor = "current_thread")]
async fn sessions_not_saved_after_a_failure_keep_their_changes() {
    use sessio::Sessions;
    use std::sync::{Arc, Mutex};

    let store = TestStore::new(MemoryStore::new());
    let kept: Arc<Mutex<Option<Session>>> = Arc::default();
    let slot = kept.clone();
    let app = Router::new()
        .route(
            "/set",
            get(move |sessions: Sessions, q: axum::extract::RawQuery| {
                let slot = slot.clone();
                async move {
                    let v: u32 = q.0.unwrap_or_default().parse().unwrap_or(0);
                    let a = sessions.get("a").await.unwrap();
                    let b = sessions.get("b").await.unwrap();
                    a.set("x", v).unwrap();
                    b.set("x", v).unwrap();
                    *slot.lock().unwrap() = Some(b);
                    "ok"
                }
            }),
        )
        .route(
            "/get",
            get(|sessions: Sessions| async move {
                let a = sessions.get("a").await.unwrap();
                let b = sessions.get("b").await.unwrap();
                let a: Option<u32> = a.get("x").unwrap();
                let b: Option<u32> = b.get("x").unwrap();
                format!("{a:?} {b:?}")
            }),
        )
        .layer(SessionLayer::many(store.clone(), key(), ["a", "b"]).unwrap());

    let r = call(&app, "/set?1", None).await;
    let cookies = r.set_cookies();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let pairs: Vec<String> = cookies
        .iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect();
    let jar = [pairs[0].as_str(), pairs[1].as_str()];
    assert_eq!(get_with(&app, "/get", &jar).await.body, "Some(1) Some(1)");

    store.fail_on("update", Fail::Unavailable);
    let r = get_with(&app, "/set?2", &jar).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.set_cookies().is_empty());
    store.heal();
    assert_eq!(get_with(&app, "/get", &jar).await.body, "Some(1) Some(1)");

    // `b` was never saved: its change is still pending on the kept handle.
    let b = kept.lock().unwrap().take().unwrap();
    b.save().await.unwrap();
    assert_eq!(get_with(&app, "/get", &jar).await.body, "Some(1) Some(2)");
}
