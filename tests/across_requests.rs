//! Promises that must hold on the *next* request and when requests overlap:
//! a session's own settings, emptying against concurrent changes, rotation
//! against a logout, deletions on a 5xx, failed saves, named sessions,
//! records gone or unreadable, duplicate cookies.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use common::*;
use sessio::clock::ManualClock;
use sessio::{
    CookieOptions, CookieStore, Expiry, MemoryStore, Refresh, Session, SessionLayer, SessionStatus,
    Sessions, MAX_LIFETIME,
};
use tokio::sync::Barrier;

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

type Params = Query<HashMap<String, String>>;

/// The common routes plus the ones these tests need; `gate` makes
/// `/gated-*` wait twice (once loaded, once to let it finish).
fn app_on<St: sessio::Store + Clone>(layer: SessionLayer<St>, gate: Arc<Barrier>) -> Router {
    let g1 = gate.clone();
    let g2 = gate.clone();
    let g3 = gate.clone();
    routes()
        .route(
            "/remember",
            get(|s: Session| async move {
                s.set_options(CookieOptions::new().with_max_age(30 * DAY))
                    .unwrap();
                s.set("user", "ada").unwrap();
                "remembered"
            }),
        )
        .route(
            "/short",
            get(|s: Session| async move {
                s.set_expiry(Expiry::OnInactivity(5 * MIN));
                s.set("admin", true).unwrap();
                "short"
            }),
        )
        .route(
            "/huge",
            get(|s: Session| async move {
                s.set_expiry(Expiry::OnInactivity(Duration::MAX));
                s.set_options(CookieOptions::new().with_max_age(Duration::MAX))
                    .unwrap();
                s.set("n", 1).unwrap();
                "huge"
            }),
        )
        .route(
            "/place",
            get(|s: Session, Query(q): Params| async move {
                let mut o = CookieOptions::new().with_path(q["path"].clone());
                if let Some(d) = q.get("domain") {
                    o = o.with_domain(Some(d));
                }
                s.set_options(o).unwrap();
                s.set("user", "ada").unwrap();
                "placed"
            }),
        )
        .route(
            "/get",
            get(|s: Session, Query(q): Params| async move {
                s.get::<String>(&q["k"]).unwrap().unwrap_or_default()
            }),
        )
        .route(
            "/destroy-then-fail",
            get(|s: Session| async move {
                s.destroy();
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/cycle-then-fail",
            get(|s: Session| async move {
                s.cycle_id().unwrap();
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/status",
            get(|s: Session| async move {
                let before = s.status();
                s.set("x", 1).unwrap();
                let changed = s.status();
                s.cycle_id().unwrap();
                let renewed = s.status();
                s.destroy();
                format!("{before:?} {changed:?} {renewed:?} {:?}", s.status())
            }),
        )
        .route(
            "/gated-flashes",
            get(|s: Session| async move {
                let got: Vec<String> = s.flashes().unwrap();
                g1.wait().await;
                g1.wait().await;
                got.join(",")
            }),
        )
        .route(
            "/gated-set",
            get(|s: Session, Query(q): Params| async move {
                g3.wait().await;
                g3.wait().await;
                s.set(&q["k"], &q["v"]).unwrap();
                "set"
            }),
        )
        .route(
            "/gated-cycle",
            get(|s: Session| async move {
                g2.wait().await;
                g2.wait().await;
                s.cycle_id().unwrap();
                s.set("role", "admin").unwrap();
                "cycled"
            }),
        )
        .layer(layer)
}

fn clocked(expiry: Expiry) -> (ManualClock, TestStore, Router) {
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let store = TestStore::new(MemoryStore::with_clock(clock.clone()));
    let layer = SessionLayer::builder(store.clone(), key())
        .with_expiry(expiry)
        .with_clock(clock.clone())
        .build()
        .unwrap();
    (clock, store, app_on(layer, Arc::new(Barrier::new(2))))
}

fn attr<'a>(set_cookie: &'a str, name: &str) -> Option<&'a str> {
    set_cookie
        .split("; ")
        .find_map(|a| a.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
}

fn is_removal(c: &str) -> bool {
    c.split_once('=').is_some_and(|(_, v)| v.starts_with(';')) && c.contains("Max-Age=0")
}

// SECURITY I37: "remember me" holds on the next write: the record outlives
// the layer's 24 h window, and a cookie re-issued past half the 30 days keeps
// its Max-Age. A write before that sends no cookie: the browser's 30-day
// cookie still holds, and the record's TTL stays at its expiry.
#[tokio::test]
async fn remember_me_survives_the_next_write() {
    let (clock, _store, app) = clocked(Expiry::default());
    let r = call(&app, "/remember", None).await;
    let set = r.set_cookie("__Host-id").unwrap();
    assert_eq!(attr(&set, "Max-Age"), Some("2592000"), "{set}");
    let cookie = r.cookie("__Host-id").unwrap();

    clock.advance(MIN);
    let r = call(&app, "/flash?v=hello", Some(&cookie)).await;
    assert_eq!(
        r.set_cookie("__Host-id"),
        None,
        "a write before half the window keeps the browser's cookie"
    );

    // Past the layer's own 24 h window, within the session's 30 days.
    clock.advance(3 * DAY);
    let r = call(&app, "/flashes", Some(&cookie)).await;
    assert_eq!(r.body, "hello", "the record expired with the layer's TTL");

    // Past half the 30 days: the write re-issues the cookie, still 30 days.
    clock.advance(13 * DAY);
    let r = call(&app, "/flash?v=again", Some(&cookie)).await;
    let set = r
        .set_cookie("__Host-id")
        .expect("a write past half the window re-issues the cookie");
    assert_eq!(
        attr(&set, "Max-Age"),
        Some("2592000"),
        "the next write dropped it: {set}"
    );
    let cookie = r.cookie("__Host-id").unwrap();

    // 36 days after the first cookie, 20 after the re-issued one.
    clock.advance(20 * DAY);
    let r = call(&app, "/flashes", Some(&cookie)).await;
    assert_eq!(
        r.body, "again",
        "the re-issued cookie did not extend the record"
    );
}

// SECURITY I37: a shortened session stays short, also on a read-only request
// past half its window.
#[tokio::test]
async fn a_shortened_session_stays_short() {
    let (clock, _store, app) = clocked(Expiry::default());
    let r = call(&app, "/short", None).await;
    let cookie = r.cookie("__Host-id").unwrap();
    clock.advance(3 * MIN);
    let r = call(&app, "/read", Some(&cookie)).await;
    let set = r
        .set_cookie("__Host-id")
        .expect("past half of 5 minutes: refreshed");
    assert_eq!(attr(&set, "Max-Age"), Some("300"), "{set}");
    let cookie = r.cookie("__Host-id").unwrap();
    clock.advance(6 * MIN);
    let r = call(&app, "/read", Some(&cookie)).await;
    assert_eq!(r.body, "None", "the session grew back to the layer's 24 h");
}

// SECURITY B7: the removal cookie carries the Path and Domain the cookie was
// issued under, in a later request; moving the cookie removes the old one.
#[tokio::test]
async fn removal_targets_the_place_the_cookie_was_issued_under() {
    // A `__Host-` cookie cannot take a Path or Domain of its own: `sid`.
    let store = TestStore::new(MemoryStore::new());
    let layer = SessionLayer::builder(store.clone(), key())
        .with_cookie_name("sid")
        .build()
        .unwrap();
    let app = app_on(layer, Arc::new(Barrier::new(2)));
    let r = call(&app, "/place?path=/app&domain=example.com", None).await;
    let set = r.set_cookie("sid").unwrap();
    assert_eq!(attr(&set, "Path"), Some("/app"));
    let cookie = r.cookie("sid").unwrap();

    let r = call(&app, "/destroy", Some(&cookie)).await;
    let removal = r.set_cookie("sid").unwrap();
    assert!(is_removal(&removal), "{removal}");
    assert_eq!(attr(&removal, "Path"), Some("/app"), "{removal}");
    assert_eq!(attr(&removal, "Domain"), Some("example.com"), "{removal}");
    assert!(store.inner.is_empty());

    // A cookie issued at `/` and moved to `/app`: the one at `/` is removed.
    let cookie = call(&app, "/set?k=a&v=1", None)
        .await
        .cookie("sid")
        .unwrap();
    let r = call(&app, "/place?path=/app", Some(&cookie)).await;
    let all = r.set_cookies();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        is_removal(&all[0]) && attr(&all[0], "Path") == Some("/"),
        "{all:?}"
    );
    assert_eq!(attr(&all[1], "Path"), Some("/app"), "{all:?}");
}

// SECURITY B7 / I37: with the cookie store, logout removes the cookie at its
// own path, so the browser does not keep the session.
#[tokio::test]
async fn cookie_store_logout_removes_a_cookie_issued_under_a_path() {
    let layer = SessionLayer::builder(CookieStore::new(), key())
        .with_cookie_name("sid")
        .build()
        .unwrap();
    let app = app_on(layer, Arc::new(Barrier::new(2)));
    let r = call(&app, "/place?path=/app", None).await;
    let cookie = r.cookie("sid").unwrap();
    let r = call(&app, "/destroy", Some(&cookie)).await;
    let removal = r.set_cookie("sid").unwrap();
    assert!(
        is_removal(&removal) && attr(&removal, "Path") == Some("/app"),
        "{removal}"
    );
}

// SECURITY I38: request A empties its copy (reads the last flash) while B
// sets another key. B saving first: its key survives A's save. A saving
// first: the record is gone when B saves, and B gets its own 200 with a
// removal cookie, never a 500, and nothing comes back.
#[tokio::test]
async fn emptying_a_session_keeps_a_concurrent_change_to_another_key() {
    for b_first in [true, false] {
        let gate = Arc::new(Barrier::new(2));
        let store = TestStore::new(MemoryStore::new());
        let app = app_on(SessionLayer::new(store.clone(), key()), gate.clone());
        let cookie = call(&app, "/flash?v=hi", None)
            .await
            .cookie("__Host-id")
            .unwrap();
        let (slow_path, quick_path) = if b_first {
            ("/gated-flashes", "/set?k=cart&v=apple")
        } else {
            ("/gated-set?k=cart&v=apple", "/flashes")
        };
        let slow = tokio::spawn({
            let (app, cookie) = (app.clone(), cookie.clone());
            async move { call(&app, slow_path, Some(&cookie)).await }
        });
        gate.wait().await; // the slow one has loaded
        let quick = call(&app, quick_path, Some(&cookie)).await;
        gate.wait().await;
        let slow = slow.await.unwrap();
        let (a, b) = if b_first {
            (slow, quick)
        } else {
            (quick, slow)
        };
        assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "hi"));
        assert_eq!(b.status, StatusCode::OK, "b_first={b_first}: {b:?}");
        if b_first {
            assert!(a.set_cookies().iter().all(|c| !is_removal(c)), "{a:?}");
            let r = call(&app, "/get?k=cart", Some(&cookie)).await;
            assert_eq!(r.body, "apple", "B's cart was deleted with A's empty copy");
            let r = call(&app, "/flashes", Some(&cookie)).await;
            assert_eq!(r.body, "", "the flash came back");
        } else {
            assert!(is_removal(&a.set_cookie("__Host-id").unwrap()), "{a:?}");
            assert!(is_removal(&b.set_cookie("__Host-id").unwrap()), "{b:?}");
            assert!(store.inner.is_empty(), "a record came back");
        }
    }
}

