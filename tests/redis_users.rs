//! A user's sessions on RedisStore, single node and Redis Cluster: the index
//! holds no raw ids, stays bounded, and ending a session holds on every
//! instance, also against a concurrent login on the old session
//! (SECURITY K56, K57).
#![cfg(all(feature = "redis", feature = "memory-store"))]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use common::redis::{Monitor, RedisServer};
use common::{call, key};
use http::StatusCode;
use serde_json::json;
use sessio::store::{storage_key, Deadline, Record, Store, UserIndex};
use sessio::users::{SessionHandle, UserSessions, USER_KEY};
use sessio::{RedisStore, Session, SessionLayer};

const COOKIE: &str = "__Host-id";

fn expires_in(secs: u64) -> Deadline {
    let ttl = Duration::from_secs(secs);
    Deadline::new(SystemTime::now() + ttl, ttl)
}

fn bound(user: &str) -> Record {
    let mut r = Record::new();
    r.insert(USER_KEY, json!(user));
    r.insert("_user_since", json!(1_700_000_000u64));
    r.insert("cart", json!([1, 2]));
    r
}

/// An app over `store` with the routes a login flow needs.
fn users_app(store: RedisStore) -> Router {
    let users = UserSessions::new(store.clone());
    let (list, end, others) = (users.clone(), users.clone(), users);
    Router::new()
        .route(
            "/login",
            get(
                |s: Session, Query(q): Query<HashMap<String, String>>| async move {
                    s.cycle_id().unwrap();
                    s.set_user(&q["u"]).unwrap();
                    s.set_meta("device", "test").unwrap();
                    "in"
                },
            ),
        )
        .route(
            "/bind",
            get(
                |s: Session, Query(q): Query<HashMap<String, String>>| async move {
                    s.set_user(&q["u"]).unwrap();
                    "bound"
                },
            ),
        )
        .route(
            "/whoami",
            get(|s: Session| async move { s.user().unwrap().unwrap_or_else(|| "nobody".into()) }),
        )
        .route(
            "/cart",
            get(|s: Session| async move {
                let n: u64 = s.get("cart").unwrap().unwrap_or(0);
                s.set("cart", n + 1).unwrap();
                n.to_string()
            }),
        )
        .route(
            "/peek-cart",
            get(|s: Session| async move { format!("{:?}", s.get::<u64>("cart").unwrap()) }),
        )
        .route("/untouched", get(|| async { "untouched" }))
        .route(
            "/list",
            get(move |s: Session| {
                let users = list.clone();
                async move {
                    let all = users.list_for(&s).await.unwrap();
                    all.iter()
                        .map(|u| format!("{}{}", u.handle(), if u.is_current() { "*" } else { "" }))
                        .collect::<Vec<_>>()
                        .join(",")
                }
            }),
        )
        .route(
            "/end",
            get(
                move |s: Session, Query(q): Query<HashMap<String, String>>| {
                    let users = end.clone();
                    async move {
                        let user = s.user().unwrap().expect("signed in");
                        let handle = SessionHandle::parse(&q["h"]).expect("handle");
                        users.end(&user, &handle).await.unwrap().to_string()
                    }
                },
            ),
        )
        .route(
            "/end-others",
            get(move |s: Session| {
                let users = others.clone();
                async move { users.end_others(&s).await.unwrap().to_string() }
            }),
        )
        .layer(SessionLayer::new(store, key()))
}

