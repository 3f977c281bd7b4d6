//! Sealing and opening a `CookieStore` session through the public path: one
//! `SessionLayer` round trip per iteration, so the numbers include what a
//! request pays (cookie parsing, JSON, the `Session` handle), not only the
//! cipher.
//!
//! - `seal`: a request without a cookie sets the payload; the layer serializes
//!   it, seals it and writes `Set-Cookie`.
//! - `open`: a request with that cookie opens it and reads the payload back.
//!
//! Payloads are the session's JSON: 100 B, 1 KiB, and 2.6 KiB, which seals to
//! a 3.5 KiB cookie. A 3.5 KiB payload itself cannot be sent: base64 adds a
//! third, so it would make a cookie of about 4.7 KiB, over the 4096-byte limit.
//!
//! Run with `cargo bench --bench seal_open`.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, Response};
use serde_json::{json, Value};
use sessio::{CookieStore, Key, Session, SessionLayer};
use tower::ServiceExt;

/// `(label, JSON bytes)`.
const PAYLOADS: [(&str, usize); 3] = [
    ("100B", 100),
    ("1KiB", 1024),
    ("2.6KiB_payload_3.5KiB_cookie", 2660),
];

#[derive(Clone)]
struct Payload(Arc<Value>);

async fn app(req: Request<()>) -> Result<Response<()>, Infallible> {
    let session = req.extensions().get::<Session>().expect("layer").clone();
    session.load().await.expect("load");
    match req.extensions().get::<Payload>() {
        Some(Payload(v)) => session.set("data", &**v).expect("set"),
        None => {
            let v: Option<Value> = session.get("data").expect("get");
            black_box(v.expect("payload opened"));
        }
    }
    Ok(Response::new(()))
}

/// A record whose compact JSON (`{"data":"xx…"}`) is exactly `len` bytes.
fn payload(len: usize) -> Value {
    let overhead = r#"{"data":""}"#.len();
    json!("x".repeat(len - overhead))
}

fn seal_request(v: &Payload) -> Request<()> {
    let mut req = Request::new(());
    req.extensions_mut().insert(v.clone());
    req
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for (mode, store) in [
        ("encrypted", CookieStore::new()),
        ("signed_only", CookieStore::signed_only()),
    ] {
        let layer = SessionLayer::new(store, Key::from_bytes(&[7; 32]).expect("key"));
        let svc = tower::ServiceBuilder::new().layer(layer).service_fn(app);
        let mut group = c.benchmark_group(format!("seal_open/{mode}"));
        for (label, len) in PAYLOADS {
            let value = Payload(Arc::new(payload(len)));
            let sealed = rt
                .block_on(svc.clone().oneshot(seal_request(&value)))
                .expect("infallible");
            let set_cookie = sealed
                .headers()
                .get(SET_COOKIE)
                .unwrap_or_else(|| panic!("{label} did not fit in a cookie"));
            let pair = set_cookie.to_str().expect("ascii");
            let pair = pair.split(';').next().expect("pair").to_owned();
            assert!(pair.len() <= 4096, "{label}: {} bytes", pair.len());

            group.throughput(Throughput::Bytes(len as u64));
            group.bench_with_input(BenchmarkId::new("seal", label), &value, |b, v| {
                b.to_async(&rt).iter(|| async {
                    let res = svc.clone().oneshot(seal_request(v)).await;
                    black_box(res.expect("infallible"))
                });
            });
            group.bench_with_input(BenchmarkId::new("open", label), &pair, |b, pair| {
                b.to_async(&rt).iter(|| async {
                    let mut req = Request::new(());
                    let cookie = pair.parse().expect("header value");
                    req.headers_mut().insert(COOKIE, cookie);
                    let res = svc.clone().oneshot(req).await;
                    black_box(res.expect("infallible"))
                });
            });
        }
        group.finish();
    }
}

// The macro defines an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
