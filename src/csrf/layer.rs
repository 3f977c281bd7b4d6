//! [`CsrfLayer`], the builder of the CSRF check.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::service::CsrfService;
use super::{Config, DefaultRejectionResponse, NeverSkip, DEFAULT_BODY_LIMIT};

/// Checks CSRF tokens on unsafe requests; see the [module docs](super).
///
/// Place it inside the [`SessionLayer`](crate::SessionLayer): in axum,
/// `.layer(CsrfLayer::new())` comes *before* `.layer(SessionLayer::new(..))`.
#[must_use]
pub struct CsrfLayer<P = NeverSkip, R = DefaultRejectionResponse> {
    config: Arc<Config>,
    skip: Arc<P>,
    respond: Arc<R>,
}

impl CsrfLayer {
    /// A layer with the defaults: forms buffered up to
    /// [`DEFAULT_BODY_LIMIT`] (64 KiB), the token read from the default
    /// session, no request skipped, refusals answered by
    /// [`CsrfRejection::into_response`](super::CsrfRejection::into_response).
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                body_limit: DEFAULT_BODY_LIMIT,
                session: None,
            }),
            skip: Arc::new(NeverSkip),
            respond: Arc::new(DefaultRejectionResponse),
        }
    }
}

impl Default for CsrfLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<P, R> CsrfLayer<P, R> {
    /// The most bytes of an urlencoded form body read to find the token;
    /// larger bodies are answered with 413. Default 64 KiB. Requests that send
    /// the token in the header are not buffered at all.
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.config_mut().body_limit = limit;
        self
    }

    /// Keeps the token in the named session (a cookie name given to
    /// [`SessionLayer::many`](crate::SessionLayer::many) or a builder), which
    /// must also be the session passed to [`csrf_token`](super::csrf_token).
    /// Default: the session the [`Session`](crate::Session) extractor gives.
    pub fn with_session(mut self, name: impl Into<String>) -> Self {
        self.config_mut().session = Some(name.into());
        self
    }

    /// Lets requests for which `predicate` returns `true` through unchecked,
    /// like hertz's `csrf.WithNext` (tower-http's name, which flags the
    /// risk: only for requests that authenticate otherwise, such as signed
    /// webhooks). Replaces any earlier predicate. Default: every unsafe
    /// request is checked.
    pub fn with_insecure_bypass<F>(self, predicate: F) -> CsrfLayer<F, R> {
        CsrfLayer {
            config: self.config,
            skip: Arc::new(predicate),
            respond: self.respond,
        }
    }

    /// Answers refused requests with `respond`'s response instead of the
    /// default plain-text one; the [`CsrfRejection`](super::CsrfRejection)
    /// is still put in the response's extensions. Replaces any earlier one.
    /// Default: [`CsrfRejection::into_response`](super::CsrfRejection::into_response).
    ///
    /// A refusal because the session could not be loaded is answered by the
    /// session layer's error handler whatever this returns.
    ///
    /// ```
    /// use axum::response::{Html, IntoResponse, Response};
    /// use sessio::csrf::{CsrfLayer, CsrfRejection};
    ///
    /// fn refused(rejection: &CsrfRejection) -> Response {
    ///     let page = Html("<h1>This form has expired</h1><a href=\"/\">Start again</a>");
    ///     (rejection.status(), page).into_response()
    /// }
    ///
    /// let layer = CsrfLayer::new().with_rejection_response(refused);
    /// # let _ = layer;
    /// ```
    pub fn with_rejection_response<F>(self, respond: F) -> CsrfLayer<P, F> {
        CsrfLayer {
            config: self.config,
            skip: self.skip,
            respond: Arc::new(respond),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        // Builder methods run before the layer is cloned, so this copies
        // nothing in practice; when it does, clones keep their own settings.
        Arc::make_mut(&mut self.config)
    }
}

impl<P, R> Clone for CsrfLayer<P, R> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            skip: self.skip.clone(),
            respond: self.respond.clone(),
        }
    }
}

impl<P, R> fmt::Debug for CsrfLayer<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfLayer")
            .field("body_limit", &self.config.body_limit)
            .field("session", &self.config.session)
            .finish_non_exhaustive()
    }
}

impl<S, P, R> Layer<S> for CsrfLayer<P, R> {
    type Service = CsrfService<S, P, R>;

    fn layer(&self, inner: S) -> Self::Service {
        CsrfService::new(
            inner,
            self.config.clone(),
            self.skip.clone(),
            self.respond.clone(),
        )
    }
}