/// Signs in as `user` (a fresh session); the cookie.
async fn login(app: &Router, user: &str) -> String {
    let r = call(app, &format!("/login?u={user}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    r.cookie(COOKIE).expect("login sets a cookie")
}

async fn whoami(app: &Router, cookie: &str) -> String {
    let r = call(app, "/whoami", Some(cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

/// Every key on `server`, with every member, field and value under it.
fn dump(server: &RedisServer) -> Vec<(String, String)> {
    let keys = server.cli(&["--scan"]);
    let mut out = Vec::new();
    for key in keys.lines().filter(|k| !k.is_empty()) {
        let kind = server.cli(&["TYPE", key]);
        let content = match kind.as_str() {
            "hash" => server.cli(&["HGETALL", key]),
            "zset" => server.cli(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
            other => panic!("unexpected key type {other} for {key}"),
        };
        out.push((key.to_owned(), content));
    }
    out
}

/// The cookie value and the id it carries, as they could leak: the whole
/// value and every 22-character piece of it (an id is longer).
fn secrets(cookie: &str) -> Vec<String> {
    let value = cookie.split_once('=').expect("name=value").1;
    let mut out = vec![value.to_owned()];
    let bytes: Vec<char> = value.chars().collect();
    for w in bytes.windows(22).step_by(4) {
        out.push(w.iter().collect());
    }
    out
}

fn assert_no_raw_ids(
    dump: &[(String, String)],
    cookies: &[String],
    ids: &[String],
    users: &[&str],
) {
    assert!(
        dump.iter().any(|(k, _)| k.starts_with("session:user:")),
        "no index in the dump"
    );
    for (key, content) in dump {
        let all = format!("{key}\n{content}");
        for c in cookies {
            for s in secrets(c) {
                assert!(!all.contains(&s), "a cookie value piece {s:?} is in redis");
            }
        }
        for id in ids {
            assert!(!all.contains(id.as_str()), "a session id is in redis");
        }
        for u in users {
            assert!(!key.contains(u), "a user id is in the key {key:?}");
        }
    }
}

// SECURITY K56: after logins, no key, member, field or value in Redis holds
// a session id or cookie value, and no key names a user.
#[tokio::test]
async fn the_index_holds_no_raw_ids() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).expect("store");
    let app = users_app(store.clone());
    let mut cookies = Vec::new();
    for user in ["alice-secret-name", "bob-secret-name"] {
        for _ in 0..3 {
            cookies.push(login(&app, user).await);
        }
    }
    // A session that is cycled again, and one bound without cycling.
    let r = call(&app, "/login?u=alice-secret-name", Some(&cookies[0])).await;
    cookies.push(r.cookie(COOKIE).expect("cycled"));
    let anon = call(&app, "/cart", None)
        .await
        .cookie(COOKIE)
        .expect("anon");
    call(&app, "/bind?u=bob-secret-name", Some(&anon)).await;
    cookies.push(anon);
    let mut ids = Vec::new();
    for user in ["alice-secret-name", "bob-secret-name"] {
        ids.push(store.create(&bound(user), expires_in(60)).await.unwrap());
    }
    assert_eq!(
        store.sessions_of("alice-secret-name").await.unwrap().len(),
        4,
        "alice: three logins, one store record"
    );
    assert_no_raw_ids(
        &dump(&server),
        &cookies,
        &ids,
        &["alice-secret-name", "bob-secret-name"],
    );
}

/// Members of the index of `user`, tombstones included.
fn index_len(server: &RedisServer, user: &str) -> usize {
    let key = storage_key("session:user:", user);
    server.cli(&["ZCARD", &key]).parse().expect("ZCARD")
}

// SECURITY K56: expired and deleted sessions leave the index at its next
// write (a login) and at its next listing.
#[tokio::test]
async fn expired_and_deleted_sessions_leave_the_index() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).expect("store");
    let user = "carol";
    let mut gone = Vec::new();
    for i in 0..40 {
        let secs = if i % 2 == 0 { 1 } else { 60 };
        gone.push(store.create(&bound(user), expires_in(secs)).await.unwrap());
    }
    for id in gone.iter().skip(1).step_by(2) {
        store.delete(id).await.unwrap();
    }
    assert_eq!(
        index_len(&server, user),
        40,
        "deletes leave entries for later"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let kept = store.create(&bound(user), expires_in(60)).await.unwrap();
    assert_eq!(index_len(&server, user), 1, "the next login drops the dead");
    assert_eq!(store.sessions_of(user).await.unwrap().len(), 1);
    store.delete(&kept).await.unwrap();
    assert!(store.sessions_of(user).await.unwrap().is_empty());
    assert_eq!(index_len(&server, user), 0, "the listing drops the last");
    assert_eq!(server.cli(&["DBSIZE"]), "0", "nothing left behind");
}

// SECURITY K56: past the per-user cap a login ends the oldest sessions
// (deleted, not merely forgotten by the index).
#[tokio::test]
async fn a_login_past_the_cap_ends_the_oldest_sessions() {
    let server = RedisServer::start();
    let store = RedisStore::builder()
        .with_max_sessions_per_user(3)
        .connect(&server.url())
        .expect("store");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(store.create(&bound("dave"), expires_in(60)).await.unwrap());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for (i, id) in ids.iter().enumerate() {
        let live = store.load(id).await.unwrap().is_some();
        assert_eq!(live, i >= 2, "session {i}: the two oldest are ended");
    }
    let listed: Vec<String> = store
        .sessions_of("dave")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.handle)
        .collect();
    let newest: Vec<String> = ids[2..].iter().map(|id| storage_key("", id)).collect();
    assert_eq!(listed.len(), 3);
    assert!(
        newest.iter().all(|h| listed.contains(h)),
        "the newest are listed"
    );
    assert_eq!(index_len(&server, "dave"), 3);
}

// SECURITY K56: sessions ended through one instance are logged out on the
// other at their next request, and stay so.
#[tokio::test]
async fn ending_a_session_on_one_instance_logs_it_out_on_the_other() {
    let server = RedisServer::start();
    let a = users_app(RedisStore::connect(&server.url()).expect("store"));
    let b = users_app(RedisStore::connect(&server.url()).expect("store"));
    two_instances(&a, &b).await;
}

// SECURITY K56: the same with the client cache on both instances: the
// ending instance fences its write, and the cached one reads the
// invalidation before it answers from memory.
#[tokio::test]
async fn ending_a_session_logs_it_out_on_a_cached_instance() {
    let server = RedisServer::start();
    let cached = || {
        RedisStore::builder()
            .with_client_cache(100)
            .connect(&server.url())
            .expect("store")
    };
    let a = users_app(cached());
    let b = users_app(cached());
    two_instances(&a, &b).await;
}

async fn two_instances(a: &Router, b: &Router) {
    let on_a = login(a, "erin").await;
    let on_b = login(b, "erin").await;
    let third = login(a, "erin").await;
    assert_eq!(whoami(a, &on_a).await, "erin");
    // One session ended by handle, from the other instance.
    let listed = call(b, "/list", Some(&on_b)).await.body;
    let entries: Vec<&str> = listed.split(',').collect();
    assert_eq!(entries.len(), 3, "three sessions listed: {listed}");
    assert_eq!(entries.iter().filter(|e| e.ends_with('*')).count(), 1);
    // The handle of `third`, as its own instance marks it.
    let third_handle = call(a, "/list", Some(&third))
        .await
        .body
        .split(',')
        .find_map(|e| e.strip_suffix('*').map(str::to_owned))
        .expect("current marked");
    assert_eq!(
        call(b, &format!("/end?h={third_handle}"), Some(&on_b))
            .await
            .body,
        "true"
    );
    for round in 0..2 {
        assert_eq!(
            whoami(a, &third).await,
            "nobody",
            "round {round}: ended session"
        );
    }
    // The others, from the other instance.
    assert_eq!(call(b, "/end-others", Some(&on_b)).await.body, "1");
    for round in 0..2 {
        assert_eq!(
            whoami(a, &on_a).await,
            "nobody",
            "round {round}: ended session"
        );
    }
    assert_eq!(whoami(a, &on_b).await, "erin", "the one kept, seen from a");
    let listed = call(a, "/list", Some(&on_b)).await.body;
    assert!(
        listed.ends_with('*') && !listed.contains(','),
        "only the kept one: {listed}"
    );
}

// SECURITY K57: "end all others" (a password change) on one instance while
// the other cycles the old session (a login on it): whichever runs first,
// no old session survives: the rotation either lands in the index first and
// is ended, or finds its record ended and answers gone. (A login whose
// request found the old session already ended is a fresh session, without
// the old one's data: that one is a new login and stays.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_others_racing_a_login_on_the_old_session_leaves_no_old_session() {
    let server = RedisServer::start();
    let a = users_app(RedisStore::connect(&server.url()).expect("store"));
    let b = users_app(RedisStore::connect(&server.url()).expect("store"));
    race_end_others_with_logins(&a, &b, 30).await;
}

async fn race_end_others_with_logins(a: &Router, b: &Router, rounds: usize) {
    let (mut moved, mut refused, mut fresh) = (0, 0, 0);
    for round in 0..rounds {
        let user = format!("frank{round}");
        let old = login(a, &user).await;
        // Marks the old session's data, so its descendants are known.
        assert_eq!(call(a, "/cart", Some(&old)).await.body, "0");
        let keep = login(b, &user).await;
        let (a2, b2, path, old2, keep2) = (
            a.clone(),
            b.clone(),
            format!("/login?u={user}"),
            old.clone(),
            keep.clone(),
        );
        let relogin = tokio::spawn(async move { call(&a2, &path, Some(&old2)).await });
        let ended = tokio::spawn(async move { call(&b2, "/end-others", Some(&keep2)).await });
        let (relogin, ended) = (relogin.await.unwrap(), ended.await.unwrap());
        assert_eq!(ended.status, StatusCode::OK, "round {round}: end-others");
        assert_eq!(relogin.status, StatusCode::OK, "round {round}: login");
        assert_eq!(whoami(a, &old).await, "nobody", "round {round}: old cookie");
        match relogin.cookie(COOKIE).filter(|c| c != "__Host-id=") {
            Some(new) if whoami(a, &new).await == "nobody" => moved += 1,
            Some(new) => {
                assert_eq!(
                    call(a, "/peek-cart", Some(&new)).await.body,
                    "None",
                    "round {round}: a login on the old session survived end_others"
                );
                fresh += 1;
                // That new login is not the one kept: end it for the check below.
                assert_eq!(call(b, "/end-others", Some(&keep)).await.body, "1");
            }
            None => refused += 1,
        }
        assert_eq!(
            whoami(b, &keep).await,
            user,
            "round {round}: the kept session"
        );
        assert_eq!(
            call(b, "/list", Some(&keep))
                .await
                .body
                .matches(',')
                .count(),
            0,
            "round {round}: only the kept session is listed"
        );
    }
    eprintln!(
        "rotation first, then ended: {moved}; rotation gone: {refused}; old one ended before the login loaded it: {fresh}"
    );
}

// SECURITY K56 / J55: Redis drops the store's connection (CLIENT KILL) or
// restarts between a login and a listing: listing and ending work on the
// next call.
#[tokio::test]
async fn listing_and_ending_work_after_client_kill_and_restart() {
    let mut server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).expect("store");
    let users = UserSessions::new(store.clone());
    let app = users_app(store);
    let first = login(&app, "gina").await;
    let second = login(&app, "gina").await;

    server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    assert_eq!(
        users
            .list("gina")
            .await
            .expect("list after CLIENT KILL")
            .len(),
        2
    );
    server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    let r = call(&app, "/end-others", Some(&first)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "1"));
    assert_eq!(whoami(&app, &second).await, "nobody");

    server.restart();
    // The restarted Redis is empty (and has forgotten the scripts).
    assert!(users
        .list("gina")
        .await
        .expect("list after restart")
        .is_empty());
    assert_eq!(users.end_all("gina").await.expect("end after restart"), 0);
    let again = login(&app, "gina").await;
    assert_eq!(users.list("gina").await.unwrap().len(), 1);
    server.restart();
    assert_eq!(users.end_all("gina").await.expect("end after restart"), 0);
    assert_eq!(whoami(&app, &again).await, "nobody");
}

