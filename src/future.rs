//! The response future of [`SessionService`](crate::SessionService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::engine::Shared;
use crate::service::{finish, Saving};
use crate::session::Session;
use crate::store::Store;

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
            shared: Arc<Shared<St>>,
        },
        Saving {
            saving: Saving<B>,
        },
    }
}

impl<F, St, B> ResponseFuture<F, St, B> {
    pub(crate) fn new(future: F, sessions: Arc<[Session]>, shared: Arc<Shared<St>>) -> Self {
        Self {
            state: State::Inner {
                future,
                sessions: Some(sessions),
                shared,
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
                    shared,
                } => {
                    let res = ready!(future.poll(cx))?;
                    let sessions = sessions
                        .take()
                        .expect("ResponseFuture polled after completion");
                    if sessions.iter().all(Session::untouched) {
                        return Poll::Ready(Ok(res));
                    }
                    match finish(shared, sessions, res) {
                        Ok(res) => return Poll::Ready(Ok(res)),
                        Err(saving) => saving,
                    }
                }
                StateProj::Saving { saving } => return saving.as_mut().poll(cx).map(Ok),
            };
            self.as_mut().project().state.set(State::Saving { saving });
        }
    }
}

impl<F, St, B> fmt::Debug for ResponseFuture<F, St, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
