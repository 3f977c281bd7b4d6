//! The store conformance suite: one set of scenarios every store must pass.
//!
//! The built-in stores run it in their tests; run it on yours:
//!
//! ```
//! use sessio::test_util::Suite;
//! use sessio::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // In a #[tokio::test]:
//! let report = Suite::new(MemoryStore::new()).run().await;
//! assert!(report.passed() >= 10);
//! # }
//! ```
//!
//! Each scenario panics with its name and what went wrong. Scenarios that
//! need a server-side record (revocation, concurrent updates, TTLs kept by the
//! store) are skipped for a client-side store declared with
//! [`Suite::client_side`]. One scenario waits about two seconds for a real TTL
//! to run out, so stores with their own clocks (Redis) are checked too.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use http::header::{COOKIE, SET_COOKIE};
use http::{Request, Response, StatusCode};
use serde_json::json;
use tower::ServiceExt;

use crate::error::Error;
use crate::key::Key;
use crate::layer::SessionLayer;
use crate::session::Session;
use crate::store::{Changes, Expires, Record, Store};

/// The conformance suite for one store.
#[derive(Debug)]
pub struct Suite<St> {
    store: St,
    server_side: bool,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    passed: Vec<&'static str>,
    skipped: Vec<&'static str>,
}

impl Report {
    /// Number of scenarios that ran and passed.
    pub fn passed(&self) -> usize {
        self.passed.len()
    }

    /// Names of the scenarios skipped for a client-side store.
    pub fn skipped(&self) -> &[&'static str] {
        &self.skipped
    }
}

impl<St: Store + Clone> Suite<St> {
    /// The suite for a server-side store (every scenario runs).
    pub fn new(store: St) -> Self {
        Self {
            store,
            server_side: true,
        }
    }

    /// Declares a store that keeps sessions in the cookie itself: scenarios
    /// that need a server-side record are skipped and listed in the report.
    #[must_use]
    pub fn client_side(mut self) -> Self {
        self.server_side = false;
        self
    }

    /// Runs every scenario, panicking at the first failure.
    pub async fn run(self) -> Report {
        let mut report = Report::default();
        macro_rules! scenario {
            ($name:ident, server_side) => {
                if self.server_side {
                    $name(&self.store).await;
                    report.passed.push(stringify!($name));
                } else {
                    report.skipped.push(stringify!($name));
                }
            };
            ($name:ident) => {
                $name(&self.store).await;
                report.passed.push(stringify!($name));
            };
        }
        scenario!(create_then_load_round_trips);
        scenario!(load_of_unknown_values_is_none);
        scenario!(update_applies_changes);
        scenario!(update_with_clear_replaces_everything);
        scenario!(create_never_reuses_a_value, server_side);
        scenario!(delete_removes_and_tolerates_missing, server_side);
        scenario!(update_never_resurrects_a_deleted_record, server_side);
        scenario!(touch_of_missing_record_is_false, server_side);
        scenario!(
            concurrent_changes_to_different_keys_both_survive,
            server_side
        );
        scenario!(ttl_is_kept_by_the_store, server_side);
        scenario!(layer_counter_counts);
        scenario!(layer_untouched_and_read_only_write_nothing);
        layer_flashes_are_delivered_once(&self.store, self.server_side).await;
        report.passed.push("layer_flashes_are_delivered_once");
        scenario!(layer_clear_removes_cookie);
        scenario!(layer_destroy_revokes_old_cookie, server_side);
        scenario!(
            layer_cycle_id_keeps_data_and_revokes_old_cookie,
            server_side
        );
        report
    }
}

fn expires_in(secs: u64) -> Expires {
    let ttl = Duration::from_secs(secs);
    Expires::new(SystemTime::now() + ttl, ttl)
}

fn sample() -> Record {
    [
        ("user".to_owned(), json!("ada")),
        ("n".to_owned(), json!(42)),
        (
            "nested".to_owned(),
            json!({"a": [1, 2, {"b": null}], "ü": "∑"}),
        ),
    ]
    .into_iter()
    .collect()
}