// SECURITY I39: a slow request that loaded the session before a logout, then
// calls cycle_id, gets no new session: nothing comes back.
#[tokio::test]
async fn cycle_id_after_a_concurrent_logout_brings_nothing_back() {
    let gate = Arc::new(Barrier::new(2));
    let store = TestStore::new(MemoryStore::new());
    let app = app_on(SessionLayer::new(store.clone(), key()), gate.clone());
    let cookie = call(&app, "/set?k=user&v=ada", None)
        .await
        .cookie("__Host-id")
        .unwrap();
    let slow = tokio::spawn({
        let (app, cookie) = (app.clone(), cookie.clone());
        async move { call(&app, "/gated-cycle", Some(&cookie)).await }
    });
    gate.wait().await;
    let logout = call(&app, "/destroy", Some(&cookie)).await;
    assert!(is_removal(&logout.set_cookie("__Host-id").unwrap()));
    gate.wait().await;
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, StatusCode::OK);
    let set = slow.set_cookie("__Host-id").unwrap();
    assert!(is_removal(&set), "a new session was issued: {set}");
    assert!(
        store.inner.is_empty(),
        "the old data came back under a new id"
    );
}

// SECURITY I41: destroy, and cycle_id's deletion of the old record, hold when
// the handler then fails.
#[tokio::test]
async fn deletions_hold_when_the_handler_then_fails() {
    for path in ["/destroy-then-fail", "/cycle-then-fail"] {
        let (_clock, store, app) = clocked(Expiry::default());
        let cookie = call(&app, "/set?k=user&v=ada", None)
            .await
            .cookie("__Host-id")
            .unwrap();
        let r = call(&app, path, Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            is_removal(&r.set_cookie("__Host-id").unwrap()),
            "{path}: {r:?}"
        );
        assert!(store.inner.is_empty(), "{path}: the old record survived");
        let r = call(&app, "/read", Some(&cookie)).await;
        assert_eq!(r.body, "None", "{path}: still logged in");
    }
}