/// Round trips since the last look, without connection housekeeping.
fn round_trips(monitors: &mut [Monitor]) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    for m in monitors {
        for (name, n) in m.commands() {
            if !matches!(
                name.as_str(),
                "ping" | "unwatch" | "client" | "cluster" | "readonly"
            ) {
                *all.entry(name).or_insert(0) += n;
            }
        }
    }
    all
}

fn calls(expected: &[(&str, u64)]) -> BTreeMap<String, u64> {
    expected
        .iter()
        .map(|(k, n)| ((*k).to_owned(), *n))
        .collect()
}

/// Warms the scripts up on `app`, then measures a login, a read and a write
/// of a bound and of an unbound session; asserts that the binding adds no
/// command to a read or a write, and answers the login costs.
async fn measure(
    app: &Router,
    monitors: &mut Vec<Monitor>,
    open: impl Fn() -> Vec<Monitor>,
) -> [BTreeMap<String, u64>; 3] {
    let anon = call(app, "/cart", None).await.cookie(COOKIE).unwrap();
    call(app, "/cart", Some(&anon)).await;
    let warm = login(app, "hank").await;
    call(app, "/login?u=hank", Some(&warm)).await;
    call(app, "/bind?u=hank", Some(&anon)).await;
    call(app, "/list", Some(&anon)).await;
    let anon = call(app, "/cart", None).await.cookie(COOKIE).unwrap();
    *monitors = open();

    let fresh = call(app, "/login?u=ivy", None)
        .await
        .cookie(COOKIE)
        .unwrap();
    let login_fresh = round_trips(monitors);
    let cycled = call(app, "/login?u=ivy", Some(&fresh))
        .await
        .cookie(COOKIE)
        .unwrap();
    let login_again = round_trips(monitors);
    let other = call(app, "/cart", None).await.cookie(COOKIE).unwrap();
    round_trips(monitors);
    let login_anon = {
        call(app, "/login?u=ivy", Some(&other)).await;
        round_trips(monitors)
    };

    for (cookie, what) in [(&anon, "unbound"), (&cycled, "bound")] {
        let r = call(app, "/whoami", Some(cookie)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            round_trips(monitors),
            calls(&[("hgetall", 1)]),
            "read of a {what} session"
        );
        call(app, "/cart", Some(cookie)).await;
        assert_eq!(
            round_trips(monitors),
            calls(&[("evalsha", 1), ("hgetall", 1)]),
            "write of a {what} session"
        );
        call(app, "/untouched", Some(cookie)).await;
        assert_eq!(
            round_trips(monitors),
            calls(&[]),
            "untouched {what} session"
        );
    }
    [login_fresh, login_anon, login_again]
}

