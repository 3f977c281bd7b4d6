//! A user's sessions through the layer, on the memory store: bind at login,
//! list with metadata, end one, all, all but the current; each checked one
//! request further, with overlapping requests, and against the store's ops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use sessio::clock::ManualClock;
use sessio::users::{SessionHandle, UserSessions};
use sessio::{Error, Key, MemoryStore, Session, SessionLayer};
use tokio::sync::Notify;

mod common;
use common::{call, Reply, TestStore};

#[derive(Clone)]
struct App {
    users: UserSessions<TestStore>,
    /// Holds `/slow-write` between its load and its change.
    gate: Arc<Notify>,
    loaded: Arc<Notify>,
}

type Q = Query<HashMap<String, String>>;

fn router(store: TestStore, clock: ManualClock, gate: Arc<Notify>, loaded: Arc<Notify>) -> Router {
    let app = App {
        users: UserSessions::new(store.clone()),
        gate,
        loaded,
    };
    let layer = SessionLayer::builder(store, Key::from_bytes(&[7; 32]).unwrap())
        .with_clock(clock)
        .with_secure(false)
        .build()
        .unwrap();
    Router::new()
        .route(
            "/login",
            get(|s: Session, Query(q): Q| async move {
                s.cycle_id()?;
                s.set_user(&q["user"])?;
                if let Some(d) = q.get("device") {
                    s.set_meta("device", d)?;
                }
                Ok::<_, Error>("in")
            }),
        )
        .route(
            "/me",
            get(|s: Session| async move {
                Ok::<_, Error>(s.user()?.unwrap_or_else(|| "nobody".into()))
            }),
        )
        .route(
            "/cart",
            get(|s: Session| async move {
                let n: u64 = s.get("cart")?.unwrap_or(0);
                s.set("cart", n + 1)?;
                Ok::<_, Error>((n + 1).to_string())
            }),
        )
        .route(
            "/cycle",
            get(|s: Session| async move {
                s.cycle_id()?;
                Ok::<_, Error>("cycled")
            }),
        )
        .route(
            "/logout",
            get(|s: Session| async move {
                s.destroy();
                "out"
            }),
        )
        .route(
            "/clear",
            get(|s: Session| async move {
                s.clear()?;
                Ok::<_, Error>("cleared")
            }),
        )
        .route(
            "/sessions",
            get(|State(app): State<App>, s: Session| async move {
                let list = app.users.list_for(&s).await?;
                let rows: Vec<String> = list
                    .iter()
                    .map(|e| {
                        let secs = |t: Option<std::time::SystemTime>| {
                            t.map_or(0, |t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
                        };
                        format!(
                            "{} {} {} {} {}",
                            e.handle(),
                            e.meta().get("device").map_or("-", String::as_str),
                            if e.is_current() { "current" } else { "other" },
                            secs(e.signed_in()),
                            secs(e.last_seen()),
                        )
                    })
                    .collect();
                Ok::<_, Error>(rows.join("\n"))
            }),
        )
        .route(
            "/end",
            get(
                |State(app): State<App>, s: Session, Query(q): Q| async move {
                    let user = s.user()?.unwrap_or_default();
                    let handle = SessionHandle::parse(&q["h"]).expect("a handle");
                    Ok::<_, Error>(app.users.end(&user, &handle).await?.to_string())
                },
            ),
        )
        .route(
            "/end-others",
            get(|State(app): State<App>, s: Session| async move {
                Ok::<_, Error>(app.users.end_others(&s).await?.to_string())
            }),
        )
        .route(
            "/slow-write",
            get(|State(app): State<App>, s: Session| async move {
                s.load().await?;
                app.loaded.notify_one();
                app.gate.notified().await;
                s.set("late", 1)?;
                Ok::<_, Error>("written")
            }),
        )
        .layer(layer)
        .with_state(app)
}

struct Fixture {
    app: Router,
    store: TestStore,
    clock: ManualClock,
    gate: Arc<Notify>,
    loaded: Arc<Notify>,
}

fn fixture() -> Fixture {
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let store = TestStore::new(MemoryStore::with_clock(clock.clone()));
    let (gate, loaded) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    Fixture {
        app: router(store.clone(), clock.clone(), gate.clone(), loaded.clone()),
        store,
        clock,
        gate,
        loaded,
    }
}

/// A browser: keeps the session cookie it is given.
struct Browser {
    cookie: Option<String>,
}

impl Browser {
    fn new() -> Self {
        Self { cookie: None }
    }

    async fn get(&mut self, f: &Fixture, path: &str) -> Reply {
        let reply = call(&f.app, path, self.cookie.as_deref()).await;
        if let Some(set) = reply.set_cookie("id") {
            let pair = set.split(';').next().unwrap().to_owned();
            let removed = set.contains("Max-Age=0");
            self.cookie = (!removed).then_some(pair);
        }
        reply
    }

    async fn login(&mut self, f: &Fixture, user: &str, device: &str) {
        let r = self
            .get(f, &format!("/login?user={user}&device={device}"))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }

    async fn me(&mut self, f: &Fixture) -> String {
        self.get(f, "/me").await.body
    }

    /// The rows of `/sessions`: handle, device, current/other, signed in, last seen.
    async fn sessions(&mut self, f: &Fixture) -> Vec<Vec<String>> {
        let body = self.get(f, "/sessions").await.body;
        body.lines()
            .map(|l| l.split(' ').map(str::to_owned).collect())
            .collect()
    }
}

fn now(f: &Fixture) -> u64 {
    use sessio::clock::Clock;
    f.clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

// SECURITY K56
#[tokio::test]
async fn ending_another_session_logs_it_out_on_its_next_request() {
    let f = fixture();
    let (mut a, mut b) = (Browser::new(), Browser::new());
    a.login(&f, "alice", "laptop").await;
    b.login(&f, "alice", "phone").await;
    let rows = a.sessions(&f).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mine: Vec<_> = rows.iter().filter(|r| r[2] == "current").collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0][1], "laptop");
    let other = rows.iter().find(|r| r[2] == "other").unwrap();
    assert_eq!(other[1], "phone");

    let ended = a.get(&f, &format!("/end?h={}", other[0])).await;
    assert_eq!(ended.body, "true");
    assert_eq!(b.me(&f).await, "nobody", "the ended session still works");
    assert_eq!(b.me(&f).await, "nobody", "one request further");
    assert_eq!(a.me(&f).await, "alice", "the ending session was ended too");
    let rows = a.sessions(&f).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][2], "current");
}

