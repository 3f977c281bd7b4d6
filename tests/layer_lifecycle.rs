//! What goes out on the way out, and the session lifecycle.

mod common;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use common::*;
use sessio::{MemoryStore, Session, SessionLayer, Sessions};

fn app(store: &TestStore) -> Router {
    routes().layer(SessionLayer::new(store.clone(), key()))
}

fn setup() -> (TestStore, Router) {
    let store = TestStore::new(MemoryStore::new());
    let app = app(&store);
    (store, app)
}

/// Starts a session with `n = 1` and returns its cookie pair.
async fn started(app: &Router) -> String {
    let r = call(app, "/incr", None).await;
    r.cookie("__Host-id")
        .expect("a new session with data sets a cookie")
}

// SECURITY B8: no Set-Cookie and no store I/O when the session was never touched.
#[tokio::test]
async fn untouched_session_writes_nothing() {
    let (store, app) = setup();
    let r = call(&app, "/untouched", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookies().is_empty());
    let cookie = started(&app).await;
    store.take_ops();
    let r = call(&app, "/untouched", Some(&cookie)).await;
    assert!(r.set_cookies().is_empty());
    assert!(store.ops().is_empty(), "store touched: {:?}", store.ops());
    assert!(r.header("cache-control").is_none());
}

#[tokio::test]
async fn new_session_without_data_is_not_stored() {
    let (store, app) = setup();
    let r = call(&app, "/read", None).await;
    assert_eq!(r.body, "None");
    assert!(r.set_cookies().is_empty());
    assert!(store.ops().is_empty(), "{:?}", store.ops());
}

#[tokio::test]
async fn read_only_session_loads_once_and_writes_nothing() {
    let (store, app) = setup();
    let cookie = started(&app).await;
    store.take_ops();
    let r = call(&app, "/read", Some(&cookie)).await;
    assert_eq!(r.body, "Some(1)");
    assert!(r.set_cookies().is_empty());
    assert_eq!(store.ops(), vec!["load"]);
}

// A change is one write. Before half the rolling window has passed it sends
// no cookie (the browser's still points at the record), and the response,
// made from the session, stays private (SECURITY J53).
#[tokio::test]
async fn changed_session_is_written_once() {
    let (store, app) = setup();
    let r = call(&app, "/incr", None).await;
    assert_eq!(r.body, "0");
    assert_eq!(store.take_ops(), vec!["create"]);
    let cookie = r.cookie("__Host-id").unwrap();
    let r = call(&app, "/incr", Some(&cookie)).await;
    assert_eq!(r.body, "1");
    assert_eq!(store.take_ops(), vec!["load", "update"]);
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    assert_eq!(r.header("cache-control"), Some("private"));
    assert_eq!(r.header("vary"), Some("Cookie"));
    let r = call(&app, "/read", Some(&cookie)).await;
    assert_eq!(r.body, "Some(2)");
}

#[tokio::test]
async fn setting_the_same_value_is_not_a_change() {
    let (store, app) = setup();
    let r = call(&app, "/set?k=a&v=x", None).await;
    let cookie = r.cookie("__Host-id").unwrap();
    store.take_ops();
    let r = call(&app, "/set?k=a&v=x", Some(&cookie)).await;
    assert!(r.set_cookies().is_empty());
    assert_eq!(store.ops(), vec!["load"]);
}

// SECURITY B9: no-store and Vary on responses that set the cookie.
#[tokio::test]
async fn responses_that_set_the_cookie_are_not_cached() {
    let (_, app) = setup();
    let r = call(&app, "/incr", None).await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("vary"), Some("Cookie"));
}

