//! Session-bound CSRF tokens and a layer that checks them (feature `csrf`).
//!
//! Each session gets one secret, made on first use by [`csrf_token`] and kept
//! in the session under a reserved key ([`SESSION_KEY`]). The secret itself is
//! never rendered: every call of [`csrf_token`] returns it under a fresh
//! random mask (`base64url((secret XOR pad) ‖ pad)`, as Django and Rails do),
//! so no two pages carry the same token and a compression side channel such
//! as BREACH has no fixed string to recover. Pages put a token in their forms
//! (a hidden field named `csrf`) or scripts send one in the `x-csrf-token`
//! header; the layer unmasks it and compares the result with the session's
//! secret in constant time. Only masked tokens are accepted, in the header as
//! in the form: the bare secret, read from the session, is refused.
//!
//! A visitor who has no stored session yet (a login or register page) does
//! not get one just for a token: the secret then rides in a signed companion
//! cookie named after the session cookie with `-csrf` (`id-csrf`,
//! `__Host-id-csrf`), so rendering a form stores nothing and a flood of
//! anonymous visits costs no memory. When the session is first stored the
//! session's own secret takes over and the companion cookie is removed: a
//! secret made in that same request is carried into the session (the page's
//! forms keep working); at a login (`cycle_id`) it never is, so a token from
//! before the login is refused after it. A companion cookie sent by the
//! browser is carried into a session only under a `__Host-` name, which a
//! sibling subdomain cannot plant.
//!
//! [`CsrfLayer`], placed *inside* the [`SessionLayer`](crate::SessionLayer),
//! lets safe methods (GET, HEAD, OPTIONS, TRACE) through and checks every
//! other request (POST, PUT, PATCH, DELETE, ...):
//!
//! 1. an `x-csrf-token` header, when present, decides alone; the body is not
//!    read, so uploads and JSON bodies stream through untouched;
//! 2. otherwise an `application/x-www-form-urlencoded` body is buffered (up to
//!    a limit, 64 KiB by default), its `csrf` field checked, and the same bytes
//!    handed on to the handler, which can still use axum's `Form`;
//! 3. anything else is refused.
//!
//! | outcome | [`CsrfRejection`] | status | body |
//! |---|---|---|---|
//! | no token in the header or the form | `MissingToken` | 403 | `missing CSRF token ...` |
//! | token not rendered for this session | `InvalidToken` | 403 | `invalid CSRF token ...` |
//! | the session has no secret yet | `NoSessionToken` | 403 | `invalid CSRF token ...` |
//! | form body over the limit | `BodyTooLarge` | 413 | `request body too large ...` |
//! | body could not be read | `UnreadableBody` | 400 | `could not read the request body` |
//! | no `SessionLayer` around the layer | `NoSessionLayer` | 500 | names the problem |
//! | the session could not be loaded | `SessionLoadFailed` | the session layer's error response | |
//!
//! [`CsrfLayer::with_rejection_response`] replaces these responses. A
//! session with no secret yet (never rendered a form) has nothing to match,
//! so its unsafe requests are refused. Safe and skipped requests go straight
//! to the inner service: no clone of it and no allocation.
//!
//! # Example
//!
//! ```
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::response::Html;
//! use axum::routing::get;
//! use axum::Router;
//! use sessio::csrf::{csrf_token, CsrfLayer};
//! use sessio::{Key, MemoryStore, Session, SessionLayer};
//! use tower::ServiceExt;
//!
//! async fn form(session: Session) -> Result<Html<String>, sessio::Error> {
//!     let token = csrf_token(&session)?;
//!     Ok(Html(format!(
//!         r#"<form method="post"><input type="hidden" name="csrf" value="{token}">
//!            <button>Send</button></form>"#
//!     )))
//! }
//!
//! let app = Router::new()
//!     .route("/", get(form).post(|| async { "done" }))
//!     // Inner layer first: the CSRF check runs inside the session layer.
//!     .layer(CsrfLayer::new())
//!     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let forged = Request::post("/").body(Body::empty()).unwrap();
//! let res = app.oneshot(forged).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! # });
//! ```
//!
//! Customised: a larger form limit, the token kept in a named session,
//! requests skipped by a predicate (hertz's `csrf.WithNext`), here a webhook
//! that authenticates by its own signature, and a refusal page of our own:
//!
//! ```
//! use axum::body::Body;
//! use axum::http::Request;
//! use axum::response::{IntoResponse, Response};
//! use sessio::csrf::{CsrfLayer, CsrfRejection};
//!
//! let layer = CsrfLayer::new()
//!     .with_body_limit(1024 * 1024)
//!     .with_session("auth")
//!     .with_insecure_bypass(|req: &Request<Body>| req.uri().path().starts_with("/webhooks/"))
//!     .with_rejection_response(|r: &CsrfRejection| -> Response {
//!         (r.status(), "Please reload the form.").into_response()
//!     });
//! # let _ = layer;
//! ```

use http::Request;

mod future;
mod layer;
mod reject;
mod service;
mod token;

pub use future::ResponseFuture;
pub use layer::CsrfLayer;
pub use reject::{CsrfRejection, DefaultRejectionResponse, RejectionResponse};
pub use service::CsrfService;
pub use token::csrf_token;

/// The request header that carries the token.
pub const HEADER: &str = "x-csrf-token";

/// The urlencoded form field that carries the token.
pub const FORM_FIELD: &str = "csrf";

/// The session key the secret is kept under; treat it as reserved.
///
/// It holds the unmasked secret, as text. Removing the key (as
/// [`Session::cycle_id`](crate::Session::cycle_id) does) makes every token
/// rendered before invalid; the next [`csrf_token`] makes a new secret.
pub const SESSION_KEY: &str = "_csrf";

/// The default limit for buffering a form body: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Settings shared by every request through one layer.
#[derive(Clone, Debug)]
struct Config {
    body_limit: usize,
    /// The named session that holds the secret; `None` for the default one.
    session: Option<String>,
}

/// Decides which requests [`CsrfLayer`] lets through unchecked.
///
/// Implemented for every `Fn(&Request<B>) -> bool`; see
/// [`CsrfLayer::with_insecure_bypass`].
pub trait SkipPredicate<B>: Send + Sync + 'static {
    /// `true` to let the request through without a token check.
    fn skip(&self, req: &Request<B>) -> bool;
}

impl<B, F> SkipPredicate<B> for F
where
    F: Fn(&Request<B>) -> bool + Send + Sync + 'static,
{
    fn skip(&self, req: &Request<B>) -> bool {
        self(req)
    }
}

/// The default [`SkipPredicate`]: checks every unsafe request.
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverSkip;

impl<B> SkipPredicate<B> for NeverSkip {
    fn skip(&self, _: &Request<B>) -> bool {
        false
    }
}