// SECURITY K56, K57
#[tokio::test]
async fn end_others_keeps_only_the_current_session() {
    let f = fixture();
    let mut browsers: Vec<Browser> = (0..3).map(|_| Browser::new()).collect();
    for (i, b) in browsers.iter_mut().enumerate() {
        b.login(&f, "alice", &format!("d{i}")).await;
    }
    let mut bob = Browser::new();
    bob.login(&f, "bob", "bobs").await;
    let ended = browsers[2].get(&f, "/end-others").await;
    assert_eq!(ended.body, "2");
    assert_eq!(browsers[0].me(&f).await, "nobody");
    assert_eq!(browsers[1].me(&f).await, "nobody");
    assert_eq!(browsers[2].me(&f).await, "alice");
    assert_eq!(bob.me(&f).await, "bob", "another user's session was ended");
    assert_eq!(browsers[2].sessions(&f).await.len(), 1);
    // One request further: a second call ends nothing more.
    assert_eq!(browsers[2].get(&f, "/end-others").await.body, "0");
    assert_eq!(browsers[2].me(&f).await, "alice");
}

// SECURITY K57
#[tokio::test]
async fn another_users_handle_ends_nothing_and_is_never_listed() {
    let f = fixture();
    let (mut alice, mut bob) = (Browser::new(), Browser::new());
    alice.login(&f, "alice", "a").await;
    bob.login(&f, "bob", "b").await;
    let bobs = bob.sessions(&f).await;
    assert_eq!(bobs.len(), 1);
    let listed = alice.sessions(&f).await;
    assert!(
        listed.iter().all(|r| r[0] != bobs[0][0]),
        "bob's session in alice's list"
    );
    let r = alice.get(&f, &format!("/end?h={}", bobs[0][0])).await;
    assert_eq!(r.body, "false");
    assert_eq!(bob.me(&f).await, "bob");
}

// SECURITY K56
#[tokio::test]
async fn cycle_id_keeps_the_session_listed_under_its_new_handle() {
    let f = fixture();
    let mut a = Browser::new();
    a.login(&f, "alice", "laptop").await;
    let before = a.sessions(&f).await;
    a.get(&f, "/cycle").await;
    let after = a.sessions(&f).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(before[0][0], after[0][0], "the handle did not change");
    assert_eq!(after[0][2], "current");
    assert_eq!(after[0][1], "laptop", "metadata lost in the move");
    assert_eq!(after[0][3], before[0][3], "sign-in time changed");
    // The next request still finds it, and ending it still works.
    let mut other = Browser::new();
    other.login(&f, "alice", "phone").await;
    assert_eq!(other.get(&f, "/end-others").await.body, "1");
    assert_eq!(a.me(&f).await, "nobody");
}

#[tokio::test]
async fn logout_and_clear_take_a_session_out_of_the_list() {
    let f = fixture();
    let (mut a, mut b, mut c) = (Browser::new(), Browser::new(), Browser::new());
    a.login(&f, "alice", "a").await;
    b.login(&f, "alice", "b").await;
    c.login(&f, "alice", "c").await;
    b.get(&f, "/logout").await;
    c.get(&f, "/clear").await;
    let rows = a.sessions(&f).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1], "a");
    assert_eq!(c.me(&f).await, "nobody");
}

