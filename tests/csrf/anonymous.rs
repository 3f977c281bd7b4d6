//! Visitors without a session: their CSRF secret rides in a signed companion
//! cookie, so a login page stores nothing.

use super::*;

fn anon_app(store: TestStore) -> Router {
    Router::new()
        .route(
            "/login",
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
        .route(
            "/cart",
            post(|s: Session| async move {
                s.set("cart", "apple").unwrap();
                "added"
            }),
        )
        .route("/echo", post(echo))
        .layer(CsrfLayer::new())
        .layer(SessionLayer::new(store, key()))
}

fn post_with(path: &str, cookie: Option<&str>, token: &str) -> Request<Body> {
    let mut req = Request::post(path).header("x-csrf-token", token);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    req.body(Body::empty()).unwrap()
}

// SECURITY J46: anonymous visits to a page that renders a CSRF token store no
// session: 20,000 of them leave the store empty (memory flat), and each
// token works with its own companion cookie only.
#[tokio::test]
async fn anonymous_login_pages_store_nothing() {
    let store = TestStore::new(MemoryStore::new());
    let app = anon_app(store.clone());
    for _ in 0..20_000 {
        let r = send(&app, Request::get("/login").body(Body::empty()).unwrap()).await;
        assert!(r.cookie("__Host-id").is_none());
        assert!(r.cookie("__Host-id-csrf").is_some());
    }
    assert!(
        store.inner.is_empty(),
        "{} sessions stored",
        store.inner.len()
    );
    assert!(store.take_ops().is_empty(), "no store I/O at all");

    let r = send(&app, Request::get("/login").body(Body::empty()).unwrap()).await;
    let (anon, token) = (r.cookie("__Host-id-csrf").unwrap(), r.body);
    let other = send(&app, Request::get("/login").body(Body::empty()).unwrap()).await;
    let ok = send(&app, post_with("/echo", Some(&anon), &token)).await;
    assert_eq!(ok.status, StatusCode::OK);
    let foreign = other.cookie("__Host-id-csrf").unwrap();
    let r = send(&app, post_with("/echo", Some(&foreign), &token)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "another visitor's cookie");
    let r = send(&app, post_with("/echo", None, &token)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no cookie");
    let forged = format!(
        "__Host-id-csrf={}",
        &anon["__Host-id-csrf=".len()..].replace('A', "B")
    );
    let r = send(&app, post_with("/echo", Some(&forged), &token)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a forged companion cookie");
}

// At login the session takes over with its own secret (the pre-login token
// is refused after it) and the companion cookie is removed. A session stored
// without a login keeps the token the page was rendered with.
#[tokio::test]
async fn a_stored_session_takes_over_from_the_companion_cookie() {
    let app = anon_app(TestStore::new(MemoryStore::new()));
    let r = send(&app, Request::get("/login").body(Body::empty()).unwrap()).await;
    let (anon, token) = (r.cookie("__Host-id-csrf").unwrap(), r.body);
    let r = send(&app, post_with("/login", Some(&anon), &token)).await;
    assert_eq!(r.status, StatusCode::OK);
    let session = r.cookie("__Host-id").expect("logged in");
    let removal = r.set_cookie("__Host-id-csrf").expect("companion removed");
    assert!(
        removal.starts_with("__Host-id-csrf=; Max-Age=0"),
        "{removal}"
    );
    let both = format!("{session}; {anon}");
    let r = send(&app, post_with("/echo", Some(&both), &token)).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "pre-login token after login"
    );

    // Adding to a cart in the same request that made the token: the session
    // adopts it, so the page's form keeps working.
    let app = Router::new()
        .route(
            "/page",
            get(|s: Session| async move {
                let token = csrf_token(&s).unwrap();
                s.set("seen", true).unwrap();
                token
            }),
        )
        .route("/echo", post(echo))
        .layer(CsrfLayer::new())
        .layer(SessionLayer::new(MemoryStore::new(), key()));
    let r = send(&app, Request::get("/page").body(Body::empty()).unwrap()).await;
    assert!(r.cookie("__Host-id-csrf").is_none(), "{r:?}");
    let (session, token) = (r.cookie("__Host-id").unwrap(), r.body);
    let r = send(&app, post_with("/echo", Some(&session), &token)).await;
    assert_eq!(r.status, StatusCode::OK);
}
