//! RedisStore after its held connection was dropped by Redis, while Redis
//! refuses writes, and with data it could not read back (SECURITY J55, J49).

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::routing::get;
use axum::Router;
use common::redis::{app, free_port, read_skips_the_refresh, RedisServer};
use common::{call, key};
use http::StatusCode;
use serde_json::{json, Value};
use sessio::clock::ManualClock;
use sessio::{Expiry, RedisStore, Session, SessionLayer};
use tokio::sync::Barrier;

fn layer(store: RedisStore, clock: &ManualClock) -> SessionLayer<RedisStore> {
    SessionLayer::builder(store, key())
        .with_expiry(Expiry::OnInactivity(Duration::from_secs(60)))
        .with_clock(clock.clone())
        .build()
        .expect("layer")
}

fn server_app(server: &RedisServer) -> (axum::Router, ManualClock) {
    let clock = ManualClock::new(SystemTime::now());
    let store = RedisStore::connect(&server.url()).expect("store");
    let app = app(layer(store, &clock), Arc::new(Barrier::new(1)));
    (app, clock)
}

/// A session with `user=ada`, written through `app`; its cookie.
async fn session(app: &axum::Router) -> String {
    let r = call(app, "/set?k=user&v=ada", None).await;
    assert_eq!(r.status, StatusCode::OK);
    r.cookie("__Host-id").expect("cookie")
}

// SECURITY J55: the held connection died with the server; the first request
// after the restart, a write, dials again instead of answering 503.
#[tokio::test]
async fn first_request_after_a_redis_restart_succeeds() {
    let mut server = RedisServer::start();
    let (app, _clock) = server_app(&server);
    let cookie = session(&app).await;

    server.restart();
    let r = call(&app, "/incr", None).await;
    assert_eq!(r.status, StatusCode::OK, "first request after the restart");
    assert!(r.cookie("__Host-id").is_some());
    // The restarted Redis is empty: the old cookie starts a fresh session.
    let r = call(&app, "/get?k=user", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "none"));
}

// SECURITY J55: managed Redis, proxies and NAT close idle connections; Redis
// does it itself with `timeout`. Each request after an idle spell succeeds.
#[tokio::test]
async fn first_request_after_an_idle_timeout_close_succeeds() {
    let server = RedisServer::start_with(|_| vec!["--timeout".into(), "1".into()]);
    let (app, _clock) = server_app(&server);
    let cookie = session(&app).await;

    for round in 0..2 {
        // Redis checks idle clients a few times a second: 2 s is past 1 s.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let r = call(&app, "/get?k=user", Some(&cookie)).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::OK, "\"ada\""),
            "read after idle spell {round}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let r = call(&app, "/set?k=n&v=1", Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK, "write after idle spell {round}");
    }
}

// SECURITY J55: an operator's `CLIENT KILL` drops the held connection.
#[tokio::test]
async fn first_request_after_client_kill_succeeds() {
    let server = RedisServer::start();
    let (app, _clock) = server_app(&server);
    let cookie = session(&app).await;

    let killed: u64 = server
        .cli(&["CLIENT", "KILL", "TYPE", "normal"])
        .parse()
        .expect("a count");
    assert!(killed >= 1, "the store's connection was not killed");
    let r = call(&app, "/set?k=user&v=grace", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "write after CLIENT KILL");

    server.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    let r = call(&app, "/get?k=user", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "\"grace\""));
}

// SECURITY J55: concurrent first requests share one new connection; none of
// them sees the dead one's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_first_requests_after_a_restart_all_succeed() {
    let mut server = RedisServer::start();
    let (app, _clock) = server_app(&server);
    session(&app).await;

    server.restart();
    // A session written after the restart by another instance: this app's
    // connection still sees no request.
    let (other, _clock) = server_app(&server);
    let cookie = session(&other).await;
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move {
                let (path, cookie) = match i % 2 {
                    0 => ("/incr", None),
                    _ => ("/get?k=user", Some(cookie.as_str())),
                };
                call(&app, path, cookie).await.status
            })
        })
        .collect();
    for (i, request) in requests.into_iter().enumerate() {
        assert_eq!(
            request.await.expect("no panic"),
            StatusCode::OK,
            "request {i}"
        );
    }
}

/// The two ways of refusing writes that a test can cause on one server:
/// a replica (its master unreachable, so it keeps its data) answers
/// `READONLY`; `min-replicas-to-write` unmet answers `NOREPLICAS`.
fn refuse_writes(server: &RedisServer, how: &str) {
    match how {
        "READONLY" => {
            let port = free_port().to_string();
            assert_eq!(server.cli(&["REPLICAOF", "127.0.0.1", &port]), "OK");
        }
        _ => assert_eq!(
            server.cli(&["CONFIG", "SET", "min-replicas-to-write", "1"]),
            "OK"
        ),
    }
}

