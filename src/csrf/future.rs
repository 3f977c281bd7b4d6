//! The response future of the CSRF middleware.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

type CheckFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// Response future of [`CsrfService`](super::CsrfService).
    ///
    /// A safe or skipped request runs the inner service's future `F` as it
    /// is, with no allocation; only a checked request, whose body may have to
    /// be read before the inner service runs, is boxed.
    pub struct ResponseFuture<F>
    where
        F: Future,
    {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F>
    where
        F: Future,
    {
        Passed {
            #[pin]
            future: F,
        },
        Checked {
            future: CheckFuture<F::Output>,
        },
    }
}

impl<F: Future> ResponseFuture<F> {
    /// The inner service's own future, for a request that is not checked.
    pub(super) fn passed(future: F) -> Self {
        Self {
            kind: Kind::Passed { future },
        }
    }

    /// The check, then the inner service.
    pub(super) fn checked(future: CheckFuture<F::Output>) -> Self {
        Self {
            kind: Kind::Checked { future },
        }
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passed { future } => future.poll(cx),
            KindProj::Checked { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F: Future> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Passed { .. } => "passed",
            Kind::Checked { .. } => "checked",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