// SECURITY B8 / K56: binding a user adds no round trip to a read or a write;
// on a single node a login, fresh or by cycle_id, is still one script.
#[tokio::test]
async fn binding_adds_no_round_trip_to_reads_and_writes() {
    let server = RedisServer::start();
    let app = users_app(RedisStore::connect(&server.url()).expect("store"));
    let mut monitors = Vec::new();
    let [fresh, anon, again] = measure(&app, &mut monitors, || vec![server.monitor()]).await;
    eprintln!("single node: fresh login {fresh:?}, login on an anonymous session {anon:?}, login again {again:?}");
    assert_eq!(fresh, calls(&[("evalsha", 1)]), "fresh login");
    assert_eq!(
        anon,
        calls(&[("evalsha", 1), ("hgetall", 1)]),
        "login on an anonymous session"
    );
    assert_eq!(
        again,
        calls(&[("evalsha", 1), ("hgetall", 1)]),
        "login on a bound session"
    );
}

#[cfg(feature = "redis-cluster")]
mod cluster {
    use super::*;
    use common::redis::RedisCluster;

    fn store(cluster: &RedisCluster) -> RedisStore {
        RedisStore::connect_cluster(cluster.urls()).expect("store")
    }

    fn cluster_index_len(cluster: &RedisCluster, user: &str) -> usize {
        let key = storage_key("session:user:", user);
        cluster
            .nodes()
            .iter()
            .map(|n| n.cli(&["-c", "ZCARD", &key]).parse::<usize>().unwrap_or(0))
            .max()
            .unwrap_or(0)
    }