// SECURITY I42: a save that failed inside the handler is not written again on
// the way out, unless the session changed after the failure.
#[tokio::test]
async fn a_failed_save_is_not_written_twice() {
    for (op, change_after) in [("create", false), ("update", false), ("update", true)] {
        let store = TestStore::new(MemoryStore::new());
        let failing = store.clone();
        let app = Router::new()
            .route(
                "/",
                get(move |s: Session| {
                    let failing = failing.clone();
                    async move {
                        s.set("a", 2).unwrap();
                        failing.fail_on(op, Fail::Unavailable);
                        assert!(s.save().await.unwrap_err().is_unavailable());
                        failing.heal();
                        if change_after {
                            s.set("b", 3).unwrap();
                        }
                        "handled"
                    }
                }),
            )
            .merge(routes())
            .layer(SessionLayer::new(store.clone(), key()));
        let cookie = match op {
            "update" => Some(
                call(&app, "/set?k=a&v=1", None)
                    .await
                    .cookie("__Host-id")
                    .unwrap(),
            ),
            _ => None,
        };
        store.take_ops();
        let r = call(&app, "/", cookie.as_deref()).await;
        assert_eq!(r.body, "handled");
        let ops = store.take_ops();
        let writes = ops.iter().filter(|o| **o == op).count();
        if change_after {
            assert_eq!(writes, 2, "{ops:?}");
            let c = cookie.unwrap();
            let r = call(&app, "/read", Some(&c)).await;
            assert_eq!(r.status, StatusCode::OK);
        } else {
            assert_eq!(writes, 1, "{op}: written again on the way out: {ops:?}");
            assert!(r.set_cookies().is_empty(), "{r:?}");
        }
        if op == "create" {
            assert!(store.inner.is_empty(), "an orphan record was created");
        }
    }
}