fn changes(set: &[&str], removed: &[&str], cleared: bool) -> Changes {
    let mut c = Changes::default();
    if cleared {
        c.record_clear();
    }
    for k in set {
        c.record_set(k);
    }
    for k in removed {
        c.record_remove(k);
    }
    c
}

async fn must<T>(what: &str, f: impl std::future::Future<Output = Result<T, Error>>) -> T {
    match f.await {
        Ok(v) => v,
        Err(e) => panic!(
            "{what}: store returned an error: {e} ({:?})",
            std::error::Error::source(&e)
        ),
    }
}

async fn create_then_load_round_trips<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    let got = must("load", s.load(&v)).await;
    assert_eq!(
        got,
        Some(sample()),
        "create_then_load_round_trips: loaded record differs"
    );
}

async fn load_of_unknown_values_is_none<St: Store>(s: &St) {
    let unknown = crate::id::Id::generate();
    for v in [
        "",
        "x",
        "AAAAAAAAAAAAAAAAAAAAAA",
        unknown.as_str(),
        "{\"bad\":",
        "\0\u{1}",
        "a b;c",
    ] {
        let got = must("load of an unknown value", s.load(v)).await;
        assert!(
            got.is_none(),
            "load_of_unknown_values_is_none: {v:?} loaded a record"
        );
    }
}

async fn update_applies_changes<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    let mut next = sample();
    next.insert("n", json!(43));
    next.remove("user");
    next.insert("new", json!(true));
    let c = changes(&["n", "new"], &["user"], false);
    let v2 = must("update", s.update(&v, &next, &c, expires_in(60))).await;
    let v2 = v2.expect("update_applies_changes: update of a live record answered None");
    let got = must("load", s.load(&v2)).await;
    assert_eq!(
        got,
        Some(next),
        "update_applies_changes: loaded record differs"
    );
}

async fn update_with_clear_replaces_everything<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    let next: Record = [("only".to_owned(), json!(1))].into_iter().collect();
    let c = changes(&["only"], &[], true);
    let v2 = must("update", s.update(&v, &next, &c, expires_in(60)))
        .await
        .expect("update_with_clear_replaces_everything: update answered None");
    let got = must("load", s.load(&v2)).await;
    assert_eq!(
        got,
        Some(next),
        "update_with_clear_replaces_everything: old keys survived"
    );
}

async fn create_never_reuses_a_value<St: Store>(s: &St) {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let v = must("create", s.create(&Record::new(), expires_in(60))).await;
        assert!(
            seen.insert(v),
            "create_never_reuses_a_value: a value was handed out twice"
        );
    }
}

async fn delete_removes_and_tolerates_missing<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    must("delete", s.delete(&v)).await;
    assert!(
        must("load", s.load(&v)).await.is_none(),
        "delete_removes: record still loads"
    );
    must("delete of a missing record", s.delete(&v)).await;
}

async fn update_never_resurrects_a_deleted_record<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    must("delete", s.delete(&v)).await;
    let c = changes(&["n"], &[], false);
    let got = must("update", s.update(&v, &sample(), &c, expires_in(60))).await;
    assert!(
        got.is_none(),
        "update_never_resurrects: update of a deleted record wrote it"
    );
    assert!(
        must("load", s.load(&v)).await.is_none(),
        "update_never_resurrects: record is back"
    );
}

async fn touch_of_missing_record_is_false<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    assert!(
        must("touch", s.touch(&v, expires_in(120))).await,
        "touch of a live record answered false"
    );
    must("delete", s.delete(&v)).await;
    assert!(
        !must("touch", s.touch(&v, expires_in(60))).await,
        "touch of a deleted record answered true"
    );
    assert!(
        must("load", s.load(&v)).await.is_none(),
        "touch brought a deleted record back"
    );
}

