//! RedisStore with the client cache on (`with_client_cache`), against a real
//! redis-server: two layer instances on one Redis, where one reads from its
//! cache and the other writes, logs out and cycles ids; round trips counted
//! with `MONITOR`; dropped connections and restarts; the entry bound; the
//! configurations it refuses.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use common::redis::{app, RedisServer};
use common::{call, key};
use http::StatusCode;
use sessio::{ConfigError, Error, RedisStore, SessionLayer};
use tokio::sync::Barrier;

const ROUNDS: usize = 50;

fn cached(server: &RedisServer, entries: usize) -> RedisStore {
    RedisStore::builder()
        .with_client_cache(entries)
        .connect(&server.url())
        .expect("store")
}

fn plain(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url()).expect("store")
}

fn instance(store: RedisStore) -> Router {
    app(SessionLayer::new(store, key()), Arc::new(Barrier::new(1)))
}

/// The value of `user` as instance `app` sees it for `cookie`.
async fn user(app: &Router, cookie: &str) -> String {
    let r = call(app, "/get?k=user", Some(cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

/// A new session with `user=v`, created through `app`; its cookie.
async fn session(app: &Router, v: &str) -> String {
    let r = call(app, &format!("/set?k=user&v={v}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    r.cookie("__Host-id").expect("cookie")
}

/// What A's requests after one of B's changes saw.
#[derive(Default)]
struct Lag {
    /// Rounds where A's very next request still saw the old value.
    late: usize,
    /// The longest it took A to see a change.
    longest: Duration,
}

/// Asks A until it sees `expected`; with `strict`, its first answer must.
async fn seen(app: &Router, cookie: &str, expected: &str, strict: bool, lag: &mut Lag, what: &str) {
    let start = Instant::now();
    let mut first = true;
    loop {
        let got = user(app, cookie).await;
        if got == expected {
            lag.longest = lag.longest.max(start.elapsed());
            return;
        }
        if strict {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let later = user(app, cookie).await;
            panic!("{what}: saw {got}, not {expected}; 50 ms later {later}");
        }
        if first {
            lag.late += 1;
            first = false;
        }
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{what}: still {got} after 100 ms, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Instance A reads through its cache; instance B writes, logs out and
/// cycles ids. With `strict` A's very next request after each of B's
/// responses must see the change; without, within 100 ms.
async fn a_sees_every_change_b_makes(b_cached: bool, strict: bool) -> Lag {
    let mut lag = Lag::default();
    let server = RedisServer::start();
    let store_a = cached(&server, 1000);
    let a = instance(store_a.clone());
    let b = instance(if b_cached {
        cached(&server, 1000)
    } else {
        plain(&server)
    });

    let mut cookie = session(&b, "v0").await;
    let mut expected = "\"v0\"".to_owned();
    for round in 0..ROUNDS {
        // Twice: the second answer comes from A's cache.
        assert_eq!(user(&a, &cookie).await, expected, "round {round}, load");
        assert_eq!(user(&a, &cookie).await, expected, "round {round}, cached");
        assert!(store_a.client_cache_len() >= Some(1), "round {round}");
        match round % 5 {
            // SECURITY E24: a logout on B; A then sees no session.
            3 => {
                let r = call(&b, "/destroy", Some(&cookie)).await;
                assert_eq!(r.status, StatusCode::OK);
                seen(
                    &a,
                    &cookie,
                    "none",
                    strict,
                    &mut lag,
                    &format!("round {round}, logout"),
                )
                .await;
                cookie = session(&a, &format!("n{round}")).await;
                expected = format!("\"n{round}\"");
            }
            // SECURITY E23: a rotation on B; the old cookie is dead on A,
            // the new one carries the data.
            4 => {
                let r = call(&b, "/cycle", Some(&cookie)).await;
                assert_eq!(r.status, StatusCode::OK);
                seen(
                    &a,
                    &cookie,
                    "none",
                    strict,
                    &mut lag,
                    &format!("round {round}, old id"),
                )
                .await;
                cookie = r.cookie("__Host-id").expect("new cookie");
            }
            // A write on A itself: its next read sees it at once.
            2 => {
                let v = format!("a{round}");
                let r = call(&a, &format!("/set?k=user&v={v}"), Some(&cookie)).await;
                assert_eq!(r.status, StatusCode::OK);
                expected = format!("\"{v}\"");
            }
            _ => {
                let v = format!("b{round}");
                let r = call(&b, &format!("/set?k=user&v={v}"), Some(&cookie)).await;
                assert_eq!(r.status, StatusCode::OK);
                expected = format!("\"{v}\"");
            }
        }
        let what = format!("round {round}, after");
        seen(&a, &cookie, &expected, strict, &mut lag, &what).await;
    }
    lag
}

// SECURITY K56: the next request on A sees B's write, logout and rotation,
// every round, when B runs with the cache too (its writes are fenced).
#[tokio::test]
async fn the_next_request_on_a_cached_instance_sees_what_another_cached_instance_changed() {
    a_sees_every_change_b_makes(true, true).await;
}

// The same with two runtime threads, where a request can run while the
// other thread is still busy with the previous response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_request_sees_the_change_on_a_multi_threaded_runtime() {
    a_sees_every_change_b_makes(true, true).await;
}

// A writer without the cache (another application, an instance configured
// without it) does not fence its writes: its changes reach A within the
// time Redis takes to write the invalidation out, which the README states;
// bounded here at 100 ms.
#[tokio::test]
async fn changes_by_an_uncached_writer_are_seen_within_100_ms() {
    let lag = a_sees_every_change_b_makes(false, false).await;
    eprintln!(
        "uncached writer: {} of {ROUNDS} rounds saw the old value first; longest lag {:?}",
        lag.late, lag.longest
    );
}

// Concurrent loads share the cache's connection (pipelined): twenty first
// loads at once all answer right, then from memory, and after B rewrites
// every session, twenty concurrent next requests all see the new values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_share_the_connection_and_all_answer_right() {
    let server = RedisServer::start();
    let store_a = cached(&server, 100);
    let a = instance(store_a.clone());
    let b = instance(cached(&server, 100));
    let mut cookies = Vec::new();
    for i in 0..20 {
        cookies.push(session(&b, &format!("u{i}")).await);
    }
    for (round, prefix) in [(0, "u"), (1, "u"), (2, "w")] {
        if round == 2 {
            for (i, cookie) in cookies.iter().enumerate() {
                let r = call(&b, &format!("/set?k=user&v=w{i}"), Some(cookie)).await;
                assert_eq!(r.status, StatusCode::OK);
            }
        }
        let reads = cookies.iter().enumerate().map(|(i, cookie)| {
            let (a, cookie) = (a.clone(), cookie.clone());
            tokio::spawn(async move { (i, user(&a, &cookie).await) })
        });
        for read in reads.collect::<Vec<_>>() {
            let (i, got) = read.await.expect("task");
            assert_eq!(
                got,
                format!("\"{prefix}{i}\""),
                "round {round}, session {i}"
            );
        }
        assert_eq!(store_a.client_cache_len(), Some(20), "round {round}");
    }
}

// A URL that asks for RESP2 is switched to RESP3: the cache still works.
#[tokio::test]
async fn a_second_read_of_a_cached_session_costs_no_round_trip() {
    let server = RedisServer::start();
    let url = format!("{}/?protocol=resp2", server.url());
    let store = RedisStore::builder()
        .with_client_cache(100)
        .connect(&url)
        .expect("store");
    let a = instance(store.clone());
    let cookie = session(&a, "ada").await;
    let mut monitor = server.monitor();

    assert_eq!(user(&a, &cookie).await, "\"ada\"");
    let first = monitor.commands();
    assert_eq!(first.get("hgetall"), Some(&1), "{first:?}");
    // The cache's connection is dialled here: CLIENT TRACKING, then
    // CLIENT CACHING YES before the load.
    assert_eq!(
        first.get("client"),
        Some(&2),
        "CLIENT TRACKING ON OPTIN, CLIENT CACHING YES: {first:?}"
    );
    for _ in 0..10 {
        assert_eq!(user(&a, &cookie).await, "\"ada\"");
    }
    let later = monitor.commands();
    assert!(later.is_empty(), "cached reads reached redis: {later:?}");
    assert_eq!(store.client_cache_len(), Some(1));
}

// SECURITY J55: the tracking connection dies (an operator's CLIENT KILL);
// another client writes while it is dead; the reader's next request sees
// the write, not its old entry, and the cache works again afterwards.
#[tokio::test]
async fn no_stale_entry_is_served_after_client_kill() {
    let server = RedisServer::start();
    let store_a = cached(&server, 100);
    let a = instance(store_a.clone());
    let b = instance(plain(&server));
    for round in 0..10 {
        let cookie = session(&b, "old").await;
        assert_eq!(user(&a, &cookie).await, "\"old\"");
        assert_eq!(user(&a, &cookie).await, "\"old\"", "cached");

        let killed: u64 = server
            .cli(&["CLIENT", "KILL", "TYPE", "normal"])
            .parse()
            .expect("a count");
        assert!(killed >= 1, "round {round}");
        let r = call(&b, "/set?k=user&v=new", Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK, "round {round}: B's write");
        assert_eq!(user(&a, &cookie).await, "\"new\"", "round {round}");
        assert_eq!(user(&a, &cookie).await, "\"new\"", "round {round}, cached");
    }
}

// SECURITY J55: Redis closes idle connections (`timeout 1`, as managed
// Redis and proxies do); the cache's connection is found closed before it
// answers, so nothing it loaded is served, and the next request still
// succeeds (reads are dialled again, never a 503).
#[tokio::test]
async fn an_idle_close_costs_no_error_and_serves_nothing_stale() {
    let server = RedisServer::start();
    server.cli(&["CONFIG", "SET", "timeout", "1"]);
    let store_a = cached(&server, 100);
    let a = instance(store_a.clone());
    let b = instance(cached(&server, 100));
    let cookie = session(&b, "old").await;
    for round in 0..2 {
        assert_eq!(user(&a, &cookie).await, "\"old\"", "round {round}");
        assert_eq!(user(&a, &cookie).await, "\"old\"", "round {round}, cached");
        assert_eq!(store_a.client_cache_len(), Some(1));
        // Past Redis' idle timeout (checked about every 100 ms).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let r = call(&b, "/set?k=user&v=new", Some(&cookie)).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "round {round}: B's write after idling"
        );
        assert_eq!(
            user(&a, &cookie).await,
            "\"new\"",
            "round {round}, after idling"
        );
        let r = call(&b, "/set?k=user&v=old", Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

// A session whose record expires in Redis is not answered from the cache
// after its TTL, though nothing wrote it.
#[tokio::test]
async fn an_expired_record_is_not_served_from_the_cache() {
    let server = RedisServer::start();
    let a = instance(cached(&server, 100));
    let cookie = session(&a, "ada").await;
    let keys = server.cli(&["KEYS", "session:*"]);
    let key = keys.lines().next().expect("the session's key").to_owned();
    assert_eq!(server.cli(&["PEXPIRE", &key, "400"]), "1");
    assert_eq!(user(&a, &cookie).await, "\"ada\"");
    assert_eq!(user(&a, &cookie).await, "\"ada\"", "cached");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(user(&a, &cookie).await, "none", "after the record's TTL");
}

// SECURITY J55: after a restart the records are gone (no persistence);
// the reader's cache does not bring them back.
#[tokio::test]
async fn no_stale_entry_is_served_after_a_redis_restart() {
    let mut server = RedisServer::start();
    let a = instance(cached(&server, 100));
    let cookie = session(&a, "ada").await;
    assert_eq!(user(&a, &cookie).await, "\"ada\"");
    assert_eq!(user(&a, &cookie).await, "\"ada\"", "cached");

    server.restart();
    assert_eq!(user(&a, &cookie).await, "none", "first read after restart");
    // The cache fills again on the new connection and follows writes.
    let b = instance(plain(&server));
    let cookie = session(&b, "grace").await;
    assert_eq!(user(&a, &cookie).await, "\"grace\"");
    assert_eq!(user(&a, &cookie).await, "\"grace\"");
    let r = call(&b, "/set?k=user&v=hopper", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(user(&a, &cookie).await, "\"hopper\"");
}

// SECURITY J46: the cache holds at most its entries, however many sessions
// are read, and every read still answers right.
#[tokio::test]
async fn the_cache_stays_within_its_entries() {
    let server = RedisServer::start();
    let store = cached(&server, 8);
    let a = instance(store.clone());
    let mut cookies = Vec::new();
    for i in 0..40 {
        let cookie = session(&a, &format!("u{i}")).await;
        assert_eq!(user(&a, &cookie).await, format!("\"u{i}\""));
        assert!(store.client_cache_len() <= Some(8), "after {i} sessions");
        cookies.push(cookie);
    }
    assert_eq!(store.client_cache_len(), Some(8));
    for (i, cookie) in cookies.iter().enumerate() {
        assert_eq!(user(&a, cookie).await, format!("\"u{i}\""));
        assert!(store.client_cache_len() <= Some(8));
    }
}

// Records over the size limit (here written by a store without one) are not
// kept: each read of them goes to Redis.
#[tokio::test]
async fn records_over_the_size_limit_are_not_cached() {
    let server = RedisServer::start();
    let store = RedisStore::builder()
        .with_client_cache(100)
        .with_max_record_size(40)
        .connect(&server.url())
        .expect("store");
    let a = instance(store.clone());
    let b = instance(plain(&server));
    let small = session(&b, "ada").await;
    let large = session(&b, "a-name-long-enough-to-pass-the-limit").await;
    for _ in 0..2 {
        assert_eq!(user(&a, &small).await, "\"ada\"");
        assert_eq!(
            user(&a, &large).await,
            "\"a-name-long-enough-to-pass-the-limit\""
        );
    }
    assert_eq!(store.client_cache_len(), Some(1));
}

fn refused(result: Result<RedisStore, Error>) -> ConfigError {
    match result {
        Err(Error::Config(err @ ConfigError::ClientCache(_))) => err,
        other => panic!("expected ConfigError::ClientCache, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pool_passed_in_and_zero_entries_are_refused() {
    let pool = sessio::store::deadpool_redis::Config::from_url("redis://127.0.0.1:1")
        .create_pool(Some(sessio::store::deadpool_redis::Runtime::Tokio1))
        .expect("pool");
    let err = refused(RedisStore::builder().with_client_cache(10).build(pool));
    assert!(err.to_string().contains("connect"), "{err}");
    refused(
        RedisStore::builder()
            .with_client_cache(0)
            .connect("redis://127.0.0.1:1"),
    );
}

#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn a_cluster_is_refused() {
    let err = refused(
        RedisStore::builder()
            .with_client_cache(10)
            .connect_cluster(["redis://127.0.0.1:1"]),
    );
    assert!(err.to_string().contains("Cluster"), "{err}");
}

#[cfg(feature = "redis-sentinel")]
#[tokio::test]
async fn sentinel_is_refused() {
    let err = refused(
        RedisStore::builder()
            .with_client_cache(10)
            .connect_sentinel(["redis://127.0.0.1:1"], "mymaster"),
    );
    assert!(err.to_string().contains("Sentinel"), "{err}");
}

// The cache's own connection does not do TLS: refused when the store is
// built, not a failure on the first request.
#[cfg(feature = "redis-tls")]
#[tokio::test]
async fn a_tls_url_is_refused() {
    let err = refused(
        RedisStore::builder()
            .with_client_cache(10)
            .connect("rediss://127.0.0.1:1"),
    );
    assert!(err.to_string().contains("TLS"), "{err}");
}

// A unix socket URL works like a TCP one.
#[tokio::test]
async fn a_unix_socket_url_works() {
    let server = RedisServer::start_with(|dir| {
        vec![
            "--unixsocket".into(),
            dir.join("redis.sock").display().to_string(),
        ]
    });
    let url = format!("unix://{}", server.dir().join("redis.sock").display());
    let store = RedisStore::builder()
        .with_client_cache(10)
        .connect(&url)
        .expect("store");
    let a = instance(store.clone());
    let b = instance(cached(&server, 10));
    let cookie = session(&b, "ada").await;
    assert_eq!(user(&a, &cookie).await, "\"ada\"");
    assert_eq!(user(&a, &cookie).await, "\"ada\"");
    assert_eq!(store.client_cache_len(), Some(1));
    let r = call(&b, "/set?k=user&v=grace", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(user(&a, &cookie).await, "\"grace\"");
}