// SECURITY I43: named sessions: `auth` is cycled, then `prefs`' save fails;
// the error response still carries auth's new cookie, so the browser does
// not keep the deleted one.
#[tokio::test]
async fn a_failed_save_of_one_named_session_keeps_the_others_cookie() {
    let store = TestStore::new(MemoryStore::new());
    let layer = SessionLayer::many(store.clone(), key(), ["auth", "prefs"]).unwrap();
    let app = Router::new()
        .route(
            "/start",
            get(|s: Sessions| async move {
                s.get("auth").await.unwrap().set("user", "ada").unwrap();
                s.get("prefs").await.unwrap().set("theme", "dark").unwrap();
            }),
        )
        .route(
            "/login",
            get(|s: Sessions| async move {
                s.get("auth").await.unwrap().cycle_id().unwrap();
                s.get("prefs").await.unwrap().set("theme", "light").unwrap();
            }),
        )
        .route(
            "/whoami",
            get(|s: Sessions| async move {
                let user: Option<String> = s.get("auth").await.unwrap().get("user").unwrap();
                user.unwrap_or_default()
            }),
        )
        .layer(layer);
    let r = call(&app, "/start", None).await;
    let (auth, prefs) = (r.cookie("auth").unwrap(), r.cookie("prefs").unwrap());
    store.fail_on("update", Fail::Unavailable);
    let r = get_with(&app, "/login", &[&format!("{auth}; {prefs}")]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let new_auth = r
        .cookie("auth")
        .expect("auth was saved: its cookie must go out");
    assert_ne!(new_auth, auth);
    assert!(r.cookie("prefs").is_none(), "prefs was not saved: {r:?}");
    store.heal();
    let r = get_with(&app, "/whoami", &[&format!("{new_auth}; {prefs}")]).await;
    assert_eq!(r.body, "ada", "logged out by the other session's failure");
}

// Expiry::OnInactivity(Duration::MAX) builds and never panics; the lifetime
// is capped at MAX_LIFETIME, per layer and per session.
#[tokio::test]
async fn huge_expiries_are_capped_not_a_panic() {
    let (_clock, _store, app) = clocked(Expiry::OnInactivity(Duration::MAX));
    let r = call(&app, "/incr", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let cap = MAX_LIFETIME.as_secs().to_string();
    assert_eq!(
        attr(&r.set_cookie("__Host-id").unwrap(), "Max-Age"),
        Some(cap.as_str())
    );
    let cookie = r.cookie("__Host-id").unwrap();
    let r = call(&app, "/huge", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        attr(&r.set_cookie("__Host-id").unwrap(), "Max-Age"),
        Some(cap.as_str())
    );
    let r = call(&app, "/read", Some(&r.cookie("__Host-id").unwrap())).await;
    assert_eq!(r.body, "Some(1)");
}

// SECURITY I44: a record that exists but cannot be decoded is no session: an
// ERROR, the record deleted, a fresh session the handler can use.
#[tokio::test(flavor = "current_thread")]
async fn an_unreadable_record_is_no_session() {
    let store = TestStore::new(MemoryStore::new());
    let app = routes().layer(SessionLayer::new(store.clone(), key()));
    let cookie = call(&app, "/incr", None).await.cookie("__Host-id").unwrap();
    store.fail_on("load", Fail::Unreadable);
    store.take_ops();
    let (logs, _g) = Logs::capture();
    let r = call(&app, "/read", Some(&cookie)).await;
    store.heal();
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "None"));
    assert!(is_removal(&r.set_cookie("__Host-id").unwrap()), "{r:?}");
    assert_eq!(store.take_ops(), vec!["load", "delete"]);
    assert!(logs.text().contains("ERROR"), "{}", logs.text());
    assert!(store.inner.is_empty());
    // Logging in again works at once.
    let r = call(&app, "/incr", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.cookie("__Host-id").unwrap(), cookie);
}

