//! In-process round trips through the session layer with `oneshot`, one
//! group per store, beside the same handler without the layer; id generation;
//! cookie signing and verifying on their own; and what masked CSRF tokens
//! cost.
//!
//! `cargo bench --bench layer` (add `--features redis` with a Redis at
//! `REDIS_URL`, default `redis://127.0.0.1:6379`, for the Redis group; it is
//! skipped when no Redis answers). The
//! numbers are per request, CPU only (no sockets); BENCHMARKS.md has the
//! loopback load comparison.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, Response};
use sessio::store::{Changes, Deadline, Record, Store, StoreError, Updated};
use sessio::{CookieStore, Id, Key, MemoryStore, Session, SessionLayer};
use tower::ServiceExt;

async fn handler(req: Request<String>) -> Result<Response<String>, Infallible> {
    let path = req.uri().path();
    if path == "/untouched" {
        return Ok(Response::new(String::new()));
    }
    let s = req.extensions().get::<Session>().unwrap().clone();
    s.load().await.unwrap();
    let n: u64 = s.get("n").unwrap().unwrap_or(0);
    if path == "/incr" {
        s.set("n", n + 1).unwrap();
    }
    Ok(Response::new(n.to_string()))
}

fn request(path: &str, cookie: Option<&str>) -> Request<String> {
    let mut b = Request::builder().uri(path);
    if let Some(c) = cookie {
        b = b.header(COOKIE, c);
    }
    b.body(String::new()).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `name=value` of the response's session cookie.
fn cookie_of(res: &Response<String>) -> String {
    let set = res.headers()[SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// The layer over `store` around [`handler`], and the response to a first
/// `/incr` (a new session, whose cookie the cases go on with).
/// Not boxed: the benches measure the layer's own future.
fn started<St: Store>(
    rt: &tokio::runtime::Runtime,
    store: St,
) -> (
    impl tower::Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone,
    Response<String>,
) {
    let layer = SessionLayer::new(store, Key::from_bytes(&[1; 32]).unwrap());
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .service_fn(handler);
    let res = rt
        .block_on(svc.clone().oneshot(request("/incr", None)))
        .unwrap();
    (svc, res)
}

fn bench_store<St: Store>(c: &mut Criterion, name: &str, store: St) {
    let rt = runtime();
    let (svc, res) = started(&rt, store);
    if !res.headers().contains_key(SET_COOKIE) {
        eprintln!("layer/{name}: skipped, the store answered {}", res.status());
        return;
    }
    let cookie = cookie_of(&res);

    let cases = [
        ("untouched, no cookie", "/untouched", None),
        ("read-only", "/read", Some(cookie.as_str())),
        ("read-modify-write", "/incr", Some(cookie.as_str())),
        ("new session", "/incr", None),
    ];
    bench_requests(c, &format!("layer/{name}"), &rt, &svc, &cases);
}

/// One benchmark per `(label, path, cookie)`: a request through `svc`.
fn bench_requests<S>(
    c: &mut Criterion,
    group: &str,
    rt: &tokio::runtime::Runtime,
    svc: &S,
    cases: &[(&str, &str, Option<&str>)],
) where
    S: tower::Service<Request<String>, Response = Response<String>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut group = c.benchmark_group(group);
    for &(label, path, cookie) in cases {
        group.bench_function(label, |b| {
            b.iter(|| {
                let res = rt
                    .block_on(svc.clone().oneshot(request(path, cookie)))
                    .unwrap();
                black_box(res);
            });
        });
    }
    group.finish();
}

fn bare(c: &mut Criterion) {
    let rt = runtime();
    let svc = tower::service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("0")))
    });
    c.bench_function("layer/bare handler (baseline)", |b| {
        b.iter(|| black_box(rt.block_on(svc.oneshot(request("/read", None))).unwrap()));
    });
}

fn ids(c: &mut Criterion) {
    c.bench_function("id/generate", |b| b.iter(|| black_box(Id::generate())));
}

/// A store that keeps nothing and always hands out the same id, so the
/// `cookie/*` benches measure the layer's signing and verifying, not a store.
#[derive(Clone, Copy)]
struct FixedId;

const FIXED_ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

