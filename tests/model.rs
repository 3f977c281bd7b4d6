//! Model-based test: random sequences of requests from one browser, sent
//! through two layer instances that share a store, checked after every step
//! against a small reference model of what the docs promise: the data the
//! next request sees, the cookie's `Max-Age`, removals, expiry on the
//! server, nothing resurrected. Overlapping pairs (a slow request that loaded
//! before a quick one saved) are part of the mix.
//!
//! `PROPTEST_CASES` sets the number of cases (CI runs the default, 40 on
//! memory and 12 on Redis); `scripts/model` runs a long one.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use common::*;
use proptest::prelude::*;
use sessio::clock::ManualClock;
use sessio::{Expiry, MemoryStore, Session, SessionLayer, Store};
use tokio::sync::Barrier;

const WINDOW: u64 = 3600;
const KEYS: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Debug)]
enum Op {
    Set(usize, u8),
    Delete(usize),
    Flash(u8),
    TakeFlashes,
    Clear,
    Cycle,
    Destroy,
    Expire(u64),
    Read,
    Untouched,
    Fail500(usize),
    DestroyThenFail,
    StoreDown,
    Advance(u64),
    OverlapSet(usize, usize),
    OverlapLogout,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS.len();
    prop_oneof![
        4 => (k.clone(), 0..4u8).prop_map(|(k, v)| Op::Set(k, v)),
        2 => k.clone().prop_map(Op::Delete),
        2 => (0..4u8).prop_map(Op::Flash),
        2 => Just(Op::TakeFlashes),
        1 => Just(Op::Clear),
        2 => Just(Op::Cycle),
        1 => Just(Op::Destroy),
        1 => (5..120u64).prop_map(Op::Expire),
        2 => Just(Op::Read),
        1 => Just(Op::Untouched),
        1 => k.clone().prop_map(Op::Fail500),
        1 => Just(Op::DestroyThenFail),
        1 => Just(Op::StoreDown),
        3 => (1..100u64).prop_map(Op::Advance),
        2 => (k.clone(), k).prop_map(|(a, b)| Op::OverlapSet(a, b)),
        1 => Just(Op::OverlapLogout),
    ]
}

/// What the docs promise about the one session of the model's browser.
#[derive(Clone, Debug, Default, PartialEq)]
struct Sess {
    data: BTreeMap<String, String>,
    flashes: Vec<String>,
    /// The rolling window, in seconds, and whether the cookie has Max-Age.
    window: u64,
    persistent: bool,
    /// When the server forgets the session (and the cookie's sealed expiry).
    deadline: u64,
}

impl Sess {
    fn fresh() -> Self {
        Self {
            window: WINDOW,
            ..Self::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty() && self.flashes.is_empty()
    }
}

/// What a response's `Set-Cookie` must be.
#[derive(Debug, PartialEq)]
enum Cookie {
    None,
    Removal,
    /// The session's cookie, with `Max-Age` when persistent.
    Issued {
        max_age: Option<u64>,
    },
}

#[derive(Default)]
struct Model {
    now: u64,
    session: Option<Sess>,
}

impl Model {
    /// The live session a request carrying the jar's cookie sees, dropping
    /// one whose deadline passed.
    fn visible(&mut self) -> Option<Sess> {
        if self
            .session
            .as_ref()
            .is_some_and(|s| s.deadline <= self.now)
        {
            self.session = None;
        }
        self.session.clone()
    }

    fn issued(&self, s: &Sess) -> Cookie {
        Cookie::Issued {
            max_age: s.persistent.then_some(s.window),
        }
    }

    /// The deadline a write to `before` keeps, when it keeps one: the same
    /// id and settings (`reissue` false) and less than half the window gone.
    /// The browser's cookie then still holds, and no cookie is sent.
    fn kept_deadline(&self, before: Option<&Sess>, next: &Sess, reissue: bool) -> Option<u64> {
        let b = before?;
        let quiet = !reissue && b.window == next.window && (b.deadline - self.now) * 2 >= b.window;
        quiet.then_some(b.deadline)
    }

