//! The CSRF layer driving a real axum router.

#[path = "csrf/anonymous.rs"]
mod anonymous;
mod common;
#[path = "csrf/masking.rs"]
mod masking;
#[path = "csrf/rejection.rs"]
mod rejection;

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Form;
use axum::http::{header, Method, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use common::{key, send, Fail, Reply, TestStore};
use http_body::Frame;
use sessio::csrf::{csrf_token, CsrfLayer, RejectionResponse, SkipPredicate, DEFAULT_BODY_LIMIT};
use sessio::{MemoryStore, Session, SessionLayer};

fn app_with<P: SkipPredicate<Body>, R: RejectionResponse<Body>>(csrf: CsrfLayer<P, R>) -> Router {
    app_on(csrf, MemoryStore::new())
}

fn app_on<P, R, St>(csrf: CsrfLayer<P, R>, store: St) -> Router
where
    P: SkipPredicate<Body>,
    R: RejectionResponse<Body>,
    St: sessio::Store + Clone,
{
    Router::new()
        .route(
            "/token",
            // A stored session (anonymous visitors are tests/csrf/anonymous.rs).
            get(|s: Session| async move {
                s.set("visited", true).unwrap();
                csrf_token(&s).unwrap()
            }),
        )
        .route(
            "/secret",
            get(|s: Session| async move {
                s.get::<String>(sessio::csrf::SESSION_KEY)
                    .unwrap()
                    .unwrap_or_default()
            }),
        )
        .route(
            "/echo",
            post(echo).put(echo).patch(echo).delete(echo).get(echo),
        )
        .route(
            "/form",
            post(|Form(f): Form<HashMap<String, String>>| async move {
                format!("{} {}", f["name"], f["csrf"].len())
            }),
        )
        .layer(csrf)
        .layer(SessionLayer::new(store, key()))
}

fn app() -> Router {
    app_with(CsrfLayer::new())
}

async fn echo(body: Bytes) -> Bytes {
    body
}

/// A new session: its cookie and its token.
async fn session(app: &Router) -> (String, String) {
    let reply = send(app, Request::get("/token").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);
    (
        reply.cookie("__Host-id").expect("a session cookie"),
        reply.body,
    )
}

fn request(method: Method, path: &str, cookie: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookie)
}

fn form(path: &str, cookie: &str, body: String) -> Request<Body> {
    request(Method::POST, path, cookie)
        .header(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body(Body::from(body))
        .unwrap()
}

fn assert_refused(reply: &Reply, status: StatusCode, words: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert!(reply.body.contains(words), "body: {:?}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

#[tokio::test]
async fn safe_methods_pass_without_a_token() {
    let app = app();
    for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
        let req = Request::builder()
            .method(method.clone())
            .uri("/echo")
            .body(Body::empty())
            .unwrap();
        let reply = send(&app, req).await;
        assert_ne!(reply.status, StatusCode::FORBIDDEN, "{method}");
    }
}

#[tokio::test]
async fn unsafe_methods_without_a_token_get_403() {
    let app = app();
    let (cookie, _) = session(&app).await;
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let req = request(method.clone(), "/echo", &cookie)
            .body(Body::from("data"))
            .unwrap();
        let reply = send(&app, req).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "missing CSRF token");
    }
    // Without any session either.
    let reply = send(&app, Request::post("/echo").body(Body::empty()).unwrap()).await;
    assert_refused(&reply, StatusCode::FORBIDDEN, "missing CSRF token");
}

#[tokio::test]
async fn a_wrong_token_gets_403() {
    let app = app();
    let (cookie, token) = session(&app).await;
    let mut wrong = token.clone().into_bytes();
    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    for bad in [wrong.as_str(), "", "short", &format!("{token}x")] {
        let req = request(Method::POST, "/echo", &cookie)
            .header("x-csrf-token", bad)
            .body(Body::empty())
            .unwrap();
        assert_refused(&send(&app, req).await, StatusCode::FORBIDDEN, "invalid");
        let reply = send(&app, form("/form", &cookie, format!("name=a&csrf={bad}"))).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "invalid");
    }
}

#[tokio::test]
async fn a_token_from_another_session_or_no_session_gets_403() {
    let app = app();
    let (_, token) = session(&app).await;
    let (other_cookie, _) = session(&app).await;
    let req = request(Method::POST, "/echo", &other_cookie)
        .header("x-csrf-token", &token)
        .body(Body::empty())
        .unwrap();
    assert_refused(&send(&app, req).await, StatusCode::FORBIDDEN, "invalid");
    let req = Request::post("/echo")
        .header("x-csrf-token", &token)
        .body(Body::empty())
        .unwrap();
    assert_refused(&send(&app, req).await, StatusCode::FORBIDDEN, "invalid");
}

#[tokio::test]
async fn the_header_token_is_accepted() {
    let app = app();
    let (cookie, token) = session(&app).await;
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let req = request(method.clone(), "/echo", &cookie)
            .header("x-csrf-token", &token)
            .body(Body::from("payload"))
            .unwrap();
        let reply = send(&app, req).await;
        assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.body);
        assert_eq!(reply.body, "payload");
    }
}