// SECURITY B9: the handler's own Cache-Control and Set-Cookie survive.
#[tokio::test]
async fn handler_headers_are_kept() {
    let app = Router::new()
        .route(
            "/",
            get(|s: Session| async move {
                s.set("a", 1).unwrap();
                (
                    [
                        ("cache-control", "private, max-age=0"),
                        ("set-cookie", "theme=dark; Path=/"),
                        ("vary", "Accept-Encoding"),
                    ],
                    "ok",
                )
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new(), key()));
    let r = call(&app, "/", None).await;
    assert_eq!(r.header("cache-control"), Some("private, max-age=0"));
    assert!(r.set_cookies().contains(&"theme=dark; Path=/".to_owned()));
    assert!(r.cookie("__Host-id").is_some());
    let vary: Vec<_> = r
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(vary, vec!["Accept-Encoding", "Cookie"]);
}

// SECURITY B7: cleared to empty → record deleted, removal cookie.
#[tokio::test]
async fn clear_deletes_record_and_removes_cookie() {
    let (store, app) = setup();
    let cookie = started(&app).await;
    store.take_ops();
    let r = call(&app, "/clear", Some(&cookie)).await;
    // SECURITY I38: sent as a diff; the store deletes the merged-empty record.
    assert_eq!(store.take_ops(), vec!["load", "update"]);
    let removal = r.set_cookie("__Host-id").unwrap();
    assert!(
        removal.starts_with("__Host-id=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
        "{removal}"
    );
    let r = call(&app, "/read", Some(&cookie)).await;
    assert_eq!(r.body, "None");
}

#[tokio::test]
async fn deleting_the_last_key_removes_the_session() {
    let (store, app) = setup();
    let r = call(&app, "/set?k=a&v=1", None).await;
    let cookie = r.cookie("__Host-id").unwrap();
    store.take_ops();
    let r = call(&app, "/delete?k=a", Some(&cookie)).await;
    assert_eq!(store.take_ops(), vec!["load", "update"]);
    assert_eq!(r.cookie("__Host-id").as_deref(), Some("__Host-id="));
    assert!(store.inner.is_empty(), "the emptied record is deleted");
}

// SECURITY E24: logout deletes the record and sends the removal cookie; the
// old cookie, replayed, gets a fresh empty session.
#[tokio::test]
async fn destroy_deletes_record_and_old_cookie_gets_fresh_session() {
    let (store, app) = setup();
    let cookie = started(&app).await;
    store.take_ops();
    let r = call(&app, "/destroy", Some(&cookie)).await;
    assert_eq!(store.take_ops(), vec!["load", "delete"]);
    assert_eq!(r.cookie("__Host-id").as_deref(), Some("__Host-id="));
    let r = call(&app, "/incr", Some(&cookie)).await;
    assert_eq!(r.body, "0", "replayed cookie reached old data");
    assert_ne!(
        r.cookie("__Host-id").unwrap(),
        cookie,
        "a fresh session gets a new id"
    );
}

// SECURITY E23: new id, data kept, old record deleted and unusable; a later
// write in the same request does not undo the rotation.
#[tokio::test]
async fn cycle_id_rotates_and_old_id_is_dead() {
    let (store, app) = setup();
    let old = started(&app).await;
    store.take_ops();
    let r = call(&app, "/cycle-then-set", Some(&old)).await;
    assert_eq!(store.take_ops(), vec!["load", "rotate"]);
    let new = r.cookie("__Host-id").unwrap();
    assert_ne!(new, old);
    assert_eq!(call(&app, "/read", Some(&new)).await.body, "Some(1)");
    assert_eq!(call(&app, "/read", Some(&old)).await.body, "None");
}

#[tokio::test]
async fn session_id_changes_on_cycle() {
    let app = Router::new()
        .route(
            "/",
            get(|s: Session| async move {
                let before = s.id();
                s.set("a", 1).unwrap();
                s.save().await.unwrap();
                let saved = s.id().unwrap();
                s.cycle_id().unwrap();
                s.save().await.unwrap();
                let after = s.id().unwrap();
                assert!(before.is_none());
                assert_ne!(saved, after);
                assert_eq!(saved.as_str().len(), 22);
                "ok"
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new(), key()));
    let r = call(&app, "/", None).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(r.set_cookies().len(), 1);
}

// The table: a handler that returned 5xx has nothing saved and no cookie.
#[tokio::test]
async fn server_error_response_saves_nothing() {
    let (store, app) = setup();
    let r = call(&app, "/fail", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.set_cookies().is_empty());
    assert!(store.ops().is_empty());
    let cookie = started(&app).await;
    store.take_ops();
    let r = call(&app, "/fail", Some(&cookie)).await;
    assert!(r.set_cookies().is_empty());
    assert_eq!(store.ops(), vec!["load"]);
    assert_eq!(call(&app, "/read", Some(&cookie)).await.body, "Some(1)");
}

// SECURITY E27: flashes are delivered exactly once.
#[tokio::test]
async fn flashes_are_delivered_exactly_once() {
    let (_, app) = setup();
    let cookie = started(&app).await;
    call(&app, "/flash?v=one", Some(&cookie)).await;
    call(&app, "/flash?v=two", Some(&cookie)).await;
    call(&app, "/flash?c=error&v=bad", Some(&cookie)).await;
    assert_eq!(call(&app, "/flashes", Some(&cookie)).await.body, "one,two");
    assert_eq!(call(&app, "/flashes", Some(&cookie)).await.body, "");
    assert_eq!(
        call(&app, "/flashes?c=error", Some(&cookie)).await.body,
        "bad"
    );
    assert_eq!(call(&app, "/flashes?c=error", Some(&cookie)).await.body, "");
    assert_eq!(call(&app, "/read", Some(&cookie)).await.body, "Some(1)");
}

// SECURITY E27: flashes are not lost when the request's save fails.
#[tokio::test]
async fn flashes_survive_a_failed_save() {
    let (store, app) = setup();
    let cookie = started(&app).await;
    call(&app, "/flash?v=keep", Some(&cookie)).await;
    store.fail_on("update", Fail::Unavailable);
    let r = call(&app, "/flashes", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.set_cookies().is_empty());
    store.heal();
    assert_eq!(call(&app, "/flashes", Some(&cookie)).await.body, "keep");
}

// SECURITY F30: two extractors of one session see one state, no deadlock.
#[tokio::test]
async fn two_extractors_share_one_state() {
    let store = TestStore::new(MemoryStore::new());
    let app = Router::new()
        .route(
            "/",
            get(|a: Session, b: Session| async move {
                a.set("x", 1).unwrap();
                let seen: Option<u32> = b.get("x").unwrap();
                format!("{seen:?}")
            }),
        )
        .layer(SessionLayer::new(store.clone(), key()));
    let cookie = call(&app, "/", None).await.cookie("__Host-id").unwrap();
    store.take_ops();
    let r = call(&app, "/", Some(&cookie)).await;
    assert_eq!(r.body, "Some(1)");
    assert_eq!(
        store.ops(),
        vec!["load"],
        "loaded once, unchanged value not rewritten"
    );
}

/// The layer's own save moves the data into the store instead of copying it
/// only when nothing else can reach the session: a handle the handler kept
/// (here, in shared state) still reads what was saved, for a new session and
/// for an update of an existing one, and a later save from it is a no-op.
#[tokio::test]
async fn a_session_kept_past_the_response_keeps_its_data() {
    use std::sync::{Arc, Mutex};
    let kept: Arc<Mutex<Option<Session>>> = Arc::default();
    let store = TestStore::new(MemoryStore::new());
    let slot = kept.clone();
    let app = Router::new()
        .route(
            "/",
            get(move |s: Session| {
                let slot = slot.clone();
                async move {
                    let n = s.get::<u32>("n").unwrap().unwrap_or(0);
                    s.set("n", n + 1).unwrap();
                    *slot.lock().unwrap() = Some(s);
                    n.to_string()
                }
            }),
        )
        .layer(SessionLayer::new(store.clone(), key()));
    let take = || {
        kept.lock()
            .unwrap()
            .take()
            .expect("the handler kept its session")
    };

    let cookie = call(&app, "/", None).await.cookie("__Host-id").unwrap();
    let s = take();
    assert_eq!(s.get::<u32>("n").unwrap(), Some(1), "new session");
    assert!(s.id().is_some(), "the kept handle knows the stored id");
    s.save().await.unwrap();

    store.take_ops();
    let r = call(&app, "/", Some(&cookie)).await;
    assert_eq!(r.body, "1");
    let s = take();
    assert_eq!(s.get::<u32>("n").unwrap(), Some(2), "updated session");
    s.save().await.unwrap();
    assert_eq!(
        store.ops(),
        vec!["load", "update"],
        "the kept handle had nothing left to save"
    );
    assert_eq!(call(&app, "/", Some(&cookie)).await.body, "2");
}

#[tokio::test]
async fn extractor_without_layer_is_a_named_500() {
    let app = Router::new().route("/", get(|_: Session| async { "unreachable" }));
    let r = call(&app, "/", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.contains("missing session layer"), "{}", r.body);
}

#[tokio::test]
async fn optional_extractor_without_layer_is_none() {
    let handler = |s: Option<Session>| async move { format!("{}", s.is_some()) };
    let bare = Router::new().route("/", get(handler));
    assert_eq!(call(&bare, "/", None).await.body, "false");
    let with = Router::new()
        .route("/", get(handler))
        .layer(SessionLayer::new(MemoryStore::new(), key()));
    assert_eq!(call(&with, "/", None).await.body, "true");
}

#[tokio::test]
async fn plain_tower_service_uses_request_extensions() {
    use axum::body::Body;
    use axum::http::{Request, Response};
    use tower::ServiceExt;
    let svc = tower::ServiceBuilder::new()
        .layer(SessionLayer::new(MemoryStore::new(), key()))
        .service_fn(|req: Request<Body>| async move {
            let s = req.extensions().get::<Session>().unwrap().clone();
            assert!(matches!(s.get::<u8>("x"), Err(sessio::Error::NotLoaded)));
            s.load().await?;
            s.set("x", 1)?;
            Ok::<_, sessio::Error>(Response::new(Body::empty()))
        });
    let res = svc.oneshot(Request::new(Body::empty())).await.unwrap();
    assert!(res.headers().contains_key("set-cookie"));
}

// gin's sessions.Many + DefaultMany: several named sessions, one cookie each.
#[tokio::test]
async fn named_sessions_have_their_own_cookies() {
    let layer = SessionLayer::many(MemoryStore::new(), key(), ["auth", "cart"]).unwrap();
    let app = Router::new()
        .route(
            "/",
            get(|all: Sessions, first: Session| async move {
                let auth = all.get("auth").await.unwrap();
                let cart = all.get("cart").await.unwrap();
                let n: u32 = cart.get("items").unwrap().unwrap_or(0);
                cart.set("items", n + 1).unwrap();
                auth.set("user", "ada").unwrap();
                assert_eq!(first.name(), "auth");
                assert!(all.get("nope").await.is_err());
                n.to_string()
            }),
        )
        .layer(layer);
    let r = call(&app, "/", None).await;
    let (auth, cart) = (r.cookie("auth").unwrap(), r.cookie("cart").unwrap());
    assert_eq!(r.set_cookies().len(), 2);
    let r = call(&app, "/", Some(&format!("{auth}; {cart}"))).await;
    assert_eq!(r.body, "1");
    // Cookies are bound to their names: swapping the values fails both.
    let swapped = format!("auth={}; cart={}", &cart[5..], &auth[5..]);
    let r = call(&app, "/", Some(&swapped)).await;
    assert_eq!(r.body, "0");
}

// Stacked layers with different stores, the way the `many` example does it.
#[tokio::test]
async fn stacked_layers_with_different_stores() {
    let app = Router::new()
        .route(
            "/",
            get(|all: Sessions| async move {
                let names: Vec<_> = all.iter().map(|s| s.name().to_owned()).collect();
                all.get("inner").await.unwrap().set("a", 1).unwrap();
                all.get("outer").await.unwrap().set("b", 2).unwrap();
                names.join(",")
            }),
        )
        .layer(
            SessionLayer::builder(MemoryStore::new(), key())
                .with_cookie_name("inner")
                .build()
                .unwrap(),
        )
        .layer(
            SessionLayer::builder(MemoryStore::new(), other_key())
                .with_cookie_name("outer")
                .build()
                .unwrap(),
        );
    let r = call(&app, "/", None).await;
    assert_eq!(r.body, "outer,inner");
    assert!(r.cookie("inner").is_some() && r.cookie("outer").is_some());
}

// SECURITY J53: a response that sets the session cookie is never cacheable
// by a shared cache: a handler's `public` becomes `private, no-store`. A
// response made from a loaded session is `private` and varies on Cookie,
// unless the layer is told otherwise.
#[tokio::test]
async fn session_responses_are_never_shared_cacheable() {
    let page = |write: bool| {
        get(move |s: Session| async move {
            if write {
                s.set("a", 1).unwrap();
            }
            let _ = s.get::<u64>("a");
            ([("cache-control", "public, max-age=600")], "page")
        })
    };
    for private in [true, false] {
        let app = Router::new()
            .route("/write", page(true))
            .route("/read", page(false))
            .route(
                "/plain",
                get(|s: Session| async move { format!("{:?}", s.get::<u64>("a")) }),
            )
            .layer(
                SessionLayer::builder(MemoryStore::new(), key())
                    .with_private_responses(private)
                    .build()
                    .unwrap(),
            );
        let r = call(&app, "/write", None).await;
        assert_eq!(r.header("cache-control"), Some("private, no-store"));
        let cookie = r.cookie("__Host-id").unwrap();
        let r = call(&app, "/read", Some(&cookie)).await;
        assert!(r.set_cookies().is_empty());
        let r2 = call(&app, "/plain", Some(&cookie)).await;
        if private {
            assert_eq!(r.header("cache-control"), Some("private"));
            assert_eq!(r.header("vary"), Some("Cookie"));
            assert_eq!(r2.header("cache-control"), Some("private"));
        } else {
            assert_eq!(r.header("cache-control"), Some("public, max-age=600"));
            assert_eq!(r2.header("cache-control"), None);
        }
        // No session data, nothing personal: the page stays cacheable.
        let r = call(&app, "/read", None).await;
        assert_eq!(r.header("cache-control"), Some("public, max-age=600"));
    }
}