impl Store for FixedId {
    async fn create(&self, _: &Record, _: Deadline) -> Result<String, StoreError> {
        Ok(FIXED_ID.to_owned())
    }
    async fn load(&self, _: &str) -> Result<Option<Record>, StoreError> {
        Ok(Some(Record::new()))
    }
    async fn update(
        &self,
        value: &str,
        _: &Record,
        _: &Changes,
        _: Deadline,
    ) -> Result<Updated, StoreError> {
        Ok(Updated::Written(value.to_owned()))
    }
    async fn rotate(
        &self,
        _: &str,
        _: &Record,
        _: &Changes,
        _: Deadline,
    ) -> Result<Updated, StoreError> {
        Ok(Updated::Written(FIXED_ID.to_owned()))
    }
    async fn touch(&self, _: &str, _: Deadline) -> Result<bool, StoreError> {
        Ok(true)
    }
    async fn delete(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Signing and verifying a session-id cookie (HMAC-SHA256, base64url),
/// through the layer with a store that does nothing:
/// - `sign`: a new session is saved; the layer signs the id and renders
///   `Set-Cookie`;
/// - `verify`: a request carries the signed cookie and the handler never
///   looks at the session; the layer parses the `Cookie` header and verifies;
/// - `no cookie`: the same request without a cookie, the cost of the rest.
fn cookie(c: &mut Criterion) {
    let rt = runtime();
    let (svc, res) = started(&rt, FixedId);
    let cookie = cookie_of(&res);
    let cases = [
        ("sign", "/incr", None),
        ("verify", "/untouched", Some(cookie.as_str())),
        ("no cookie", "/untouched", None),
    ];
    bench_requests(c, "cookie", &rt, &svc, &cases);
}

fn memory(c: &mut Criterion) {
    bench_store(c, "memory", MemoryStore::new());
}

fn cookie_store(c: &mut Criterion) {
    bench_store(c, "cookie", CookieStore::new());
}

/// Needs a Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`); skipped
/// when none answers.
#[cfg(feature = "redis")]
fn redis(c: &mut Criterion) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = sessio::RedisStore::connect(&url).unwrap();
    bench_store(c, "redis", store);
}

#[cfg(not(feature = "redis"))]
fn redis(_: &mut Criterion) {}

type Full = http_body_util::Full<bytes::Bytes>;

async fn csrf_handler(req: Request<Full>) -> Result<Response<Full>, Infallible> {
    let s = req.extensions().get::<Session>().unwrap().clone();
    s.load().await.unwrap();
    let body = match req.uri().path() {
        // A session with data of its own keeps its CSRF secret in the
        // record; a visitor without one gets it in a signed companion
        // cookie and stores nothing (SECURITY J46).
        "/start" => {
            s.set("user", 1).unwrap();
            sessio::csrf::csrf_token(&s).unwrap()
        }
        "/render" => sessio::csrf::csrf_token(&s).unwrap(),
        "/secret" => s.get(sessio::csrf::SESSION_KEY).unwrap().unwrap(),
        _ => String::new(),
    };
    Ok(Response::new(Full::from(body)))
}

/// Masked CSRF tokens through `SessionLayer` + `CsrfLayer` on the memory
/// store, per request, for a stored session that holds its secret:
/// - `render (masked)`: a page asks for a token, a fresh mask each time;
/// - `read secret (unmasked)`: the same page reading the stored secret, as
///   rendering cost before masking; the difference is the mask;
/// - `verify header` / `verify form`: a POST whose token is unmasked and
///   checked (the form's body is buffered and handed on);
/// - `GET, no check (baseline)`: a GET the CSRF layer lets through, whose
///   handler loads the session as the others do;
/// - `render (masked), anonymous`: a visitor with no stored session, whose
///   secret comes from the signed companion cookie (a login form).
fn csrf(c: &mut Criterion) {
    use sessio::csrf::CsrfLayer;
    let rt = runtime();
    let svc = tower::ServiceBuilder::new()
        .layer(SessionLayer::new(
            MemoryStore::new(),
            Key::from_bytes(&[1; 32]).unwrap(),
        ))
        .layer(CsrfLayer::new())
        .service_fn(csrf_handler);
    let get = |path: &str, cookie: Option<&str>| {
        let mut b = Request::builder().uri(path);
        if let Some(c) = cookie {
            b = b.header(COOKIE, c);
        }
        b.body(Full::default()).unwrap()
    };
    // Every cookie a response sets, as one `Cookie` header, and its body.
    let cookies_and_body = |path: &str| {
        let res = rt.block_on(svc.clone().oneshot(get(path, None))).unwrap();
        let cookie = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ");
        let body = rt
            .block_on(http_body_util::BodyExt::collect(res.into_body()))
            .unwrap()
            .to_bytes();
        (cookie, String::from_utf8(body.to_vec()).unwrap())
    };
    let (cookie, token) = cookies_and_body("/start");
    let (anon_cookie, _) = cookies_and_body("/render");
    let post = |form: bool| {
        let b = Request::post("/submit").header(COOKIE, &cookie);
        if form {
            b.header("content-type", "application/x-www-form-urlencoded")
                .body(Full::from(format!("csrf={token}&comment=hello")))
        } else {
            b.header("x-csrf-token", &token).body(Full::default())
        }
        .unwrap()
    };

    let mut group = c.benchmark_group("csrf");
    let cases: [(&str, &dyn Fn() -> Request<Full>); 6] = [
        ("render (masked)", &|| get("/render", Some(&cookie))),
        ("read secret (unmasked)", &|| get("/secret", Some(&cookie))),
        ("verify header", &|| post(false)),
        ("verify form", &|| post(true)),
        ("GET, no check (baseline)", &|| get("/other", Some(&cookie))),
        ("render (masked), anonymous", &|| {
            get("/render", Some(&anon_cookie))
        }),
    ];
    for (label, make) in cases {
        group.bench_function(label, |b| {
            b.iter(|| {
                let res = rt.block_on(svc.clone().oneshot(make())).unwrap();
                assert!(res.status().is_success());
                black_box(res);
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bare,
    ids,
    cookie,
    memory,
    cookie_store,
    redis,
    csrf
);
criterion_main!(benches);