#[tokio::test]
async fn the_form_field_is_accepted_and_the_handler_gets_the_intact_body() {
    let app = app();
    let (cookie, token) = session(&app).await;
    let body = format!("name=J%C3%BCrgen+M&csrf={token}&x=%26%3D");
    let reply = send(&app, form("/echo", &cookie, body.clone())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, body, "the handler saw a different body");
    // axum's Form extractor still works behind the layer.
    let reply = send(&app, form("/form", &cookie, body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, "Jürgen M 86");
}

#[tokio::test]
async fn json_and_multipart_bodies_pass_with_the_header_token() {
    let app = app();
    let (cookie, token) = session(&app).await;
    let json = r#"{"csrf":"not looked at","n":1}"#;
    let multipart =
        "--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nhello\r\n--XyZ--\r\n";
    for (ctype, body) in [
        ("application/json", json),
        ("multipart/form-data; boundary=XyZ", multipart),
    ] {
        let req = request(Method::POST, "/echo", &cookie)
            .header(header::CONTENT_TYPE, ctype)
            .header("x-csrf-token", &token)
            .body(Body::from(body))
            .unwrap();
        let reply = send(&app, req).await;
        assert_eq!(reply.status, StatusCode::OK, "{ctype}: {}", reply.body);
        assert_eq!(reply.body, body);
        // Without the header, a token in a non-form body is not looked for.
        let req = request(Method::POST, "/echo", &cookie)
            .header(header::CONTENT_TYPE, ctype)
            .body(Body::from(format!("csrf={token}")))
            .unwrap();
        let reply = send(&app, req).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "missing CSRF token");
    }
}

/// A body that never ends and declares no length.
struct Endless;

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'a'; 4096])))))
    }
}

#[tokio::test]
async fn a_form_body_over_the_limit_gets_413() {
    let app = app_with(CsrfLayer::new().with_body_limit(1024));
    let (cookie, token) = session(&app).await;
    let big = format!("csrf={token}&pad={}", "a".repeat(2000));
    // Declared length over the limit.
    let reply = send(&app, form("/echo", &cookie, big)).await;
    assert_refused(&reply, StatusCode::PAYLOAD_TOO_LARGE, "too large");
    // No declared length, and a body that never ends: 413, not a hang.
    let req = request(Method::POST, "/echo", &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::new(Endless))
        .unwrap();
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), send(&app, req))
        .await
        .expect("the layer hung on an endless body");
    assert_refused(&reply, StatusCode::PAYLOAD_TOO_LARGE, "too large");
    // Just under the limit is fine.
    let fits = format!("csrf={token}&pad={}", "a".repeat(1024 - 96));
    assert_eq!(fits.len(), 1024);
    let reply = send(&app, form("/echo", &cookie, fits)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn the_default_limit_is_64_kib_and_the_header_token_skips_buffering() {
    assert_eq!(DEFAULT_BODY_LIMIT, 64 * 1024);
    let app = app_with(CsrfLayer::new().with_body_limit(16));
    let (cookie, token) = session(&app).await;
    let big = "a".repeat(100_000);
    let req = request(Method::POST, "/echo", &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-csrf-token", &token)
        .body(Body::from(big.clone()))
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), big.len());
}

#[tokio::test]
async fn the_skip_predicate_lets_matching_requests_through() {
    let app = app_with(
        CsrfLayer::new()
            .with_insecure_bypass(|req: &Request<Body>| req.headers().contains_key("x-webhook")),
    );
    let req = Request::post("/echo")
        .header("x-webhook", "1")
        .body(Body::from("hook"))
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "hook");
    let reply = send(&app, Request::post("/echo").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn different_sessions_get_different_tokens() {
    let app = app();
    let (a_cookie, a) = session(&app).await;
    let (b_cookie, b) = session(&app).await;
    assert_ne!(a_cookie, b_cookie);
    assert_ne!(a, b);
}

#[tokio::test]
async fn without_a_session_layer_the_answer_names_the_problem() {
    let app: Router = Router::new()
        .route("/echo", post(echo))
        .layer(CsrfLayer::new());
    let req = Request::post("/echo")
        .header("x-csrf-token", "A".repeat(43))
        .body(Body::empty())
        .unwrap();
    let reply = send(&app, req).await;
    assert_refused(
        &reply,
        StatusCode::INTERNAL_SERVER_ERROR,
        "missing session layer",
    );
}

#[tokio::test]
async fn a_store_failure_during_the_check_is_the_session_layers_503() {
    let store = TestStore::new(MemoryStore::new());
    let app = app_on(CsrfLayer::new(), store.clone());
    let (cookie, token) = session(&app).await;
    store.fail_on("load", Fail::Unavailable);
    let req = request(Method::POST, "/echo", &cookie)
        .header("x-csrf-token", &token)
        .body(Body::empty())
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn a_named_session_can_hold_the_token() {
    let app = Router::new()
        .route(
            "/token",
            get(|s: sessio::Sessions| async move {
                let auth = s.get("auth").await.unwrap();
                auth.set("visited", true).unwrap();
                csrf_token(&auth).unwrap()
            }),
        )
        .route("/echo", post(echo))
        .layer(CsrfLayer::new().with_session("auth"))
        .layer(SessionLayer::many(MemoryStore::new(), key(), ["cart", "auth"]).unwrap());
    let reply = send(&app, Request::get("/token").body(Body::empty()).unwrap()).await;
    let cookie = reply.cookie("auth").expect("the auth session is set");
    let req = request(Method::POST, "/echo", &cookie)
        .header("x-csrf-token", &reply.body)
        .body(Body::from("ok"))
        .unwrap();
    assert_eq!(send(&app, req).await.body, "ok");
}