// SECURITY I44: a rejected cookie gets one removal; the browser drops it and
// later requests are quiet.
#[tokio::test]
async fn a_rejected_cookie_is_removed_once() {
    let (_clock, store, app) = clocked(Expiry::default());
    let r = call(&app, "/untouched", Some("__Host-id=forged.value")).await;
    assert!(is_removal(&r.set_cookie("__Host-id").unwrap()), "{r:?}");
    assert!(
        store.take_ops().is_empty(),
        "no store I/O for a forged cookie"
    );
    let r = call(&app, "/untouched", None).await;
    assert!(r.set_cookies().is_empty());
}

// SECURITY D21: with duplicate cookie names, a verifying cookie whose record
// is gone does not shadow the live session after it.
#[tokio::test]
async fn a_dead_duplicate_does_not_shadow_the_live_session() {
    let (_clock, _store, app) = clocked(Expiry::default());
    let dead = call(&app, "/incr", None).await.cookie("__Host-id").unwrap();
    call(&app, "/destroy", Some(&dead)).await;
    let live = call(&app, "/incr", None).await.cookie("__Host-id").unwrap();
    let r = get_with(&app, "/read", &[&format!("{dead}; {live}")]).await;
    assert_eq!(r.body, "Some(1)", "the dead duplicate won");
    assert!(r.set_cookies().is_empty(), "nothing to write: {r:?}");
    let r = get_with(&app, "/read", &[&dead, &live]).await;
    assert_eq!(r.body, "Some(1)", "across header lines too");
}

