//! In-process round trips through the session layer with `oneshot`, beside
//! the same handler without the layer, and id generation.
//!
//! `cargo bench --bench layer`. The numbers are per request, CPU only (no
//! sockets); BENCHMARKS.md has the loopback load comparison.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, Response};
use sessio::store::Store;
use sessio::{Id, Key, MemoryStore, Session, SessionLayer};
use tower::{Service, ServiceExt};

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

fn bench_store<St: Store + Clone>(c: &mut Criterion, name: &str, store: St) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let layer = SessionLayer::new(store, Key::from_bytes(&[1; 32]).unwrap());
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .service_fn(handler);
    let res = rt
        .block_on(svc.clone().oneshot(request("/incr", None)))
        .unwrap();
    let cookie = res.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let mut group = c.benchmark_group(format!("layer/{name}"));
    for (label, path, cookie) in [
        ("untouched, no cookie", "/untouched", None),
        ("read-only", "/read", Some(cookie.as_str())),
        ("read-modify-write", "/incr", Some(cookie.as_str())),
        ("new session", "/incr", None),
    ] {
        group.bench_function(label, |b| {
            let mut svc = svc.clone();
            b.iter(|| {
                let res = rt.block_on(svc.call(request(path, cookie))).unwrap();
                black_box(res);
            });
        });
    }
    group.finish();
}

fn bare(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut svc = tower::service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("0")))
    });
    c.bench_function("layer/bare handler (baseline)", |b| {
        b.iter(|| black_box(rt.block_on(svc.call(request("/read", None))).unwrap()));
    });
}

fn ids(c: &mut Criterion) {
    c.bench_function("id/generate", |b| b.iter(|| black_box(Id::generate())));
}

fn memory(c: &mut Criterion) {
    bench_store(c, "memory", MemoryStore::new());
}

criterion_group!(benches, bare, ids, memory);
criterion_main!(benches);