    // SECURITY K56, K57: on a real cluster: no raw ids, two instances, the
    // race of end_others with a login on the old session, the cap, and
    // dead entries dropped at the next listing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_users_sessions_on_a_cluster() {
        let cluster = RedisCluster::start();
        let a = users_app(store(&cluster));
        let b = users_app(store(&cluster));

        let mut cookies = Vec::new();
        for user in ["alice-secret-name", "bob-secret-name"] {
            for _ in 0..3 {
                cookies.push(login(&a, user).await);
            }
        }
        let r = call(&a, "/login?u=alice-secret-name", Some(&cookies[0])).await;
        cookies.push(r.cookie(COOKIE).expect("cycled"));
        let dumps: Vec<(String, String)> = cluster.nodes().iter().flat_map(dump).collect();
        assert_no_raw_ids(
            &dumps,
            &cookies,
            &[],
            &["alice-secret-name", "bob-secret-name"],
        );

        two_instances(&a, &b).await;
        race_end_others_with_logins(&a, &b, 20).await;

        let capped = RedisStore::builder()
            .with_max_sessions_per_user(3)
            .connect_cluster(cluster.urls())
            .expect("store");
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(capped.create(&bound("dave"), expires_in(60)).await.unwrap());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for (i, id) in ids.iter().enumerate() {
            let live = capped.load(id).await.unwrap().is_some();
            assert_eq!(live, i >= 2, "session {i}: the two oldest are ended");
        }
        assert_eq!(capped.sessions_of("dave").await.unwrap().len(), 3);

