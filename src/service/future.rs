//! The response future of [`SessionService`](crate::SessionService), and
//! the way out: each session's plan run against the store, its `Set-Cookie`
//! headers written (the decision table is in `crate::state`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{Entry, CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use crate::error::Error;
use crate::expiry::Refresh;
use crate::persist::LayerConfig;
use crate::session::Session;
use crate::store::Store;

/// The saves still to run on the way out, boxed (their state is large).
type PendingSaves<B> = Pin<Box<dyn Future<Output = Response<B>> + Send>>;

/// How far [`plan_way_out`] got without waiting.
enum Finished<B> {
    /// Nothing (more) to store: the response to send.
    Done(Response<B>),
    /// Saves to run before the response can go.
    Storing(PendingSaves<B>),
}

pin_project! {
    /// Response future of [`SessionService`](crate::SessionService): the
    /// inner service's future, then the save of whatever the handler
    /// changed.
    ///
    /// Written by hand rather than boxed: a request whose sessions were never
    /// loaded (most requests of most apps) costs no allocation here, and only
    /// a save is boxed, when there is one.
    pub struct ResponseFuture<F, St, B> {
        #[pin]
        state: State<F, St, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, St, B> {
        Inner {
            #[pin]
            future: F,
            sessions: Option<Arc<[Session]>>,
            config: Arc<LayerConfig<St>>,
        },
        Storing {
            saving: PendingSaves<B>,
        },
    }
}

impl<F, St, B> ResponseFuture<F, St, B> {
    pub(crate) fn new(future: F, sessions: Arc<[Session]>, config: Arc<LayerConfig<St>>) -> Self {
        Self {
            state: State::Inner {
                future,
                sessions: Some(sessions),
                config,
            },
        }
    }
}

impl<F, St, B, E> Future for ResponseFuture<F, St, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    St: Store,
    B: Default + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let saving = match self.as_mut().project().state.project() {
                StateProj::Inner {
                    future,
                    sessions,
                    config,
                } => {
                    let res = ready!(future.poll(cx))?;
                    let sessions = sessions
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let every = config.refresh == Refresh::OnEveryRequest;
                    if sessions.iter().all(|s| s.untouched(every)) {
                        return Poll::Ready(Ok(res));
                    }
                    match plan_way_out(config, sessions, res) {
                        Finished::Done(res) => return Poll::Ready(Ok(res)),
                        Finished::Storing(saving) => saving,
                    }
                }
                StateProj::Storing { saving } => return saving.as_mut().poll(cx).map(Ok),
            };
            self.as_mut().project().state.set(State::Storing { saving });
        }
    }
}

impl<F, St, B> fmt::Debug for ResponseFuture<F, St, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// The way out, as far as it can go without waiting: load errors, a 5xx with
/// nothing to delete, and sessions with nothing to write are settled here,
/// and the response comes back at once. Only when a session has something
/// to write does the rest become a boxed future.
fn plan_way_out<St: Store, B: Default + Send + 'static>(
    config: &Arc<LayerConfig<St>>,
    sessions: Arc<[Session]>,
    res: Response<B>,
) -> Finished<B> {
    for s in sessions.iter() {
        let failed = s.state().take_load_error();
        if let Some(err) = failed {
            return Finished::Done(error_response(config, &err));
        }
    }
    // A 5xx means the handler failed part way: only deletions are carried out.
    let server_error = res.status().is_server_error();
    // Nothing else holds the list (the request's `Sessions` went with the
    // request) nor a session in it: the saves may move data instead of
    // copying it.
    let alone = Arc::strong_count(&sessions) == 1;
    // One clock read for the whole way out.
    let now = config.now();
    // The first plan inline, any more in a Vec: one session (the usual case)
    // costs no allocation here.
    let mut first = None;
    let mut more = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let last = alone && Arc::strong_count(&s.inner) == 1;
        if let Some(plan) = config.plan_for(&s.inner, now, last, server_error) {
            if first.is_none() {
                first = Some((i, plan));
            } else {
                more.push((i, plan));
            }
        }
    }
    let private = config.private;
    if first.is_none() {
        for s in sessions.iter() {
            config.settle_companion(&s.inner, now);
        }
        return Finished::Done(write_cookies(&sessions, res, private));
    }
    let config = config.clone();
    Finished::Storing(Box::pin(async move {
        let mut plans = first.into_iter().chain(more);
        while let Some((i, plan)) = plans.next() {
            if let Err(err) = config.apply(&sessions[i].inner, plan).await {
                // The sessions not saved keep their changes; those already
                // saved still get their cookies (SECURITY I43): a record that
                // was written or deleted must reach the browser.
                for (j, plan) in plans {
                    config.restore(&sessions[j].inner, plan);
                }
                return write_cookies(&sessions, error_response(&config, &err), private);
            }
        }
        for s in sessions.iter() {
            config.settle_companion(&s.inner, now);
        }
        write_cookies(&sessions, res, private)
    }))
}

/// Appends each session's pending `Set-Cookie` headers. A response that sets
/// one is never stored by a shared cache: `Cache-Control: no-store` unless the
/// handler set its own, and a handler's `public` or `s-maxage` becomes
/// `private, no-store`. With `private`, a response made from a loaded,
/// non-empty session gets `Cache-Control: private` (or loses its `public`).
/// Either way `Vary: Cookie` is added.
fn write_cookies<B>(sessions: &[Session], mut res: Response<B>, private: bool) -> Response<B> {
    let mut wrote = false;
    let mut personal = false;
    for s in sessions {
        let (cookies, mine) = {
            let mut st = s.state();
            (st.take_outgoing(), private && st.is_personal())
        };
        personal |= mine;
        for cookie in cookies {
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
    if !wrote && !personal {
        return res;
    }
    let headers = res.headers_mut();
    if !wrote {
        headers.reserve(2);
    }
    // SECURITY J53: never cacheable by a shared cache. One look-up each for
    // `Cache-Control` and `Vary`, whether or not the handler set them.
    let (fresh, narrowed) = if wrote {
        ("no-store", "private, no-store")
    } else {
        ("private", "private")
    };
    match headers.entry(CACHE_CONTROL) {
        Entry::Vacant(e) => {
            e.insert(HeaderValue::from_static(fresh));
        }
        Entry::Occupied(mut e) => {
            if e.iter()
                .any(|v| v.to_str().map_or(true, allows_shared_cache))
            {
                // Replaces every value the handler set.
                e.insert(HeaderValue::from_static(narrowed));
            }
        }
    }
    match headers.entry(VARY) {
        Entry::Vacant(e) => {
            e.insert(HeaderValue::from_static("Cookie"));
        }
        Entry::Occupied(mut e) => {
            let varies = e.iter().any(|v| {
                v.to_str().is_ok_and(|v| {
                    v.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("cookie") || t.trim() == "*")
                })
            });
            if !varies {
                e.append(HeaderValue::from_static("Cookie"));
            }
        }
    }
    res
}

/// `true` when a `Cache-Control` value lets a shared cache store the response.
fn allows_shared_cache(value: &str) -> bool {
    value.split(',').any(|d| {
        let d = d.trim();
        d.eq_ignore_ascii_case("public")
            || d.get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("s-maxage"))
    })
}

fn error_response<St, B: Default>(config: &LayerConfig<St>, err: &Error) -> Response<B> {
    let (parts, ()) = (config.on_error)(err).into_parts();
    Response::from_parts(parts, B::default())
}
