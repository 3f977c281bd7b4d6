//! A small axum app behind a `SessionLayer`, and a client for it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sessio::{Session, SessionLayer, Store};
use tokio::sync::Barrier;
use tower::ServiceExt;

/// The routes:
/// - `/untouched`: never extracts the session;
/// - `/read/{key}`: the value's JSON, or `none`;
/// - `/set/{key}/{value}`: sets a string value;
/// - `/incr`: counts under `n`, answering the old count;
/// - `/logout`: destroys the session;
/// - `/gated-set/{key}/{value}`: loads, meets the gate twice, then sets.
pub fn app<St: Store>(layer: SessionLayer<St>, gate: Arc<Barrier>) -> Router {
    Router::new()
        .route("/untouched", get(|| async { "untouched" }))
        .route("/read/{key}", get(read))
        .route("/set/{key}/{value}", get(set))
        .route("/incr", get(incr))
        .route("/logout", get(|s: Session| async move { s.destroy() }))
        .route("/gated-set/{key}/{value}", get(gated_set))
        .with_state(gate)
        .layer(layer)
}

async fn read(session: Session, Path(key): Path<String>) -> String {
    match session.get::<Value>(&key).expect("get") {
        Some(v) => v.to_string(),
        None => "none".to_owned(),
    }
}

async fn set(session: Session, Path((key, value)): Path<(String, String)>) {
    session.set(&key, value).expect("set");
}

async fn incr(session: Session) -> String {
    let n: u64 = session.get("n").expect("get").unwrap_or(0);
    session.set("n", n + 1).expect("set");
    n.to_string()
}

async fn gated_set(
    State(gate): State<Arc<Barrier>>,
    session: Session,
    Path((key, value)): Path<(String, String)>,
) {
    gate.wait().await;
    gate.wait().await;
    session.set(&key, value).expect("set");
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    /// The `name=value` pair of the first `Set-Cookie`, if any.
    pub cookie: Option<String>,
    pub headers: http::HeaderMap,
}

impl Reply {
    pub fn is_removal(&self) -> bool {
        self.cookie.as_deref().is_some_and(|c| c.ends_with('='))
    }
}

/// Sends `GET path` with an optional `Cookie` header.
pub async fn send(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::builder().uri(path);
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let res = app
        .clone()
        .oneshot(req.body(axum::body::Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        body: String::from_utf8_lossy(&body).into_owned(),
        cookie: parts.headers.get(SET_COOKIE).map(|v| {
            let v = v.to_str().expect("ascii");
            v.split(';').next().unwrap_or("").to_owned()
        }),
        headers: parts.headers,
    }
}