async fn concurrent_changes_to_different_keys_both_survive<St: Store>(s: &St) {
    let base = sample();
    let v = must("create", s.create(&base, expires_in(60))).await;
    let mut a = base.clone();
    a.insert("a", json!("from A"));
    let mut b = base.clone();
    b.insert("b", json!("from B"));
    let ca = changes(&["a"], &[], false);
    let cb = changes(&["b"], &[], false);
    let (ra, rb) = tokio::join!(
        s.update(&v, &a, &ca, expires_in(60)),
        s.update(&v, &b, &cb, expires_in(60))
    );
    let (ra, rb) = (ra.expect("update A"), rb.expect("update B"));
    let v = rb.or(ra).expect("concurrent updates answered None");
    let got = must("load", s.load(&v)).await.expect("record vanished");
    assert_eq!(
        got.get("a"),
        Some(&json!("from A")),
        "concurrent changes: A's key lost"
    );
    assert_eq!(
        got.get("b"),
        Some(&json!("from B")),
        "concurrent changes: B's key lost"
    );
    assert_eq!(
        got.get("user"),
        Some(&json!("ada")),
        "concurrent changes: untouched key lost"
    );
}

async fn ttl_is_kept_by_the_store<St: Store>(s: &St) {
    let short = must("create", s.create(&sample(), expires_in(1))).await;
    let touched = must("create", s.create(&sample(), expires_in(1))).await;
    let updated = must("create", s.create(&sample(), expires_in(1))).await;
    assert!(must("touch", s.touch(&touched, expires_in(60))).await);
    let c = changes(&["n"], &[], false);
    must("update", s.update(&updated, &sample(), &c, expires_in(60))).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        must("load", s.load(&short)).await.is_none(),
        "ttl: an expired record still loads"
    );
    let got = must("update", s.update(&short, &sample(), &c, expires_in(60))).await;
    assert!(got.is_none(), "ttl: update resurrected an expired record");
    assert!(
        !must("touch", s.touch(&short, expires_in(60))).await,
        "ttl: touch revived an expired record"
    );
    assert!(
        must("load", s.load(&touched)).await.is_some(),
        "ttl: touch did not extend the TTL"
    );
    assert!(
        must("load", s.load(&updated)).await.is_some(),
        "ttl: update did not extend the TTL"
    );
}

// ---- through the layer ------------------------------------------------------

type Body = String;

async fn app(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let session = req
        .extensions()
        .get::<Session>()
        .cloned()
        .expect("layer installed");
    let path = req.uri().path().to_owned();
    let mut body = String::new();
    if path != "/untouched" {
        session.load().await.expect("load");
    }
    match path.as_str() {
        "/incr" => {
            let n: u64 = session.get("n").expect("get").unwrap_or(0);
            session.set("n", n + 1).expect("set");
            body = n.to_string();
        }
        "/read" => body = format!("{:?}", session.get::<u64>("n").expect("get")),
        "/flash" => session.add_flash("hello").expect("flash"),
        "/flashes" => body = session.flashes::<String>().expect("flashes").join(","),
        "/clear" => session.clear().expect("clear"),
        "/destroy" => session.destroy(),
        "/cycle" => session.cycle_id().expect("cycle"),
        _ => {}
    }
    Ok(Response::new(body))
}

struct Client<St> {
    layer: SessionLayer<St>,
}

impl<St: Store + Clone> Client<St> {
    fn new(store: &St) -> Self {
        Self {
            layer: SessionLayer::new(store.clone(), Key::from_bytes(&[42; 32]).expect("key")),
        }
    }

    /// Sends a request with `cookie`; returns status, body and the new cookie
    /// pair (`Some("")` for a removal).
    async fn get(&self, path: &str, cookie: Option<&str>) -> (StatusCode, String, Option<String>) {
        let svc = tower::ServiceBuilder::new()
            .layer(self.layer.clone())
            .service_fn(app);
        let mut req = Request::builder().uri(path);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        let res = svc
            .oneshot(req.body(String::new()).expect("request"))
            .await
            .expect("infallible");
        let set = res.headers().get(SET_COOKIE).map(|v| {
            let s = v.to_str().expect("ascii");
            s.split(';').next().unwrap_or("").to_owned()
        });
        let status = res.status();
        (status, res.into_body(), set)
    }
}

fn is_removal(pair: &Option<String>) -> bool {
    pair.as_deref().is_some_and(|p| p.ends_with('='))
}

