//! [`CsrfLayer`] and its skip predicate.

use std::fmt;
use std::sync::Arc;

use http::Request;
use tower_layer::Layer;

use super::service::CsrfService;
use super::DEFAULT_BODY_LIMIT;

/// Checks CSRF tokens on unsafe requests; see the [module docs](super).
///
/// Place it inside the [`SessionLayer`](crate::SessionLayer): in axum,
/// `.layer(CsrfLayer::new())` comes *before* `.layer(SessionLayer::new(..))`.
#[must_use]
pub struct CsrfLayer<P = NeverSkip> {
    pub(super) config: Arc<Config>,
    pub(super) skip: Arc<P>,
}

/// Settings shared by every request through one layer.
#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) body_limit: usize,
    /// The named session that holds the token; `None` for the default one.
    pub(super) session: Option<String>,
}

impl CsrfLayer {
    /// A layer with the defaults: forms buffered up to
    /// [`DEFAULT_BODY_LIMIT`] (64 KiB), the token read from the default
    /// session, no request skipped.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                body_limit: DEFAULT_BODY_LIMIT,
                session: None,
            }),
            skip: Arc::new(NeverSkip),
        }
    }
}

impl Default for CsrfLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> CsrfLayer<P> {
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
    /// like hertz's `csrf.WithNext`. Replaces any earlier predicate. Default:
    /// every unsafe request is checked.
    pub fn skip_if<F>(self, predicate: F) -> CsrfLayer<F> {
        CsrfLayer {
            config: self.config,
            skip: Arc::new(predicate),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        // Builder methods run before the layer is cloned, so this copies
        // nothing in practice; when it does, clones keep their own settings.
        Arc::make_mut(&mut self.config)
    }
}

impl<P> Clone for CsrfLayer<P> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            skip: self.skip.clone(),
        }
    }
}

impl<P> fmt::Debug for CsrfLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfLayer")
            .field("body_limit", &self.config.body_limit)
            .field("session", &self.config.session)
            .finish_non_exhaustive()
    }
}

impl<S, P> Layer<S> for CsrfLayer<P> {
    type Service = CsrfService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        CsrfService::new(inner, self.config.clone(), self.skip.clone())
    }
}

/// Decides which requests [`CsrfLayer`] lets through unchecked.
///
/// Implemented for every `Fn(&Request<B>) -> bool`; see
/// [`CsrfLayer::skip_if`].
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