    /// A request that changed `next` (or not) from `before`; `sent` says the
    /// browser sent a cookie; `reissue` that the id or the settings changed.
    fn settle(
        &mut self,
        before: Option<Sess>,
        mut next: Sess,
        changed: bool,
        sent: bool,
        reissue: bool,
    ) -> Cookie {
        let now = self.now;
        if changed {
            if next.is_empty() {
                self.session = None;
                return if sent { Cookie::Removal } else { Cookie::None };
            }
            if let Some(deadline) = self.kept_deadline(before.as_ref(), &next, reissue) {
                next.deadline = deadline;
                self.session = Some(next);
                return Cookie::None;
            }
            next.deadline = now + next.window;
            let c = self.issued(&next);
            self.session = Some(next);
            return c;
        }
        match before {
            Some(mut s) => {
                // Read only: extended past half its window.
                if (s.deadline - now) * 2 < s.window {
                    s.deadline = now + s.window;
                    let c = self.issued(&s);
                    self.session = Some(s);
                    c
                } else {
                    Cookie::None
                }
            }
            None if sent => Cookie::Removal,
            None => Cookie::None,
        }
    }
}

/// The browser: its one cookie and when it expires (`Max-Age`).
#[derive(Default)]
struct Jar {
    cookie: Option<(String, Option<u64>)>,
}

impl Jar {
    fn send(&mut self, now: u64) -> Option<String> {
        if self
            .cookie
            .as_ref()
            .is_some_and(|(_, exp)| exp.is_some_and(|e| e <= now))
        {
            self.cookie = None;
        }
        self.cookie.as_ref().map(|(c, _)| c.clone())
    }

    /// Applies a response's `Set-Cookie` and checks it is what the model says.
    fn receive(&mut self, r: &Reply, now: u64, expected: &Cookie, what: &str) {
        let all = r.set_cookies();
        assert!(all.len() <= 1, "{what}: several Set-Cookie: {all:?}");
        let got = match all.first() {
            None => Cookie::None,
            Some(c) if c.starts_with("__Host-id=;") => Cookie::Removal,
            Some(c) => Cookie::Issued {
                max_age: c
                    .split("; ")
                    .find_map(|a| a.strip_prefix("Max-Age="))
                    .map(|v| v.parse().unwrap()),
            },
        };
        assert_eq!(&got, expected, "{what}: {all:?}");
        match (&got, all.first()) {
            (Cookie::Removal, _) => self.cookie = None,
            (Cookie::Issued { max_age }, Some(c)) => {
                let pair = c.split(';').next().unwrap().to_owned();
                self.cookie = Some((pair, max_age.map(|m| now + m)));
            }
            _ => {}
        }
    }
}

type Params = Query<HashMap<String, String>>;

fn router<St: Store + Clone>(layer: SessionLayer<St>, gate: Arc<Barrier>) -> Router {
    let g1 = gate;
    Router::new()
        .route(
            "/op",
            get(|s: Session, Query(q): Params| async move {
                let k = q.get("k").cloned().unwrap_or_default();
                let v = q.get("v").cloned().unwrap_or_default();
                match q["do"].as_str() {
                    "set" => s.set(&k, &v).unwrap(),
                    "delete" => drop(s.delete(&k).unwrap()),
                    "flash" => s.add_flash(&v).unwrap(),
                    "take" => return (StatusCode::OK, s.flashes::<String>().unwrap().join(",")),
                    "clear" => s.clear().unwrap(),
                    "cycle" => s.cycle_id().unwrap(),
                    "destroy" => s.destroy(),
                    "expire" => s.set_expiry(Expiry::OnInactivity(Duration::from_secs(
                        v.parse::<u64>().unwrap() * 60,
                    ))),
                    "fail" => {
                        s.set(&k, "failed").unwrap();
                        return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
                    }
                    "destroy-fail" => {
                        s.destroy();
                        return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
                    }
                    _ => {}
                }
                (StatusCode::OK, String::new())
            }),
        )
        .route("/untouched", get(|| async { "untouched" }))
        .route(
            "/dump",
            get(|s: Session| async move {
                let mut data = BTreeMap::new();
                for k in KEYS {
                    if let Some(v) = s.get::<String>(k).unwrap() {
                        data.insert(k.to_owned(), v);
                    }
                }
                let flashes: Vec<String> = s.get("_flash").unwrap().unwrap_or_default();
                Json((data, flashes))
            }),
        )
        .route(
            "/gated",
            get(|s: Session, Query(q): Params| async move {
                g1.wait().await;
                g1.wait().await;
                if q["do"] == "cycle" {
                    s.cycle_id().unwrap();
                } else {
                    s.set(&q["k"], &q["v"]).unwrap();
                }
            }),
        )
        .layer(layer)
}

struct World<S> {
    clock: ManualClock,
    store: TestStore<S>,
    apps: [Router; 2],
    gate: Arc<Barrier>,
    model: Model,
    jar: Jar,
}

fn world<S: Store + Clone>(store: TestStore<S>, clock: ManualClock) -> World<S> {
    let gate = Arc::new(Barrier::new(2));
    let layer = || {
        SessionLayer::builder(store.clone(), key())
            .with_expiry(Expiry::BrowserSession {
                idle: Duration::from_secs(WINDOW),
            })
            .with_clock(clock.clone())
            .build()
            .unwrap()
    };
    World {
        apps: [router(layer(), gate.clone()), router(layer(), gate.clone())],
        clock,
        store,
        gate,
        model: Model {
            now: 1_700_000_000,
            session: None,
        },
        jar: Jar::default(),
    }
}

impl<S: Store + Clone> World<S> {
    async fn get(&mut self, i: usize, path: &str) -> (Reply, bool) {
        let cookie = self.jar.send(self.model.now);
        let sent = cookie.is_some();
        (call(&self.apps[i], path, cookie.as_deref()).await, sent)
    }

