//! RedisStore when Redis dies, hangs or a request is cut off (SECURITY F31,
//! G32-G34).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::redis::{app, RedisServer};
use common::{call, key, Reply};
use http::StatusCode;
use serde_json::json;
use sessio::store::deadpool_redis::{Config, PoolConfig, Runtime};
use sessio::store::{Deadline, Record, Store};
use sessio::{RedisStore, SessionLayer};
use tokio::sync::Barrier;

const TIMEOUT: Duration = Duration::from_millis(300);
/// Connect plus command timeout, times three: generous, so a slow CI machine
/// does not make this a flaky timing test, yet far below "hangs".
const BOUND: Duration = Duration::from_millis(3 * 2 * 300);

fn store(url: &str) -> RedisStore {
    RedisStore::builder()
        .with_connect_timeout(TIMEOUT)
        .with_command_timeout(TIMEOUT)
        .connect(url)
        .expect("store")
}

fn layer(store: RedisStore) -> SessionLayer<RedisStore> {
    SessionLayer::new(store, key())
}

fn expires_in(secs: u64) -> Deadline {
    let ttl = Duration::from_secs(secs);
    Deadline::new(SystemTime::now() + ttl, ttl)
}

fn record(who: &str) -> Record {
    [("who".to_owned(), json!(who))].into_iter().collect()
}

async fn timed(app: &axum::Router, path: &str, cookie: Option<&str>) -> (Reply, Duration) {
    let start = Instant::now();
    let reply = call(app, path, cookie).await;
    (reply, start.elapsed())
}

// SECURITY G32 / G34: a hung Redis costs bounded latency, a 503 and no cookie.
#[tokio::test]
async fn hung_redis_answers_503_within_the_timeouts() {
    let server = RedisServer::start();
    let app = app(layer(store(&server.url())), Arc::new(Barrier::new(1)));
    let cookie = call(&app, "/set?k=user&v=ada", None)
        .await
        .cookie("__Host-id")
        .expect("cookie");

    server.pause();
    for (path, cookie) in [("/get?k=user", Some(&*cookie)), ("/set?k=x&v=1", None)] {
        let (r, took) = timed(&app, path, cookie).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            r.cookie("__Host-id").is_none(),
            "{path}: Set-Cookie while Redis hangs"
        );
        assert!(r.body.is_empty(), "{path}: the handler ran");
        assert!(took < BOUND, "{path} took {took:?}");
    }
    let (r, took) = timed(&app, "/untouched", Some(&cookie)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "an untouched session needs no Redis"
    );
    assert!(took < TIMEOUT);

    server.resume();
    let r = call(&app, "/get?k=user", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "\"ada\""));
}

// SECURITY G34: Redis killed while requests flow, then started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_fails_fast_and_recovers_without_restart() {
    let mut server = RedisServer::start();
    let app = app(layer(store(&server.url())), Arc::new(Barrier::new(1)));
    let cookie = call(&app, "/set?k=user&v=ada", None)
        .await
        .cookie("__Host-id")
        .expect("cookie");

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (app, cookie, stop) = (app.clone(), cookie.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let (path, cookie) = match i % 2 {
                        0 => ("/get?k=user", Some(cookie.as_str())),
                        _ => ("/incr", None),
                    };
                    seen.push(timed(&app, path, cookie).await);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);

    let mut unavailable = 0;
    for worker in workers {
        for (r, took) in worker.await.expect("no panic") {
            assert!(took < BOUND, "a request took {took:?}");
            match r.status {
                StatusCode::OK => {}
                StatusCode::SERVICE_UNAVAILABLE => {
                    unavailable += 1;
                    assert!(r.cookie("__Host-id").is_none(), "Set-Cookie on a 503");
                }
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert!(unavailable > 0, "no request noticed Redis was gone");

    server.restart();
    let r = call(&app, "/incr", None).await;
    assert_eq!(r.status, StatusCode::OK, "first request after the restart");
    assert!(r.cookie("__Host-id").is_some());
    // The restarted Redis is empty: the old cookie starts a fresh session.
    let r = call(&app, "/get?k=user", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "none"));
}

// SECURITY F31: a command cut off, by the store's timeout or by the caller
// dropping the request, takes its connection out of the pool; every later
// request reads its own reply.
#[tokio::test]
async fn cut_off_commands_never_return_their_connection_to_the_pool() {
    let server = RedisServer::start();
    let mut config = Config::from_url(server.url());
    config.pool = Some(PoolConfig::new(1));
    let pool = config.create_pool(Some(Runtime::Tokio1)).expect("pool");
    let store = RedisStore::builder()
        .with_connect_timeout(TIMEOUT)
        .with_command_timeout(TIMEOUT)
        .build(pool.clone())
        .expect("store");
    let a = store.create(&record("a"), expires_in(60)).await.expect("a");
    let b = store.create(&record("b"), expires_in(60)).await.expect("b");
    assert_eq!(pool.status().size, 1);

    // Writes (scripts) now hang server-side, while the pool's PING passes:
    // the command itself is what gets cut off.
    assert_eq!(server.cli(&["CLIENT", "PAUSE", "10000", "WRITE"]), "OK");
    let start = Instant::now();
    let err = store
        .create(&record("c"), expires_in(60))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(start.elapsed() < BOUND);
    assert_eq!(pool.status().size, 0, "the cut-off connection was pooled");

    assert_eq!(store.load(&a).await.expect("load"), Some(record("a")));
    assert_eq!(pool.status().size, 1);
    let dropped = tokio::time::timeout(
        Duration::from_millis(100),
        store.create(&record("d"), expires_in(60)),
    )
    .await;
    assert!(dropped.is_err(), "the write should still be paused");
    assert_eq!(
        pool.status().size,
        0,
        "the dropped request's connection was pooled"
    );
    assert_eq!(server.cli(&["CLIENT", "UNPAUSE"]), "OK");

    let loads: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let (id, who) = if i % 2 == 0 {
                (a.clone(), "a")
            } else {
                (b.clone(), "b")
            };
            tokio::spawn(async move { (store.load(&id).await.expect("load"), who) })
        })
        .collect();
    for load in loads {
        let (got, who) = load.await.expect("no panic");
        assert_eq!(got, Some(record(who)), "a reply went to the wrong request");
    }
    let e = store.create(&record("e"), expires_in(60)).await.expect("e");
    assert_eq!(store.load(&e).await.expect("load"), Some(record("e")));
}
