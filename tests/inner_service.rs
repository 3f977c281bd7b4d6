//! What the session and CSRF layers do with the service they wrap: the
//! accessors reach it, and a service that is not `Send` can be wrapped.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{header, Method, Request, Response, StatusCode};
use sessio::csrf::CsrfLayer;
use sessio::{Key, MemoryStore, Session, SessionLayer};
use tower::{Layer, Service, ServiceExt};

fn key() -> Key {
    Key::from_bytes(&[7; 32]).unwrap()
}

/// Answers with its greeting and counts its calls in a field of its own (no
/// shared counter), so the count tells which instance a call reached.
#[derive(Clone, Debug)]
struct Greeter {
    greeting: &'static str,
    calls: u32,
}

impl Greeter {
    fn new() -> Self {
        Self {
            greeting: "hello",
            calls: 0,
        }
    }
}

impl<B> Service<Request<B>> for Greeter {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        self.calls += 1;
        ready(Ok(Response::new(format!(
            "{} #{}",
            self.greeting, self.calls
        ))))
    }
}

/// One call on `svc`, kept (not consumed, as `oneshot` would).
async fn send<S, B>(svc: &mut S, req: Request<B>) -> S::Response
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    ServiceExt::<Request<B>>::ready(svc)
        .await
        .unwrap()
        .call(req)
        .await
        .unwrap()
}

#[tokio::test]
async fn session_service_accessors_reach_the_wrapped_service() {
    let mut svc = SessionLayer::new(MemoryStore::new(), key()).layer(Greeter::new());
    assert_eq!(svc.get_ref().greeting, "hello");
    svc.get_mut().greeting = "bonjour";
    let res = send(&mut svc, Request::new(())).await;
    // The call went to the service get_mut changed, and get_ref sees its count.
    assert_eq!(res.into_body(), "bonjour #1");
    assert_eq!(svc.get_ref().calls, 1);
    let inner = svc.into_inner();
    assert_eq!((inner.greeting, inner.calls), ("bonjour", 1));
}

#[tokio::test]
async fn csrf_service_accessors_reach_the_wrapped_service() {
    let mut svc = CsrfLayer::new().layer(Greeter::new());
    assert_eq!(svc.get_ref().greeting, "hello");
    svc.get_mut().greeting = "bonjour";
    let get = Request::new(Body::empty());
    let res = send(&mut svc, get).await;
    assert_eq!(res.into_body(), "bonjour #1");
    assert_eq!(svc.get_ref().calls, 1);
    // A POST without a token is refused before it reaches the inner service.
    let post = Request::builder()
        .method(Method::POST)
        .body(Body::empty())
        .unwrap();
    let res = send(&mut svc, post).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(svc.get_ref().calls, 1);
    let inner = svc.into_inner();
    assert_eq!((inner.greeting, inner.calls), ("bonjour", 1));
}

/// Neither `Send` nor `'static`, and neither is its future nor the request
/// body it takes: it counts calls in an `Rc`, borrows its greeting from the
/// test, and reads an `Rc<str>` body. It counts visits in the session.
struct Local<'a> {
    calls: Rc<Cell<u32>>,
    greeting: &'a str,
}

impl<'a> Service<Request<Rc<str>>> for Local<'a> {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + 'a>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Rc<str>>) -> Self::Future {
        let calls = self.calls.clone();
        let greeting = self.greeting;
        Box::pin(async move {
            let session = req.extensions().get::<Session>().unwrap().clone();
            // The Rc and the body are held across the await.
            session.load().await.unwrap();
            let visits: u64 = session.update_or("visits", 1, |n: u64| n + 1).unwrap();
            calls.set(calls.get() + 1);
            Ok(Response::new(format!("{greeting} {} {visits}", req.body())))
        })
    }
}

// Fails to compile if the session service asks again for `Send` or
// `'static` of the inner service, its future or the request body.
#[tokio::test(flavor = "current_thread")]
async fn a_service_that_is_not_send_can_be_wrapped() {
    let greeting = String::from("hello");
    let calls = Rc::new(Cell::new(0));
    let mut svc = SessionLayer::new(MemoryStore::new(), key()).layer(Local {
        calls: calls.clone(),
        greeting: &greeting,
    });

    let first = Request::new(Rc::from("from a local body"));
    let res = send(&mut svc, first).await;
    assert_eq!(res.status(), StatusCode::OK);
    let set_cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.starts_with("__Host-id="), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert_eq!(res.into_body(), "hello from a local body 1");

    // The session was stored: the next request finds it.
    let second = Request::builder()
        .header(header::COOKIE, cookie)
        .body(Rc::from("again"))
        .unwrap();
    let res = svc.oneshot(second).await.unwrap();
    assert_eq!(res.into_body(), "hello again 2");
    assert_eq!(calls.get(), 2);
}
