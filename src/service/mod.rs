//! [`SessionService`]: the middleware itself.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::persist::{ErasedLayer, LayerConfig};
use crate::session::Session;
use crate::sessions::Sessions;
use crate::store::Store;

mod future;
mod incoming;

pub use future::ResponseFuture;

/// The service [`SessionLayer`](crate::SessionLayer) wraps around an inner
/// service. Its error type is the inner service's: store failures become
/// responses through the layer's error handler.
pub struct SessionService<S, St> {
    inner: S,
    config: Arc<LayerConfig<St>>,
}

impl<S, St> SessionService<S, St> {
    pub(crate) fn new(inner: S, config: Arc<LayerConfig<St>>) -> Self {
        Self { inner, config }
    }
}

impl<S, St> SessionService<S, St> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, St> Clone for SessionService<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for SessionService<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: Store,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, St, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let sessions = self.attach(&mut req);
        // Called here, on the service `poll_ready` readied, so only its future
        // goes into ours: no clone of the inner service per request.
        let inner = self.inner.call(req);
        ResponseFuture::new(inner, sessions, self.config.clone())
    }
}

impl<S, St: Store> SessionService<S, St> {
    /// Reads the session cookies and puts unloaded handles in the request.
    fn attach<B>(&self, req: &mut Request<B>) -> Arc<[Session]> {
        let layer: Arc<dyn ErasedLayer> = self.config.clone();
        let own: Arc<[Session]> = (0..self.config.cookies.len())
            .map(|slot| {
                let state = incoming::read(&self.config, slot, req.headers());
                Session::new(layer.clone(), slot, state)
            })
            .collect();
        let ext = req.extensions_mut();
        if ext.get::<Session>().is_none() {
            ext.insert(own[0].clone());
        }
        match ext.get_mut::<Sessions>() {
            Some(list) => list.extend(&own),
            None => {
                ext.insert(Sessions::new(own.clone()));
            }
        }
        own
    }
}