fn accept_writes(server: &RedisServer, how: &str) {
    match how {
        "READONLY" => assert_eq!(server.cli(&["REPLICAOF", "NO", "ONE"]), "OK"),
        _ => assert_eq!(
            server.cli(&["CONFIG", "SET", "min-replicas-to-write", "0"]),
            "OK"
        ),
    }
}

// SECURITY J55: while Redis refuses writes, a read that is due a TTL refresh
// still answers (the refresh is skipped with a WARN); writes answer 503.
#[tokio::test]
async fn reads_due_a_ttl_refresh_succeed_while_redis_refuses_writes() {
    for how in ["READONLY", "NOREPLICAS"] {
        let server = RedisServer::start();
        let (app, clock) = server_app(&server);
        let cookie = session(&app).await;
        clock.advance(Duration::from_secs(40));

        refuse_writes(&server, how);
        read_skips_the_refresh(&app, &cookie, how).await;
        let r = call(&app, "/set?k=user&v=grace", Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{how}: a write");
        assert!(
            r.cookie("__Host-id").is_none(),
            "{how}: Set-Cookie on a 503"
        );
        let r = call(&app, "/incr", None).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{how}: a create");

        accept_writes(&server, how);
        let r = call(&app, "/set?k=user&v=grace", Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK, "{how}: writes are back");
        let r = call(&app, "/get?k=user", Some(&cookie)).await;
        assert_eq!(r.body, "\"grace\"", "{how}");
    }
}

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

// SECURITY J49: data nested deeper than JSON reads back is refused when it is
// saved, with a typed error (a 500, no cookie), instead of being stored and
// failing every later load of the session.
#[tokio::test]
async fn data_nested_too_deep_is_refused_at_save() {
    let server = RedisServer::start();
    let clock = ManualClock::new(SystemTime::now());
    let store = RedisStore::connect(&server.url()).expect("store");
    let app = Router::new()
        .route(
            "/deep",
            get(|s: Session| async move {
                s.set("deep", nested(128)).unwrap();
                "set"
            }),
        )
        .route(
            "/shallow",
            get(|s: Session| async move {
                s.set("deep", nested(100)).unwrap();
                "set"
            }),
        )
        .route(
            "/user",
            get(|s: Session| async move { format!("{:?}", s.get::<String>("user").unwrap()) }),
        )
        .merge(common::routes())
        .layer(layer(store, &clock));

    let r = call(&app, "/deep", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "a new session");
    assert!(r.cookie("__Host-id").is_none());

    let cookie = call(&app, "/set?k=user&v=ada", None)
        .await
        .cookie("__Host-id")
        .expect("cookie");
    let r = call(&app, "/deep", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "an update");
    assert!(r.cookie("__Host-id").is_none());
    let r = call(&app, "/user", Some(&cookie)).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "Some(\"ada\")"),
        "the session is still readable"
    );
    let r = call(&app, "/shallow", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "nesting JSON reads back is kept");
    let r = call(&app, "/user", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
}

// SECURITY J55: on a cluster the store holds one cluster connection (one
// multiplexed connection per node) instead of a checkout per command, and
// requests after every node dropped it succeed.
#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn cluster_store_holds_one_connection_and_survives_client_kill() {
    let cluster = common::redis::RedisCluster::start();
    let store = RedisStore::connect_cluster(cluster.urls()).expect("store");
    let clock = ManualClock::new(SystemTime::now());
    let app = app(layer(store.clone(), &clock), Arc::new(Barrier::new(1)));
    let mut cookies = Vec::new();
    for i in 0..12 {
        let r = call(&app, &format!("/set?k=user&v=u{i}"), None).await;
        assert_eq!(r.status, StatusCode::OK);
        cookies.push(r.cookie("__Host-id").expect("cookie"));
    }
    let debug = format!("{store:?}");
    assert!(debug.contains("pool_size: 1,"), "one connection: {debug}");
    // A checkout per command would cost deadpool's health check, a PING,
    // each time.
    let mut monitors: Vec<_> = cluster.nodes().iter().map(|n| n.monitor()).collect();
    for cookie in &cookies {
        let r = call(&app, "/get?k=user", Some(cookie)).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let pings: u64 = monitors
        .iter_mut()
        .map(|m| m.commands().get("ping").copied().unwrap_or(0))
        .sum();
    assert_eq!(pings, 0, "the connection was checked out again");
    drop(monitors);

    for node in cluster.nodes() {
        node.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    }
    for (i, cookie) in cookies.iter().enumerate() {
        let r = call(&app, "/get?k=user", Some(cookie)).await;
        let want = format!("\"u{i}\"");
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, want.as_str()));
    }
    for node in cluster.nodes() {
        node.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    }
    let r = call(&app, "/set?k=user&v=again", Some(&cookies[0])).await;
    assert_eq!(r.status, StatusCode::OK, "a write after CLIENT KILL");
    assert!(format!("{store:?}").contains("pool_size: 1,"));
}
