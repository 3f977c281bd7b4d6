//! [`SessionService`]: the middleware itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderValue, Request, Response};
use tower_service::Service;

use crate::engine::{Engine, Shared};
use crate::error::Error;
use crate::session::Session;
use crate::sessions::Sessions;
use crate::store::Store;

mod incoming;

use crate::future::ResponseFuture;

/// The service [`SessionLayer`](crate::SessionLayer) wraps around an inner
/// service. Its error type is the inner service's: store failures become
/// responses through the layer's error handler.
pub struct SessionService<S, St> {
    inner: S,
    shared: Arc<Shared<St>>,
}

impl<S, St> SessionService<S, St> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<St>>) -> Self {
        Self { inner, shared }
    }
}

impl<S: Clone, St> Clone for SessionService<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
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
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    St: Store,
    ReqBody: Send + 'static,
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
        ResponseFuture::new(inner, sessions, self.shared.clone())
    }
}

impl<S, St: Store> SessionService<S, St> {
    /// Reads the session cookies and puts unloaded handles in the request.
    fn attach<B>(&self, req: &mut Request<B>) -> Arc<[Session]> {
        let engine: Arc<dyn Engine> = self.shared.clone();
        let own: Arc<[Session]> = (0..self.shared.cookies.len())
            .map(|slot| {
                let state = incoming::read(&self.shared, slot, req.headers());
                Session::new(engine.clone(), slot, state)
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

/// A save still to run on the way out, boxed (its state is large).
pub(crate) type Saving<B> = Pin<Box<dyn Future<Output = Response<B>> + Send>>;

/// The way out (DESIGN §3), as far as it can go without waiting: load
/// errors, a 5xx that saves nothing, and sessions with nothing to write are
/// settled here, and the response comes back at once. Only when a session
/// has something to write does the rest become a boxed future, so a request
/// that read its session and changed nothing allocates nothing for the way
/// out.
pub(crate) fn finish<St: Store, B: Default + Send + 'static>(
    shared: &Arc<Shared<St>>,
    sessions: Arc<[Session]>,
    res: Response<B>,
) -> Result<Response<B>, Saving<B>> {
    for s in sessions.iter() {
        let failed = s.state().load_error.take();
        if let Some(err) = failed {
            return Ok(error_response(shared, &err));
        }
    }
    // A 5xx means the handler failed part way: save nothing it changed.
    if res.status().is_server_error() {
        return Ok(write_cookies(&sessions, res));
    }
    // Nothing else holds the list (the request's `Sessions` went with the
    // request) nor a session in it: the saves may move data instead of
    // copying it.
    let alone = Arc::strong_count(&sessions) == 1;
    // The first plan inline, any more in a Vec: one session (the usual case)
    // costs no allocation here.
    let mut first = None;
    let mut more = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let last = alone && Arc::strong_count(&s.inner) == 1;
        if let Some(plan) = shared.plan_for(&s.inner, last) {
            if first.is_none() {
                first = Some((i, plan));
            } else {
                more.push((i, plan));
            }
        }
    }
    if first.is_none() {
        return Ok(write_cookies(&sessions, res));
    }
    let shared = shared.clone();
    Err(Box::pin(async move {
        let mut plans = first.into_iter().chain(more);
        while let Some((i, plan)) = plans.next() {
            if let Err(err) = shared.apply(&sessions[i].inner, plan).await {
                // The sessions not saved keep their changes.
                for (j, plan) in plans {
                    shared.put_back(&sessions[j].inner, plan);
                }
                return error_response(&shared, &err);
            }
        }
        write_cookies(&sessions, res)
    }))
}

/// Appends each session's pending `Set-Cookie`, with `Cache-Control:
/// no-store` (unless the handler set its own) and `Vary: Cookie` when any.
fn write_cookies<B>(sessions: &[Session], mut res: Response<B>) -> Response<B> {
    let mut wrote = false;
    for s in sessions {
        let cookie = s.state().outgoing.take();
        if let Some(cookie) = cookie {
            match HeaderValue::try_from(cookie) {
                Ok(v) => {
                    let headers = res.headers_mut();
                    if !wrote {
                        // Room for every cookie, Cache-Control and Vary at
                        // once: the map grows once instead of per header.
                        headers.reserve(sessions.len() + 2);
                    }
                    headers.append(SET_COOKIE, v);
                    wrote = true;
                }
                // Every part was validated when the layer was built.
                Err(_) => tracing::error!("session cookie is not a valid header value"),
            }
        }
    }
    if wrote {
        let headers = res.headers_mut();
        if !headers.contains_key(CACHE_CONTROL) {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        let varies = headers.get_all(VARY).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("cookie") || t.trim() == "*")
            })
        });
        if !varies {
            headers.append(VARY, HeaderValue::from_static("Cookie"));
        }
    }
    res
}

fn error_response<St, B: Default>(shared: &Shared<St>, err: &Error) -> Response<B> {
    let (parts, ()) = (shared.on_error)(err).into_parts();
    Response::from_parts(parts, B::default())
}