async fn layer_counter_counts<St: Store + Clone>(s: &St) {
    let c = Client::new(s);
    let (st, body, cookie) = c.get("/incr", None).await;
    assert_eq!(
        (st, body.as_str()),
        (StatusCode::OK, "0"),
        "layer_counter: first answer"
    );
    let mut cookie = cookie.expect("layer_counter: a new session with data sets a cookie");
    for expected in 1..4 {
        let (_, body, next) = c.get("/incr", Some(&cookie)).await;
        assert_eq!(
            body,
            expected.to_string(),
            "layer_counter: count did not advance"
        );
        cookie = next.expect("layer_counter: a changed session sets a cookie");
    }
}

async fn layer_untouched_and_read_only_write_nothing<St: Store + Clone>(s: &St) {
    let c = Client::new(s);
    let (_, _, none) = c.get("/untouched", None).await;
    assert!(none.is_none(), "untouched: Set-Cookie without a session");
    let (_, _, cookie) = c.get("/incr", None).await;
    let cookie = cookie.expect("cookie");
    let (_, _, none) = c.get("/untouched", Some(&cookie)).await;
    assert!(
        none.is_none(),
        "untouched: Set-Cookie for an untouched session"
    );
    let (_, body, none) = c.get("/read", Some(&cookie)).await;
    assert_eq!(body, "Some(1)", "read-only: wrong data");
    assert!(
        none.is_none(),
        "read-only: Set-Cookie for a read-only session"
    );
}

async fn layer_flashes_are_delivered_once<St: Store + Clone>(s: &St, server_side: bool) {
    let c = Client::new(s);
    let (_, _, cookie) = c.get("/flash", None).await;
    let cookie = cookie.expect("flash sets a cookie");
    let (_, body, after) = c.get("/flashes", Some(&cookie)).await;
    assert_eq!(body, "hello", "flashes: not delivered");
    // Reading the only data empties the session: it is removed.
    assert!(
        is_removal(&after),
        "flashes: emptied session not removed: {after:?}"
    );
    // A replay of the old cookie must not show the flash again, unless the
    // store is client-side: then the flash is inside that cookie, which
    // cannot be revoked (such stores document it).
    let (_, body, _) = c.get("/flashes", Some(&cookie)).await;
    if server_side {
        assert_eq!(body, "", "flashes: delivered twice by a server-side store");
    }
}

async fn layer_clear_removes_cookie<St: Store + Clone>(s: &St) {
    let c = Client::new(s);
    let (_, _, cookie) = c.get("/incr", None).await;
    let cookie = cookie.expect("cookie");
    let (_, _, removal) = c.get("/clear", Some(&cookie)).await;
    assert!(
        is_removal(&removal),
        "clear: no removal cookie: {removal:?}"
    );
}

async fn layer_destroy_revokes_old_cookie<St: Store + Clone>(s: &St) {
    let c = Client::new(s);
    let (_, _, cookie) = c.get("/incr", None).await;
    let cookie = cookie.expect("cookie");
    let (_, _, removal) = c.get("/destroy", Some(&cookie)).await;
    assert!(
        is_removal(&removal),
        "destroy: no removal cookie: {removal:?}"
    );
    let (_, body, _) = c.get("/read", Some(&cookie)).await;
    assert_eq!(
        body, "None",
        "destroy: the old cookie still reaches the data"
    );
}

async fn layer_cycle_id_keeps_data_and_revokes_old_cookie<St: Store + Clone>(s: &St) {
    let c = Client::new(s);
    let (_, _, old) = c.get("/incr", None).await;
    let old = old.expect("cookie");
    let (_, _, new) = c.get("/cycle", Some(&old)).await;
    let new = new.expect("cycle_id: no new cookie");
    assert_ne!(new, old, "cycle_id: same cookie");
    let (_, body, _) = c.get("/read", Some(&new)).await;
    assert_eq!(body, "Some(1)", "cycle_id: data lost");
    let (_, body, _) = c.get("/read", Some(&old)).await;
    assert_eq!(
        body, "None",
        "cycle_id: the old cookie still reaches the data"
    );
}