// Refresh::OnEveryRequest extends a session on a request that never extracts
// it; the default writes nothing then.
#[tokio::test]
async fn refresh_on_every_request_touches_untouched_sessions() {
    for every in [false, true] {
        let store = TestStore::new(MemoryStore::new());
        let mut b =
            SessionLayer::builder(store.clone(), key()).with_expiry(Expiry::OnInactivity(HOUR));
        if every {
            b = b.with_refresh(Refresh::OnEveryRequest);
        }
        let app = routes().layer(b.build().unwrap());
        let cookie = call(&app, "/incr", None).await.cookie("__Host-id").unwrap();
        store.take_ops();
        let r = call(&app, "/untouched", Some(&cookie)).await;
        if every {
            assert_eq!(store.take_ops(), vec!["touch"]);
            assert_eq!(
                attr(&r.set_cookie("__Host-id").unwrap(), "Max-Age"),
                Some("3600")
            );
        } else {
            assert!(store.take_ops().is_empty());
            assert!(r.set_cookies().is_empty());
        }
    }
}

// The getters: status through a request, expiry policy and deadline.
#[tokio::test]
async fn status_and_expiry_are_visible_to_handlers() {
    let (_clock, _store, app) = clocked(Expiry::OnInactivity(HOUR));
    let r = call(&app, "/status", None).await;
    let expected = format!(
        "{:?} {:?} {:?} {:?}",
        SessionStatus::Unchanged,
        SessionStatus::Changed,
        SessionStatus::Renewed,
        SessionStatus::Ended
    );
    assert_eq!(r.body, expected);

    let app = Router::new()
        .route(
            "/",
            get(|s: Session| async move {
                let before = s.expires_at();
                s.set_expiry(Expiry::OnInactivity(5 * MIN));
                s.set("a", 1).unwrap();
                s.save().await.unwrap();
                format!(
                    "{} {:?} {:?}",
                    before.is_none(),
                    s.expiry(),
                    s.expires_at().is_some()
                )
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new(), key()));
    let r = call(&app, "/", None).await;
    assert_eq!(
        r.body,
        format!("true {:?} true", Expiry::OnInactivity(5 * MIN))
    );
}

// SECURITY I40: the CSRF token is rotated when the id is cycled: a token
// known before the login is refused after it; the new one works.
#[tokio::test]
async fn cycle_id_rotates_the_csrf_token() {
    use axum::body::Body;
    use axum::http::{header, Request};
    use axum::routing::post;
    use sessio::csrf::{csrf_token, CsrfLayer, HEADER};

    let app = Router::new()
        .route(
            "/token",
            get(|s: Session| async move { csrf_token(&s).unwrap() }),
        )
        .route(
            "/login",
            post(|s: Session| async move {
                s.cycle_id().unwrap();
                s.set("user", "ada").unwrap();
                "in"
            }),
        )
        .route("/action", post(|| async { "done" }))
        .layer(CsrfLayer::new())
        .layer(SessionLayer::new(MemoryStore::new(), key()));
    let post_with = |path: &str, cookie: &str, token: &str| {
        Request::post(path)
            .header(header::COOKIE, cookie)
            .header(HEADER, token)
            .body(Body::empty())
            .unwrap()
    };
    // An anonymous visitor: the secret rides in the companion cookie.
    let r = call(&app, "/token", None).await;
    assert!(
        r.cookie("__Host-id").is_none(),
        "a token alone stores no session"
    );
    let (anon, before) = (r.cookie("__Host-id-csrf").unwrap(), r.body);
    let r = send(&app, post_with("/action", &anon, &before)).await;
    assert_eq!(r.status, StatusCode::OK, "the token works before the login");

    let r = send(&app, post_with("/login", &anon, &before)).await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.cookie("__Host-id").unwrap();
    let both = format!("{cookie}; {anon}");
    let r = send(&app, post_with("/action", &both, &before)).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the pre-login token still works"
    );

    // A session that had a token before the login: rotated too.
    let after = call(&app, "/token", Some(&cookie)).await.body;
    let r = send(&app, post_with("/action", &cookie, &after)).await;
    assert_eq!(r.status, StatusCode::OK, "the new token is refused");
    let r = send(&app, post_with("/login", &cookie, &after)).await;
    let cookie = r.cookie("__Host-id").unwrap();
    let r = send(&app, post_with("/action", &cookie, &after)).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the token survived a second login"
    );
}