        let s = store(&cluster);
        let mut gone = Vec::new();
        for i in 0..30 {
            let secs = if i % 2 == 0 { 1 } else { 60 };
            gone.push(s.create(&bound("carol"), expires_in(secs)).await.unwrap());
        }
        for id in gone.iter().skip(1).step_by(2) {
            s.delete(id).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(s.sessions_of("carol").await.unwrap().is_empty());
        assert_eq!(
            cluster_index_len(&cluster, "carol"),
            0,
            "the listing drops the dead"
        );
    }

    // SECURITY B8 / K56: on a cluster, too, binding a user adds no round trip
    // to reads and writes; logins cost the extra commands measured here.
    #[tokio::test]
    async fn binding_adds_no_round_trip_to_reads_and_writes_on_a_cluster() {
        let cluster = RedisCluster::start();
        let app = users_app(store(&cluster));
        let mut monitors = Vec::new();
        let open = || cluster.nodes().iter().map(RedisServer::monitor).collect();
        let [fresh, anon, again] = measure(&app, &mut monitors, open).await;
        eprintln!("cluster: fresh login {fresh:?}, login on an anonymous session {anon:?}, login again {again:?}");
        assert_eq!(
            fresh,
            calls(&[("evalsha", 2)]),
            "fresh login: record, then index"
        );
        assert_eq!(
            anon,
            calls(&[("evalsha", 3), ("hgetall", 1)]),
            "login on an anonymous session: take, create, index"
        );
        assert_eq!(
            again,
            calls(&[("del", 1), ("evalsha", 3), ("hgetall", 1)]),
            "login on a bound session: take, create, index, ghost deleted"
        );
    }

