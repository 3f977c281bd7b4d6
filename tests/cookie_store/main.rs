//! `CookieStore` driven through a real `SessionLayer`: tampering, keys, time,
//! size limits and property tests. Time comes from a `ManualClock`; nothing
//! sleeps.

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{json, Value};
use sessio::clock::ManualClock;
use sessio::{CookieStore, Expiry, Key, Session, SessionLayer};
use tower::ServiceExt;

use common::Logs;

#[path = "../common/mod.rs"]
mod common;
mod keys;
mod limits;
mod props;
mod signed;
mod tamper;
mod time;

/// What `/read` answers for a session with no data.
const FRESH: &str = r#"{"data":null,"n":null}"#;

/// A point in time far from the epoch, so expiry arithmetic has room.
fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 32]).expect("32 bytes")
}

/// The value a test hands `/set` through a request extension, so no text
/// parsing in the test stands between the value and the store.
#[derive(Clone)]
struct Put(Value);

/// The `data` value as `/read` found it, handed back in a response extension.
#[derive(Clone)]
struct Got(Option<Value>);

/// The routes every test uses:
/// - `/untouched` never loads the session;
/// - `/read` answers `{"data": .., "n": ..}` (nulls when absent) and puts the
///   `data` value in a [`Got`] response extension;
/// - `/incr` adds one to `n`, then answers like `/read`;
/// - `/set` stores the request's [`Put`] under `data`.
async fn app(req: Request<String>) -> Result<Response<String>, Infallible> {
    let session = req
        .extensions()
        .get::<Session>()
        .cloned()
        .expect("layer installed");
    if req.uri().path() == "/untouched" {
        return Ok(Response::new(String::new()));
    }
    session.load().await.expect("load");
    match req.uri().path() {
        "/incr" => {
            let n: u64 = session.get("n").expect("get").unwrap_or(0);
            session.set("n", n + 1).expect("set");
        }
        "/set" => {
            let Put(v) = req.extensions().get::<Put>().cloned().expect("Put");
            session.set("data", v).expect("set");
        }
        _ => {}
    }
    let data: Option<Value> = session.get("data").expect("get");
    let n: Option<u64> = session.get("n").expect("get");
    let mut res = Response::new(json!({"data": data, "n": n}).to_string());
    res.extensions_mut().insert(Got(data));
    Ok(res)
}

/// One response, reduced to what the tests look at.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: String,
    /// The whole `Set-Cookie` header, when there is one.
    set_cookie: Option<String>,
    /// The session's `data` value, `None` when it has none.
    data: Option<Value>,
}

impl Reply {
    /// `name=value` of the `Set-Cookie`.
    fn pair(&self) -> String {
        let header = self.set_cookie.as_deref().expect("a Set-Cookie header");
        header.split(';').next().unwrap_or("").to_owned()
    }

    /// The cookie value of the `Set-Cookie`.
    fn value(&self) -> String {
        let pair = self.pair();
        pair.split_once('=').expect("name=value").1.to_owned()
    }

    /// The `Max-Age` attribute, if any.
    fn max_age(&self) -> Option<u64> {
        let header = self.set_cookie.as_deref()?;
        header
            .split(';')
            .find_map(|a| a.trim().strip_prefix("Max-Age="))
            .map(|v| v.parse().expect("numeric Max-Age"))
    }

    /// The counter the session held, `None` for a fresh session.
    fn n(&self) -> Option<u64> {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        let v: Value = serde_json::from_str(&self.body).expect("JSON body");
        v["n"].as_u64()
    }

    /// Asserts a 200 with a fresh, empty session and no cookie written but,
    /// when a cookie was sent and rejected, its removal (SECURITY I44).
    fn assert_fresh(&self, what: &str) {
        assert_eq!(self.status, StatusCode::OK, "{what}: {self:?}");
        assert_eq!(self.body, FRESH, "{what}: data leaked through");
        if let Some(c) = &self.set_cookie {
            let (_name, rest) = c.split_once('=').expect("a cookie");
            assert!(
                rest.starts_with(';') && c.contains("Max-Age=0"),
                "{what}: wrote {self:?}"
            );
        }
    }
}

/// Sends `path` through `layer` with `cookie` as the whole `Cookie` header.
async fn send(layer: &SessionLayer<CookieStore>, path: &str, cookie: Option<&str>) -> Reply {
    send_with(layer, path, cookie, None).await
}

/// [`send`] with a value for `/set`.
async fn send_with(
    layer: &SessionLayer<CookieStore>,
    path: &str,
    cookie: Option<&str>,
    put: Option<Value>,
) -> Reply {
    let cookie = cookie.map(|c| HeaderValue::from_str(c).expect("header value"));
    exchange(layer, path, cookie, put).await
}

/// Sends `path` with any `Cookie` header value, even one that is not UTF-8.
async fn exchange(
    layer: &SessionLayer<CookieStore>,
    path: &str,
    cookie: Option<HeaderValue>,
    put: Option<Value>,
) -> Reply {
    let mut req = Request::builder()
        .uri(path)
        .body(String::new())
        .expect("request");
    if let Some(c) = cookie {
        req.headers_mut().insert(COOKIE, c);
    }
    if let Some(v) = put {
        req.extensions_mut().insert(Put(v));
    }
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(app);
    let res = svc.oneshot(req).await.expect("infallible");
    let mut all = res.headers().get_all(SET_COOKIE).iter();
    let set_cookie = all.next().map(|v| v.to_str().expect("ascii").to_owned());
    assert!(all.next().is_none(), "more than one Set-Cookie");
    let status = res.status();
    let data = res.extensions().get::<Got>().and_then(|g| g.0.clone());
    Reply {
        status,
        body: res.into_body(),
        set_cookie,
        data,
    }
}

/// A layer over `store` with `key`, cookie `id`, rolling 100 s expiry, on `clock`.
fn layer_on(store: CookieStore, key: Key, clock: &ManualClock) -> SessionLayer<CookieStore> {
    SessionLayer::builder(store, key)
        .with_expiry(Expiry::OnInactivity(Duration::from_secs(100)))
        .with_clock(clock.clone())
        .build()
        .expect("valid layer")
}

/// A session with `n = 1`, its `Set-Cookie` pair, and the layer that made it.
async fn counted(store: CookieStore) -> (SessionLayer<CookieStore>, ManualClock, String) {
    let clock = ManualClock::new(start());
    let layer = layer_on(store, key(1), &clock);
    let reply = send(&layer, "/incr", None).await;
    assert_eq!(reply.body, r#"{"data":null,"n":1}"#);
    let pair = reply.pair();
    // Control: the untampered cookie opens, so "fresh" below means rejected.
    assert_eq!(send(&layer, "/read", Some(&pair)).await.n(), Some(1));
    (layer, clock, pair)
}
