//! The public rejection, a replaced refusal response, and what an unchecked
//! request costs.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use sessio::csrf::{CsrfLayer, CsrfRejection};
use sessio::{MemoryStore, SessionLayer};
use tower::{Layer, Service, ServiceExt};

use crate::common::{key, send};
use crate::{app, app_with, echo, request, session};

#[test]
fn each_rejection_has_a_status_and_a_plain_body() {
    use CsrfRejection::*;
    let cases = [
        (MissingToken, 403, "missing CSRF token"),
        (InvalidToken, 403, "invalid CSRF token"),
        (NoSessionToken, 403, "invalid CSRF token"),
        (BodyTooLarge, 413, "request body too large"),
        (UnreadableBody, 400, "could not read the request body"),
        (NoSessionLayer, 500, "missing session layer"),
        (SessionLoadFailed, 500, ""),
    ];
    for (rejection, status, text) in cases {
        assert_eq!(rejection.status().as_u16(), status, "{rejection:?}");
        assert!(rejection.body_text().starts_with(text), "{rejection:?}");
        let shown = rejection.to_string();
        assert!(
            !shown.is_empty() && !shown.ends_with(['.', '\n']),
            "{shown:?}"
        );
        let res: Response<String> = rejection.into_response();
        assert_eq!(res.status().as_u16(), status);
        assert_eq!(res.body(), rejection.body_text());
        assert_eq!(res.extensions().get::<CsrfRejection>(), Some(&rejection));
    }
}

#[tokio::test]
async fn the_layers_refusals_carry_their_rejection() {
    let app = app();
    let (cookie, _) = session(&app).await;
    let refusals = [
        (
            Request::post("/echo").body(Body::empty()).unwrap(),
            CsrfRejection::MissingToken,
        ),
        (
            request(Method::POST, "/echo", &cookie)
                .header("x-csrf-token", "forged")
                .body(Body::empty())
                .unwrap(),
            CsrfRejection::InvalidToken,
        ),
    ];
    for (req, want) in refusals {
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), want.status());
        assert_eq!(res.extensions().get::<CsrfRejection>(), Some(&want));
    }
}

fn our_page(rejection: &CsrfRejection) -> Response<Body> {
    let body = format!("<p>Please reload the form ({rejection:?})</p>");
    let mut res = (StatusCode::UNPROCESSABLE_ENTITY, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, "text/html".parse().unwrap());
    res
}

#[tokio::test]
async fn a_custom_rejection_response_replaces_the_default() {
    let app = app_with(CsrfLayer::new().with_rejection_response(our_page));
    let (cookie, token) = session(&app).await;
    let reply = send(&app, Request::post("/echo").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body, "<p>Please reload the form (MissingToken)</p>");
    assert_eq!(reply.header("content-type"), Some("text/html"));
    let req = request(Method::POST, "/echo", &cookie)
        .header("x-csrf-token", token.replace(|c: char| c != 'A', "A"))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        res.extensions().get::<CsrfRejection>(),
        Some(&CsrfRejection::InvalidToken)
    );
    // Accepted requests are not affected.
    let req = request(Method::POST, "/echo", &cookie)
        .header("x-csrf-token", &token)
        .body(Body::from("ok"))
        .unwrap();
    assert_eq!(send(&app, req).await.body, "ok");
}

#[tokio::test]
async fn the_hook_is_told_which_rejection_it_answers() {
    let app: Router = Router::new()
        .route("/echo", post(echo))
        .layer(CsrfLayer::new().with_rejection_response(our_page));
    let req = Request::post("/echo")
        .header("x-csrf-token", "A".repeat(86))
        .body(Body::empty())
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.body, "<p>Please reload the form (NoSessionLayer)</p>");
}

/// An inner service that counts how often it is cloned.
struct Counted(Arc<AtomicUsize>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::SeqCst);
        Self(self.0.clone())
    }
}

impl Service<Request<Body>> for Counted {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        std::future::ready(Ok(Response::new(Body::from("inner"))))
    }
}

#[tokio::test]
async fn safe_and_skipped_requests_never_clone_the_inner_service() {
    let clones = Arc::new(AtomicUsize::new(0));
    let layer =
        CsrfLayer::new().with_insecure_bypass(|r: &Request<Body>| r.uri().path() == "/hook");
    let mut svc =
        SessionLayer::new(MemoryStore::new(), key()).layer(layer.layer(Counted(clones.clone())));
    let requests = [
        Request::get("/").body(Body::empty()).unwrap(),
        Request::head("/").body(Body::empty()).unwrap(),
        Request::options("/").body(Body::empty()).unwrap(),
        Request::builder()
            .method(Method::TRACE)
            .uri("/")
            .body(Body::empty())
            .unwrap(),
        Request::post("/hook").body(Body::empty()).unwrap(),
    ];
    for req in requests {
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(clones.load(Ordering::SeqCst), 0);
    // A checked request takes the ready service into its future.
    let req = Request::post("/").body(Body::empty()).unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(clones.load(Ordering::SeqCst), 1);
}