    /// Runs one step on instance `i` and checks it against the model.
    async fn step(&mut self, i: usize, op: &Op, n: usize) {
        let what = format!("{op:?} on {i}");
        let now = self.model.now;
        let before = {
            // The browser drops an expired cookie before the server sees it.
            let _ = self.jar.send(now);
            if self.jar.cookie.is_none() {
                self.model.session = None;
            }
            self.model.visible()
        };
        let mut next = before.clone().unwrap_or_else(Sess::fresh);
        let (path, status, changed) = match op {
            Op::Set(k, v) => {
                let (k, v) = (KEYS[*k], v.to_string());
                let changed = next.data.get(k) != Some(&v);
                next.data.insert(k.to_owned(), v.clone());
                (format!("/op?do=set&k={k}&v={v}"), 200, changed)
            }
            Op::Delete(k) => {
                let changed = next.data.remove(KEYS[*k]).is_some();
                (format!("/op?do=delete&k={}", KEYS[*k]), 200, changed)
            }
            Op::Flash(v) => {
                next.flashes.push(v.to_string());
                (format!("/op?do=flash&v={v}"), 200, true)
            }
            Op::TakeFlashes => {
                let changed = !next.flashes.is_empty();
                next.flashes.clear();
                ("/op?do=take".to_owned(), 200, changed)
            }
            Op::Clear => {
                let changed = !next.is_empty();
                next.data.clear();
                next.flashes.clear();
                ("/op?do=clear".to_owned(), 200, changed)
            }
            Op::Cycle => ("/op?do=cycle".to_owned(), 200, !next.is_empty()),
            Op::Expire(m) => {
                next.window = m * 60;
                next.persistent = true;
                (
                    "/op?do=expire&v=".to_owned() + &m.to_string(),
                    200,
                    !next.is_empty(),
                )
            }
            Op::Read => ("/op?do=read".to_owned(), 200, false),
            Op::Untouched => {
                let (r, sent) = self.get(i, "/untouched").await;
                // Only an expired sealed deadline is noticed without loading.
                let dead = sent && before.is_none();
                let expected = if dead { Cookie::Removal } else { Cookie::None };
                if dead {
                    self.model.session = None;
                }
                self.jar.receive(&r, now, &expected, &what);
                return;
            }
            Op::Destroy | Op::DestroyThenFail => {
                let path = if matches!(op, Op::Destroy) {
                    "destroy"
                } else {
                    "destroy-fail"
                };
                let (r, sent) = self.get(i, &format!("/op?do={path}")).await;
                let status = if matches!(op, Op::Destroy) { 200 } else { 500 };
                assert_eq!(r.status.as_u16(), status, "{what}");
                self.model.session = None;
                let expected = if sent { Cookie::Removal } else { Cookie::None };
                self.jar.receive(&r, now, &expected, &what);
                return;
            }
            Op::Fail500(k) => {
                let (r, sent) = self.get(i, &format!("/op?do=fail&k={}", KEYS[*k])).await;
                assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{what}");
                let expected = if sent && before.is_none() {
                    Cookie::Removal
                } else {
                    Cookie::None
                };
                self.jar.receive(&r, now, &expected, &what);
                return;
            }
            Op::StoreDown => {
                self.store.fail_on("load", Fail::Unavailable);
                let (r, sent) = self.get(i, "/op?do=read").await;
                self.store.heal();
                let expected = match (sent, &before) {
                    // A live cookie needs the store: 503, nothing written.
                    (true, Some(_)) => {
                        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
                        Cookie::None
                    }
                    // Its sealed deadline passed: refused without the store.
                    (true, None) => {
                        assert_eq!(r.status, StatusCode::OK, "{what}");
                        Cookie::Removal
                    }
                    (false, _) => {
                        assert_eq!(r.status, StatusCode::OK, "{what}");
                        Cookie::None
                    }
                };
                self.jar.receive(&r, now, &expected, &what);
                return;
            }
            Op::Advance(m) => {
                self.clock.advance(Duration::from_secs(m * 60));
                self.model.now += m * 60;
                return;
            }
            Op::OverlapSet(k1, k2) => {
                // Values new to the session, so both requests change it.
                let (v1, v2) = (format!("slow{n}"), format!("quick{n}"));
                self.overlap_set(i, (KEYS[*k1], &v1), (KEYS[*k2], &v2), before)
                    .await;
                return;
            }
            Op::OverlapLogout => {
                self.overlap_logout(i, before).await;
                return;
            }
        };
        let (r, sent) = self.get(i, &path).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {r:?}");
        if let Op::TakeFlashes = op {
            let expected = before
                .as_ref()
                .map(|s| s.flashes.join(","))
                .unwrap_or_default();
            assert_eq!(r.body, expected, "{what}: flashes");
        }
        let reissue = matches!(op, Op::Cycle | Op::Expire(_));
        let expected = self.model.settle(before, next, changed, sent, reissue);
        self.jar.receive(&r, now, &expected, &what);
    }

