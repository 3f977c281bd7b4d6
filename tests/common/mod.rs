//! Shared helpers for the layer's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Query;
use axum::http::{header, Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use sessio::store::{Changes, Deadline, Listed, Record, Store, StoreError, Updated, UserIndex};
use sessio::{Key, MemoryStore, Session};
use tower::ServiceExt;

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

pub fn key() -> Key {
    Key::from_bytes(&[7; 32]).unwrap()
}

pub fn other_key() -> Key {
    Key::from_bytes(&[9; 32]).unwrap()
}

/// How a [`TestStore`] operation should fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    Unavailable,
    Broken,
    /// The record is there but cannot be decoded.
    Unreadable,
}

/// A store (a MemoryStore unless said otherwise) that records every
/// operation and can be told to fail.
#[derive(Clone)]
pub struct TestStore<S = MemoryStore> {
    pub inner: S,
    pub ops: Arc<Mutex<Vec<&'static str>>>,
    pub fail: Arc<Mutex<HashMap<&'static str, Fail>>>,
}

impl TestStore {
    pub fn new(inner: MemoryStore) -> Self {
        Self::new_over(inner)
    }
}

impl<S> TestStore<S> {
    pub fn new_over(inner: S) -> Self {
        Self {
            inner,
            ops: Arc::default(),
            fail: Arc::default(),
        }
    }

    pub fn ops(&self) -> Vec<&'static str> {
        self.ops.lock().unwrap().clone()
    }

    pub fn take_ops(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.ops.lock().unwrap())
    }

    pub fn fail_on(&self, op: &'static str, how: Fail) {
        self.fail.lock().unwrap().insert(op, how);
    }

    pub fn heal(&self) {
        self.fail.lock().unwrap().clear();
    }

    fn enter(&self, op: &'static str) -> Result<(), StoreError> {
        self.ops.lock().unwrap().push(op);
        match self.fail.lock().unwrap().get(op) {
            Some(Fail::Unavailable) => Err(StoreError::unavailable("connection refused")),
            Some(Fail::Broken) => Err(StoreError::backend("corrupt reply")),
            Some(Fail::Unreadable) => Err(StoreError::unreadable("bad JSON")),
            None => Ok(()),
        }
    }
}

impl<S: Store + Clone> Store for TestStore<S> {
    async fn create(&self, record: &Record, expires: Deadline) -> Result<String, StoreError> {
        self.enter("create")?;
        self.inner.create(record, expires).await
    }
    async fn load(&self, value: &str) -> Result<Option<Record>, StoreError> {
        self.enter("load")?;
        self.inner.load(value).await
    }
    async fn update(
        &self,
        value: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
    ) -> Result<Updated, StoreError> {
        self.enter("update")?;
        self.inner.update(value, record, changes, expires).await
    }
    async fn rotate(
        &self,
        old: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
    ) -> Result<Updated, StoreError> {
        self.enter("rotate")?;
        self.inner.rotate(old, record, changes, expires).await
    }
    async fn touch(&self, value: &str, expires: Deadline) -> Result<bool, StoreError> {
        self.enter("touch")?;
        self.inner.touch(value, expires).await
    }
    async fn delete(&self, value: &str) -> Result<(), StoreError> {
        self.enter("delete")?;
        self.inner.delete(value).await
    }
}

impl<S: UserIndex + Clone> UserIndex for TestStore<S> {
    async fn sessions_of(&self, user: &str) -> Result<Vec<Listed>, StoreError> {
        self.enter("sessions_of")?;
        self.inner.sessions_of(user).await
    }
    async fn end_session(&self, user: &str, handle: &str) -> Result<bool, StoreError> {
        self.enter("end_session")?;
        self.inner.end_session(user, handle).await
    }
}

