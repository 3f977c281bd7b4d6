//! Session-bound CSRF tokens and a layer that checks them (feature `csrf`).
//!
//! Each session gets one secret token, made on first use by [`csrf_token`] and
//! kept in the session under a reserved key. Pages put it in their forms (a
//! hidden field named `csrf`) or scripts send it in the `x-csrf-token` header.
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
//! | outcome | status | body |
//! |---|---|---|
//! | no token in the header or the form | 403 | `missing CSRF token ...` |
//! | token does not match the session's | 403 | `invalid CSRF token ...` |
//! | form body over the limit | 413 | `request body too large ...` |
//! | body could not be read | 400 | `could not read the request body` |
//! | no `SessionLayer` around the layer | 500 | names the problem |
//!
//! Tokens are compared in constant time. A session with no token yet (never
//! rendered a form) has nothing to match, so its unsafe requests are refused.
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
//! Customised: a larger form limit, the token kept in a named session, and
//! requests skipped by a predicate (hertz's `csrf.WithNext`), here a webhook
//! that authenticates by its own signature:
//!
//! ```
//! use axum::body::Body;
//! use axum::http::Request;
//! use sessio::csrf::CsrfLayer;
//!
//! let layer = CsrfLayer::new()
//!     .with_body_limit(1024 * 1024)
//!     .with_session("auth")
//!     .skip_if(|req: &Request<Body>| req.uri().path().starts_with("/webhooks/"));
//! # let _ = layer;
//! ```

use base64::Engine as _;
use rand::RngCore;

use crate::error::Error;
use crate::session::Session;

mod layer;
mod reject;
mod service;

mod future;
pub use future::ResponseFuture;
pub use layer::{CsrfLayer, NeverSkip, SkipPredicate};
pub use service::CsrfService;

/// The request header that carries the token.
pub const HEADER: &str = "x-csrf-token";

/// The urlencoded form field that carries the token.
pub const FORM_FIELD: &str = "csrf";

/// The session key the token is kept under; treat it as reserved.
pub const SESSION_KEY: &str = "_csrf";

/// The default limit for buffering a form body: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Length of a token: 32 random bytes in base64url without padding.
const TOKEN_LEN: usize = 43;

/// The session's CSRF token, made and stored in the session on first use.
///
/// The same session gets the same token on every request until it is
/// destroyed or cleared; [`Session::cycle_id`] keeps it. The session must be
/// loaded (the axum extractor does that), or this fails with
/// [`Error::NotLoaded`].
///
/// ```
/// # async fn demo(session: sessio::Session) -> Result<(), sessio::Error> {
/// use sessio::csrf::csrf_token;
///
/// let token = csrf_token(&session)?;
/// assert_eq!(token, csrf_token(&session)?);
/// # Ok(()) }
/// ```
pub fn csrf_token(session: &Session) -> Result<String, Error> {
    if let Some(token) = stored_token(session)? {
        return Ok(token);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    session.set(SESSION_KEY, &token)?;
    Ok(token)
}

/// The token kept in a loaded session, if it holds a well-formed one.
fn stored_token(session: &Session) -> Result<Option<String>, Error> {
    // A value of the wrong shape under the reserved key is treated as absent,
    // so `csrf_token` replaces it instead of failing forever.
    let token = match session.get::<String>(SESSION_KEY) {
        Ok(token) => token,
        Err(Error::Deserialize(_)) => None,
        Err(err) => return Err(err),
    };
    Ok(token.filter(|t| is_well_formed(t)))
}

fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Constant-time comparison of a submitted token with the session's.
fn tokens_match(expected: &str, given: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    // Lengths are public (every token has 43 characters); only the contents
    // must not leak through timing.
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        let t = "A".repeat(TOKEN_LEN);
        assert!(tokens_match(&t, t.as_bytes()));
        assert!(!tokens_match(&t, "B".repeat(TOKEN_LEN).as_bytes()));
        assert!(!tokens_match(&t, &t.as_bytes()[..TOKEN_LEN - 1]));
        assert!(!tokens_match(&t, b""));
    }

    #[test]
    fn well_formed_tokens_are_43_base64url_characters() {
        assert!(is_well_formed(&"a-_0".repeat(11)[..TOKEN_LEN]));
        assert!(!is_well_formed(&"a".repeat(TOKEN_LEN - 1)));
        assert!(!is_well_formed(&format!("{}=", "a".repeat(TOKEN_LEN - 1))));
    }
}