    /// A slow `set k1` on instance `i` loads first; a quick `set k2` on the
    /// other instance runs whole; then the slow one saves.
    async fn overlap_set(
        &mut self,
        i: usize,
        (k1, v1): (&str, &str),
        (k2, v2): (&str, &str),
        before: Option<Sess>,
    ) {
        let now = self.model.now;
        let cookie = self.jar.send(now);
        let slow = tokio::spawn({
            let (app, cookie) = (self.apps[i].clone(), cookie.clone());
            let path = format!("/gated?do=set&k={k1}&v={v1}");
            async move { call(&app, &path, cookie.as_deref()).await }
        });
        self.gate.wait().await;
        let quick = call(
            &self.apps[1 - i],
            &format!("/op?do=set&k={k2}&v={v2}"),
            cookie.as_deref(),
        )
        .await;
        self.gate.wait().await;
        let slow = slow.await.unwrap();
        assert_eq!(
            (slow.status, quick.status),
            (StatusCode::OK, StatusCode::OK)
        );
        let kept = before
            .as_ref()
            .and_then(|b| self.model.kept_deadline(Some(b), b, false));
        let s = match before {
            // Both changed one session: a per-key merge, the later save wins a key.
            Some(mut s) => {
                s.data.insert(k2.to_owned(), v2.to_owned());
                s.data.insert(k1.to_owned(), v1.to_owned());
                s
            }
            // Two fresh sessions: the browser keeps the one set last.
            None => {
                let mut s = Sess::fresh();
                s.data.insert(k1.to_owned(), v1.to_owned());
                s
            }
        };
        let mut s = s;
        let c = match kept {
            // Before half the window: both writes keep the browser's cookie.
            Some(deadline) => {
                s.deadline = deadline;
                Cookie::None
            }
            None => {
                s.deadline = now + s.window;
                self.model.issued(&s)
            }
        };
        self.model.session = Some(s);
        let what = format!("overlap set {k1}={v1} / {k2}={v2}");
        let mut quick_jar = Jar::default();
        quick_jar.receive(&quick, now, &c, &format!("{what} (quick)"));
        self.jar.receive(&slow, now, &c, &format!("{what} (slow)"));
    }