/// Routes that exercise the session; `?k=..&v=..` where a key or value is needed.
pub fn routes() -> Router {
    Router::new()
        .route("/untouched", get(|| async { "untouched" }))
        .route("/incr", get(incr))
        .route("/read", get(read))
        .route(
            "/set",
            get(
                |s: Session, Query(q): Query<HashMap<String, String>>| async move {
                    s.set(&q["k"], &q["v"]).unwrap();
                    "set"
                },
            ),
        )
        .route(
            "/delete",
            get(
                |s: Session, Query(q): Query<HashMap<String, String>>| async move {
                    s.delete(&q["k"]).unwrap();
                    "deleted"
                },
            ),
        )
        .route(
            "/clear",
            get(|s: Session| async move {
                s.clear().unwrap();
                "cleared"
            }),
        )
        .route(
            "/destroy",
            get(|s: Session| async move {
                s.destroy();
                "destroyed"
            }),
        )
        .route(
            "/cycle",
            get(|s: Session| async move {
                s.cycle_id().unwrap();
                "cycled"
            }),
        )
        .route(
            "/cycle-then-set",
            get(|s: Session| async move {
                s.cycle_id().unwrap();
                s.set("after", 1).unwrap();
                "cycled"
            }),
        )
        .route(
            "/fail",
            get(|s: Session| async move {
                s.set("n", 999).unwrap();
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/flash",
            get(
                |s: Session, Query(q): Query<HashMap<String, String>>| async move {
                    match q.get("c") {
                        Some(c) => s.add_flash_to(c, &q["v"]).unwrap(),
                        None => s.add_flash(&q["v"]).unwrap(),
                    }
                    "flashed"
                },
            ),
        )
        .route(
            "/flashes",
            get(
                |s: Session, Query(q): Query<HashMap<String, String>>| async move {
                    let got: Vec<String> = match q.get("c") {
                        Some(c) => s.flashes_from(c).unwrap(),
                        None => s.flashes().unwrap(),
                    };
                    got.join(",")
                },
            ),
        )
}

async fn incr(s: Session) -> String {
    let n: u64 = s.get("n").unwrap().unwrap_or(0);
    s.set("n", n + 1).unwrap();
    n.to_string()
}

async fn read(s: Session) -> String {
    format!("{:?}", s.get::<u64>("n").unwrap())
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Reply {
    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `name=value` pair of the `Set-Cookie` for `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .map(|c| c.split(';').next().unwrap().to_owned())
            .find(|p| p.starts_with(&format!("{name}=")))
    }

    /// The whole `Set-Cookie` header for `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// Sends a GET with the given `Cookie` header lines.
pub async fn get_with(app: &Router, path: &str, cookies: &[&str]) -> Reply {
    let raw: Vec<&[u8]> = cookies.iter().map(|c| c.as_bytes()).collect();
    get_bytes(app, path, &raw).await
}

/// Sends a GET with raw `Cookie` header lines (any bytes a header may hold).
pub async fn get_bytes(app: &Router, path: &str, cookies: &[&[u8]]) -> Reply {
    let mut req = Request::builder().uri(path);
    for c in cookies {
        req = req.header(
            header::COOKIE,
            axum::http::HeaderValue::from_bytes(c).unwrap(),
        );
    }
    send(app, req.body(Body::empty()).unwrap()).await
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res: Response<Body> = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

pub async fn call(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    match cookie {
        Some(c) => get_with(app, path, &[c]).await,
        None => get_with(app, path, &[]).await,
    }
}

/// Captures log lines written on this thread while the guard lives (use a
/// current-thread runtime).
///
/// One global subscriber, installed once, writes each event into the
/// capture of the thread that emits it. A per-test `set_default` subscriber
/// would be simpler, but tracing caches each callsite's interest globally:
/// with tests running in parallel, a callsite first reached on a thread
/// without a subscriber could stay switched off for a test that captures,
/// and its log lines went missing now and then.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Ends a capture when dropped.
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

/// Writes into the current thread's capture, if any.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(logs) = &*c.borrow() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn capture() -> (Self, CaptureGuard) {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| ThreadWriter)
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the tests");
        });
        let logs = Self::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(logs.clone()));
        (logs, CaptureGuard(()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// `target/<profile>/examples/<name>`: the example binaries `cargo test`
/// builds beside the test binaries (`cargo build --example NAME` with the
/// example's features builds one alone).
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "example binary missing at {}: run through `cargo test --all-features`, \
         or `cargo build --example {name}` with its features first",
        path.display()
    );
    path
}