#[tokio::test]
async fn expired_sessions_are_not_listed() {
    let f = fixture();
    let (mut a, mut b) = (Browser::new(), Browser::new());
    b.login(&f, "alice", "b").await;
    f.clock.advance(Duration::from_secs(23 * 3600));
    a.login(&f, "alice", "a").await;
    f.clock.advance(Duration::from_secs(2 * 3600));
    // b's 24 h idle window is over; a's is not.
    let rows = a.sessions(&f).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1], "a");
    assert_eq!(
        UserSessions::new(f.store.clone())
            .end_all("alice")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn last_seen_moves_at_writes_and_refreshes_with_no_extra_store_call() {
    let f = fixture();
    let mut a = Browser::new();
    a.login(&f, "alice", "a").await;
    let t0 = now(&f);
    let row = &a.sessions(&f).await[0];
    assert_eq!(
        (
            row[3].parse::<u64>().unwrap(),
            row[4].parse::<u64>().unwrap()
        ),
        (t0, t0)
    );

    // A read-only request before half the idle window: one load, nothing else.
    f.clock.advance(Duration::from_secs(60));
    f.store.ops.lock().unwrap().clear();
    assert_eq!(a.me(&f).await, "alice");
    assert_eq!(*f.store.ops.lock().unwrap(), vec!["load"]);
    assert_eq!(
        a.sessions(&f).await[0][4],
        t0.to_string(),
        "a read moved last seen"
    );

    // A write: one load and one update, last seen moves with it.
    f.clock.advance(Duration::from_secs(60));
    f.store.ops.lock().unwrap().clear();
    a.get(&f, "/cart").await;
    assert_eq!(*f.store.ops.lock().unwrap(), vec!["load", "update"]);
    let t1 = now(&f);
    assert_eq!(a.sessions(&f).await[0][4], t1.to_string());

    // Past half the window a read refreshes the expiry: still one write.
    f.clock.advance(Duration::from_secs(13 * 3600));
    f.store.ops.lock().unwrap().clear();
    assert_eq!(a.me(&f).await, "alice");
    assert_eq!(*f.store.ops.lock().unwrap(), vec!["load", "update"]);
    assert_eq!(a.sessions(&f).await[0][4], now(&f).to_string());
    let row = &a.sessions(&f).await[0];
    assert_eq!(row[3], t0.to_string(), "the sign-in time moved");
}

#[tokio::test]
async fn an_unbound_session_costs_what_it_did() {
    let f = fixture();
    let mut a = Browser::new();
    a.get(&f, "/cart").await;
    f.clock.advance(Duration::from_secs(13 * 3600));
    f.store.ops.lock().unwrap().clear();
    assert_eq!(a.me(&f).await, "nobody");
    assert_eq!(*f.store.ops.lock().unwrap(), vec!["load", "touch"]);
    assert!(a.sessions(&f).await.is_empty());
}

// SECURITY K56
#[tokio::test]
async fn a_request_in_flight_when_its_session_is_ended_does_not_bring_it_back() {
    for end_first in [true, false] {
        let f = fixture();
        let (mut a, mut b) = (Browser::new(), Browser::new());
        a.login(&f, "alice", "a").await;
        b.login(&f, "alice", "b").await;
        // b's request loads its session and waits; a ends b's session
        // before or after b's request writes.
        let (app, cookie) = (f.app.clone(), b.cookie.clone());
        let slow = tokio::spawn(async move { call(&app, "/slow-write", cookie.as_deref()).await });
        f.loaded.notified().await;
        if end_first {
            assert_eq!(a.get(&f, "/end-others").await.body, "1");
            f.gate.notify_one();
            let r = slow.await.unwrap();
            assert!(
                r.set_cookie("id").is_some_and(|c| c.contains("Max-Age=0")),
                "the write to an ended session kept its cookie: {r:?}"
            );
        } else {
            f.gate.notify_one();
            assert_eq!(slow.await.unwrap().status, 200);
            assert_eq!(a.get(&f, "/end-others").await.body, "1");
        }
        assert_eq!(
            b.me(&f).await,
            "nobody",
            "end_first={end_first}: the ended session came back"
        );
        assert_eq!(
            b.me(&f).await,
            "nobody",
            "end_first={end_first}: one request further"
        );
        assert_eq!(a.sessions(&f).await.len(), 1, "end_first={end_first}");
    }
}

#[tokio::test]
async fn set_user_and_set_meta_refuse_what_is_over_their_limits() {
    let s = Session::detached(sessio::store::Record::new());
    assert!(matches!(s.set_user(""), Err(Error::InvalidUser)));
    assert!(matches!(
        s.set_user(&"u".repeat(257)),
        Err(Error::InvalidUser)
    ));
    s.set_user(&"u".repeat(256)).unwrap();
    assert!(matches!(
        s.set_meta("k", &"v".repeat(300)),
        Err(Error::InvalidMeta)
    ));
    for i in 0..8 {
        s.set_meta(&format!("f{i}"), "x").unwrap();
    }
    assert!(matches!(s.set_meta("ninth", "x"), Err(Error::InvalidMeta)));
    s.set_meta("f0", "changed").unwrap();
    assert_eq!(s.user().unwrap().as_deref(), Some(&*"u".repeat(256)));
    // Binding again to the same user keeps the sign-in time.
    let since = s.get::<u64>("_user_since").unwrap();
    s.set_user(&"u".repeat(256)).unwrap();
    assert_eq!(s.get::<u64>("_user_since").unwrap(), since);
}