    /// A slow `cycle_id` loads first; a logout on the other instance runs
    /// whole; the slow one must not bring the session back.
    async fn overlap_logout(&mut self, i: usize, before: Option<Sess>) {
        let now = self.model.now;
        let cookie = self.jar.send(now);
        let slow = tokio::spawn({
            let (app, cookie) = (self.apps[i].clone(), cookie.clone());
            async move { call(&app, "/gated?do=cycle", cookie.as_deref()).await }
        });
        self.gate.wait().await;
        let quick = call(&self.apps[1 - i], "/op?do=destroy", cookie.as_deref()).await;
        self.gate.wait().await;
        let slow = slow.await.unwrap();
        assert_eq!(
            (slow.status, quick.status),
            (StatusCode::OK, StatusCode::OK)
        );
        self.model.session = None;
        let sent = cookie.is_some();
        let removal = if sent { Cookie::Removal } else { Cookie::None };
        let mut quick_jar = Jar::default();
        quick_jar.receive(&quick, now, &removal, "overlap logout (quick)");
        // The slow one: a removal when it loaded a live session (now gone),
        // or when it carried a dead cookie.
        let _ = before;
        self.jar
            .receive(&slow, now, &removal, "overlap logout (slow)");
    }

    /// Reads the whole session through instance 0 and compares.
    async fn check(&mut self, step: usize) {
        let now = self.model.now;
        let _ = self.jar.send(now);
        if self.jar.cookie.is_none() {
            self.model.session = None;
        }
        let before = self.model.visible();
        let (r, sent) = self.get(0, "/dump").await;
        assert_eq!(r.status, StatusCode::OK, "dump after step {step}");
        let (data, flashes): (BTreeMap<String, String>, Vec<String>) =
            serde_json::from_str(&r.body).unwrap();
        let expected = before.clone().unwrap_or_else(Sess::fresh);
        assert_eq!(
            (&data, &flashes),
            (&expected.data, &expected.flashes),
            "after step {step}: the next request sees other data"
        );
        let c = self.model.settle(before, expected, false, sent, false);
        self.jar
            .receive(&r, now, &c, &format!("dump after step {step}"));
    }
}

async fn run<S: Store + Clone>(store: TestStore<S>, clock: ManualClock, ops: Vec<(Op, bool)>) {
    let mut w = world(store, clock);
    for (n, (op, second)) in ops.iter().enumerate() {
        w.step(usize::from(*second), op, n).await;
        w.check(n).await;
    }
    // Nothing resurrected: no session in the model, no record reachable.
    if w.model.session.is_none() {
        let (r, _) = w.get(0, "/dump").await;
        assert_eq!(r.body, "[{},[]]");
    }
}

fn start() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(cases(40))]

    // SECURITY I37 I38 I39 I41 I42: the reference model holds on memory.
    #[test]
    fn memory_store_follows_the_model(ops in proptest::collection::vec((op(), any::<bool>()), 1..40)) {
        let clock = start();
        let store = TestStore::new(MemoryStore::with_clock(clock.clone()));
        runtime().block_on(run(store, clock, ops));
    }
}

#[cfg(feature = "redis")]
proptest! {
    #![proptest_config(cases(12))]

    // SECURITY I37 I38 I39 I41 I42: the same model on a real Redis. Expiry
    // is the layer's (the sealed deadline on the manual clock); Redis's own
    // TTLs are far longer than a case runs.
    #[test]
    fn redis_store_follows_the_model(ops in proptest::collection::vec((op(), any::<bool>()), 1..30)) {
        let server = common::redis::RedisServer::start();
        let clock = start();
        runtime().block_on(async {
            let store = TestStore::new_over(sessio::RedisStore::connect(&server.url()).unwrap());
            run(store, clock, ops).await;
        });
    }
}