    async fn raw(
        cluster: &RedisCluster,
    ) -> sessio::store::deadpool_redis::redis::cluster_async::ClusterConnection {
        sessio::store::deadpool_redis::redis::cluster::ClusterClient::new(cluster.urls())
            .expect("client")
            .get_async_connection()
            .await
            .expect("cluster connection")
    }

    // SECURITY K57: the two halves of the cluster protocol, each in the state
    // a race leaves it in. A rotation that finds its old handle tombstoned
    // (the end ran between its first and third steps) answers gone and
    // leaves no record; a record mid-rotation (a ghost) is listed and ended,
    // never loaded.
    #[tokio::test]
    async fn a_tombstone_refuses_a_rotation_and_a_ghost_is_ended() {
        use sessio::store::deadpool_redis::redis::AsyncCommands;
        use sessio::store::{Changes, Updated};
        let cluster = RedisCluster::start();
        let s = store(&cluster);
        let mut conn = raw(&cluster).await;
        let index = storage_key("session:user:", "kim");

        let old = s.create(&bound("kim"), expires_in(60)).await.unwrap();
        let lapses = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_micros()
            + 60_000_000;
        let tomb = format!("~{}", storage_key("", &old));
        let _: i64 = conn.zadd(&index, &tomb, lapses.to_string()).await.unwrap();
        let got = s
            .rotate(&old, &bound("kim"), &Changes::default(), expires_in(60))
            .await;
        assert_eq!(got.unwrap(), Updated::Gone, "a tombstoned rotation");
        assert!(s.load(&old).await.unwrap().is_none(), "old record");
        assert!(s.sessions_of("kim").await.unwrap().is_empty(), "listed");
        let keys: usize = cluster
            .nodes()
            .iter()
            .map(|n| n.cli(&["DBSIZE"]).parse::<usize>().unwrap())
            .sum();
        assert_eq!(keys, 1, "only the index (its tombstone) is left");

        let ghost = s.create(&bound("kim"), expires_in(60)).await.unwrap();
        let key = storage_key("session:", &ghost);
        let _: i64 = conn.hdel(&key, "\0v").await.unwrap();
        assert!(
            s.load(&ghost).await.unwrap().is_none(),
            "a ghost never loads"
        );
        let listed = s.sessions_of("kim").await.unwrap();
        assert_eq!(listed.len(), 1, "a ghost is listed");
        assert!(
            s.end_session("kim", &listed[0].handle).await.unwrap(),
            "and ended"
        );
        let exists: i64 = conn.exists(&key).await.unwrap();
        assert_eq!(exists, 0, "the ghost is deleted");
        let tombs: Vec<String> = conn.zrange(&index, 0, -1).await.unwrap();
        assert!(
            tombs.contains(&format!("~{}", listed[0].handle)),
            "its end left a tombstone"
        );
    }

    // SECURITY K56 / J55: a cluster node's connections killed between a
    // login and a listing: listing and ending work on the next call.
    #[tokio::test]
    async fn listing_and_ending_work_after_client_kill_on_a_cluster() {
        let cluster = RedisCluster::start();
        let s = store(&cluster);
        let users = UserSessions::new(s.clone());
        let app = users_app(s);
        let first = login(&app, "gina").await;
        let second = login(&app, "gina").await;
        for n in cluster.nodes() {
            n.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
        }
        assert_eq!(
            users
                .list("gina")
                .await
                .expect("list after CLIENT KILL")
                .len(),
            2
        );
        for n in cluster.nodes() {
            n.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
        }
        let r = call(&app, "/end-others", Some(&first)).await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "1"));
        assert_eq!(whoami(&app, &second).await, "nobody");
        assert_eq!(users.list("gina").await.unwrap().len(), 1);
    }
}