// SECURITY J47: a hundred forged cookies of the session's name cost a few
// verifications and one WARN, and do not hide a good cookie among the first.
#[tokio::test(flavor = "current_thread")]
async fn many_forged_cookies_are_verified_a_few_at_most() {
    let (_clock, _store, app) = clocked(Expiry::default());
    let good = call(&app, "/incr", None).await.cookie("__Host-id").unwrap();
    let forged = format!("__Host-id={}.{}", "A".repeat(4000), "B".repeat(43));
    let mut header = vec![good.clone()];
    header.extend(std::iter::repeat_n(forged, 90));
    let (logs, _g) = Logs::capture();
    let r = get_with(&app, "/read", &[&header.join("; ")]).await;
    assert_eq!(r.body, "Some(1)");
    let text = logs.text();
    let warns: Vec<_> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warns.len(), 1, "{text}");
    assert!(warns[0].contains("skipped=88"), "{text}");

    // Forged ones first: three are tried, the rest skipped unread, one WARN
    // (a good cookie behind them is skipped too: the documented price).
    header.rotate_left(1);
    let (logs, _g) = Logs::capture();
    let r = get_with(&app, "/read", &[&header.join("; ")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = logs.text();
    let warns: Vec<_> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warns.len(), 1, "{text}");
    assert!(
        warns[0].contains("rejected=3") && warns[0].contains("skipped=88"),
        "{text}"
    );
}

// SECURITY J48: flash lists are capped per category; the newest are kept.
#[tokio::test]
async fn flash_lists_keep_the_newest_few() {
    let (_clock, _store, app) = clocked(Expiry::default());
    let mut cookie = call(&app, "/flash?v=0", None)
        .await
        .cookie("__Host-id")
        .unwrap();
    for i in 1..40 {
        cookie = call(&app, &format!("/flash?v={i}"), Some(&cookie))
            .await
            .cookie("__Host-id")
            .unwrap_or(cookie);
    }
    let r = call(&app, "/flashes", Some(&cookie)).await;
    let got: Vec<&str> = r.body.split(',').collect();
    assert_eq!(got.len(), sessio::MAX_FLASHES);
    assert_eq!(got.first(), Some(&"8"));
    assert_eq!(got.last(), Some(&"39"));
}
