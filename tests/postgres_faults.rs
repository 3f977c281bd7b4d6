//! SqlStore when PostgreSQL stops, comes back, or drops the pool's
//! connections (SECURITY G32-G34, J55 for SQL).

mod common;
mod sql_scenarios;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::postgres::PgServer;
use common::{call, key, routes, Reply};
use sessio::store::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sessio::store::sqlx::PgPool;
use sessio::{SessionLayer, SqlStore};

/// The pool's acquire timeout: what a request waits at most for a
/// connection while the database is down.
const ACQUIRE: Duration = Duration::from_millis(500);
/// Acquire timeout plus a generous margin for a slow CI machine, yet far
/// below "hangs".
const BOUND: Duration = Duration::from_millis(2500);
const APP_NAME: &str = "sessio-faults";

async fn pool(server: &PgServer) -> PgPool {
    let options: PgConnectOptions = server.url().parse().unwrap();
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(ACQUIRE)
        .connect_with(options.application_name(APP_NAME))
        .await
        .expect("pool")
}

async fn app(server: &PgServer) -> axum::Router {
    let store = SqlStore::postgres(pool(server).await);
    store.migrate().await.expect("migrate");
    routes().layer(SessionLayer::new(store, key()))
}

async fn timed(app: &axum::Router, path: &str, cookie: Option<&str>) -> (Reply, Duration) {
    let start = Instant::now();
    let reply = call(app, path, cookie).await;
    (reply, start.elapsed())
}

// SECURITY G32 / G34: PostgreSQL stopped mid-run: each request that needs
// its session fails with a 503 within the pool's acquire timeout, with no
// Set-Cookie; once the server is back the next request succeeds, data intact.
#[tokio::test]
async fn stopped_postgres_answers_503_within_the_pool_timeout_then_recovers() {
    let mut server = PgServer::start();
    let app = app(&server).await;
    let r = call(&app, "/incr", None).await;
    let cookie = r.cookie("__Host-id").expect("cookie");
    assert_eq!(call(&app, "/incr", Some(&cookie)).await.body, "1");

    server.stop();
    let mut worst = Duration::ZERO;
    for (path, cookie) in [
        ("/read", Some(&*cookie)),
        ("/incr", Some(&*cookie)),
        ("/incr", None),
        ("/read", Some(&*cookie)),
    ] {
        let (r, took) = timed(&app, path, cookie).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            r.body
        );
        assert!(r.set_cookies().is_empty(), "{path}: Set-Cookie on a 503");
        assert!(r.body.is_empty(), "{path}: the handler ran");
        assert!(took < BOUND, "{path} took {took:?}");
        worst = worst.max(took);
    }
    eprintln!(
        "503 latency with PostgreSQL stopped: at most {worst:?} (acquire timeout {ACQUIRE:?})"
    );
    let (r, took) = timed(&app, "/untouched", Some(&cookie)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "an untouched session needs no database"
    );
    assert!(took < ACQUIRE);

    server.start_again();
    let r = call(&app, "/incr", Some(&cookie)).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "2"),
        "first request after the restart"
    );
    assert_eq!(call(&app, "/read", Some(&cookie)).await.body, "Some(3)");
}

// SECURITY G34: PostgreSQL stopped while requests flow: every request ends
// in a 200 or a 503 (never a 500, never a hang), a 503 carries no
// Set-Cookie, and requests succeed again once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_fails_fast_and_recovers() {
    let mut server = PgServer::start();
    let app = app(&server).await;
    let cookie = call(&app, "/incr", None)
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
                        0 => ("/incr", Some(cookie.as_str())),
                        _ => ("/incr", None),
                    };
                    seen.push(timed(&app, path, cookie).await);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut unavailable) = (0, 0);
    for worker in workers {
        for (r, took) in worker.await.expect("no panic") {
            assert!(took < BOUND, "a request took {took:?}");
            match r.status {
                StatusCode::OK => ok += 1,
                StatusCode::SERVICE_UNAVAILABLE => {
                    unavailable += 1;
                    assert!(r.set_cookies().is_empty(), "Set-Cookie on a 503");
                }
                other => panic!("unexpected status {other}: {}", r.body),
            }
        }
    }
    assert!(
        ok > 0 && unavailable > 0,
        "{ok} ok, {unavailable} unavailable"
    );
    server.start_again();
    let r = call(&app, "/incr", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "first request after the restart");
}

// SECURITY J55: the server ends every connection of the pool
// (pg_terminate_backend, as a failover or an idle-connection reaper would);
// the next requests see no error: the pool finds the dead connections when
// it checks them out and dials new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_cause_no_user_visible_error() {
    let server = PgServer::start();
    let app = app(&server).await;
    let cookie = call(&app, "/incr", None)
        .await
        .cookie("__Host-id")
        .expect("cookie");
    // Open several connections at once, so more than one is idle in the pool.
    let warm: Vec<_> = (0..4)
        .map(|_| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move { call(&app, "/read", Some(&cookie)).await.status })
        })
        .collect();
    for w in warm {
        assert_eq!(w.await.unwrap(), StatusCode::OK);
    }
    let admin = PgPool::connect(&server.url()).await.unwrap();
    for round in 0..3 {
        let killed: Vec<bool> = sessio::store::sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(APP_NAME)
        .fetch_all(&admin)
        .await
        .unwrap();
        assert!(
            !killed.is_empty(),
            "round {round}: no connection of the pool to end"
        );
        // Let the backends exit and the sockets close.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for path in ["/read", "/incr", "/read"] {
            let r = call(&app, path, Some(&cookie)).await;
            assert_eq!(r.status, StatusCode::OK, "round {round} {path}: {}", r.body);
        }
    }
    assert_eq!(call(&app, "/read", Some(&cookie)).await.body, "Some(4)");
}

// What the store docs say of `test_before_acquire(false)`: without the
// checkout ping, a connection the server ended is found dead only by the
// statement sent on it, so that request gets a 503; later ones succeed.
#[tokio::test]
async fn without_the_checkout_ping_a_terminated_connection_costs_one_503() {
    let server = PgServer::start();
    let options: PgConnectOptions = server.url().parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE)
        .test_before_acquire(false)
        .connect_with(options.application_name("sessio-no-ping"))
        .await
        .unwrap();
    let store = SqlStore::postgres(pool);
    store.migrate().await.unwrap();
    let app = routes().layer(SessionLayer::new(store, key()));
    let cookie = call(&app, "/incr", None)
        .await
        .cookie("__Host-id")
        .expect("cookie");
    let admin = PgPool::connect(&server.url()).await.unwrap();
    sessio::store::sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sessio-no-ping'",
    )
    .execute(&admin)
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = call(&app, "/read", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.set_cookies().is_empty());
    let r = call(&app, "/read", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "Some(1)"));
}

// Bounded latency inside the database: a statement stuck behind a lock is
// cancelled by the `statement_timeout` set in the connect options (as the
// store docs show), and the request gets a 503, not a hang.
#[tokio::test]
async fn statement_timeout_bounds_a_stuck_statement_with_a_503() {
    use sessio::store::{storage_key, Changes, Deadline, Record, Store};
    let server = PgServer::start();
    let options: PgConnectOptions = server.url().parse().unwrap();
    let pool = PgPoolOptions::new()
        .acquire_timeout(ACQUIRE)
        .connect_with(options.options([("statement_timeout", "300ms")]))
        .await
        .unwrap();
    let store = SqlStore::postgres(pool);
    store.migrate().await.unwrap();
    let ttl = Duration::from_secs(60);
    let expires = Deadline::new(std::time::SystemTime::now() + ttl, ttl);
    let record: Record = [("a".to_owned(), serde_json::json!(1))]
        .into_iter()
        .collect();
    let v = store.create(&record, expires).await.unwrap();

    let admin = PgPool::connect(&server.url()).await.unwrap();
    let mut lock = admin.begin().await.unwrap();
    sessio::store::sqlx::query("SELECT 1 FROM sessio_sessions WHERE id_hash = $1 FOR UPDATE")
        .bind(storage_key("", &v))
        .execute(&mut *lock)
        .await
        .unwrap();
    let start = Instant::now();
    let got = store
        .update(&v, &record, &Changes::default(), expires)
        .await;
    let took = start.elapsed();
    assert!(
        matches!(got, Err(sessio::store::StoreError::Unavailable(_))),
        "{got:?}"
    );
    assert!(took < BOUND, "took {took:?}");
    lock.rollback().await.unwrap();
    assert!(store
        .update(&v, &record, &Changes::default(), expires)
        .await
        .is_ok());
}

// SECURITY F31: a store operation cut off mid-statement (a request dropped,
// a timeout around the service) leaves no half-read reply for the next one:
// sqlx drains the connection before reusing it. The cut-off save may still
// be applied, as the store docs say; the next reads are whole and right.
#[tokio::test]
async fn a_statement_cut_off_leaves_no_stale_reply_on_the_connection() {
    use sessio::store::{storage_key, Changes, Deadline, Record, Store};
    let server = PgServer::start();
    let options: PgConnectOptions = server.url().parse().unwrap();
    // One connection, so the next operation gets the very one cut off.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .unwrap();
    let store = SqlStore::postgres(pool);
    store.migrate().await.unwrap();
    let ttl = Duration::from_secs(60);
    let expires = Deadline::new(std::time::SystemTime::now() + ttl, ttl);
    let one: Record = [("a".to_owned(), serde_json::json!(1))]
        .into_iter()
        .collect();
    let other: Record = [("b".to_owned(), serde_json::json!("other"))]
        .into_iter()
        .collect();
    let v = store.create(&one, expires).await.unwrap();
    let w = store.create(&other, expires).await.unwrap();

    let admin = PgPool::connect(&server.url()).await.unwrap();
    let mut lock = admin.begin().await.unwrap();
    sessio::store::sqlx::query("SELECT 1 FROM sessio_sessions WHERE id_hash = $1 FOR UPDATE")
        .bind(storage_key("", &v))
        .execute(&mut *lock)
        .await
        .unwrap();
    let cut = tokio::time::timeout(
        Duration::from_millis(200),
        store.rotate(&v, &one, &Changes::default(), expires),
    )
    .await;
    assert!(cut.is_err(), "the rotation was not held up by the lock");
    lock.rollback().await.unwrap();
    for _ in 0..3 {
        assert_eq!(store.load(&w).await.unwrap(), Some(other.clone()));
    }
    // The rotation was sent, so it ran once the lock was gone: the old id is
    // dead, never half-moved.
    assert_eq!(store.load(&v).await.unwrap(), None);
    assert_eq!(store.load(&w).await.unwrap(), Some(other));
}

// SECURITY K56: PostgreSQL restarted between a login and the listing of the
// user's sessions: while it is down a listing answers 503 (through the
// layer) or `StoreUnavailable` (outside a request), within the pool's
// timeout; once it is back the next listing works and an end takes effect.
#[tokio::test]
async fn listing_a_users_sessions_works_after_a_postgres_restart() {
    use sql_scenarios::users::{app, entries, login, who};
    let mut server = PgServer::start();
    let store = SqlStore::postgres(pool(&server).await);
    store.migrate().await.expect("migrate");
    let users = sessio::users::UserSessions::new(store.clone());
    let app = app(store);
    let a = login(&app, "erin", "laptop").await;
    let b = login(&app, "erin", "phone").await;

    server.stop();
    let (r, took) = timed(&app, "/list", Some(&a)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(r.set_cookies().is_empty(), "Set-Cookie on a 503");
    assert!(took < BOUND, "took {took:?}");
    let start = Instant::now();
    let got = users.list("erin").await;
    assert!(
        matches!(got, Err(sessio::Error::StoreUnavailable(_))),
        "{got:?}"
    );
    assert!(start.elapsed() < BOUND);

    server.start_again();
    let list = entries(&call(&app, "/list", Some(&a)).await);
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(users.list("erin").await.unwrap().len(), 2);
    let hb = sql_scenarios::users::handle_of(&list, "phone");
    assert_eq!(
        call(&app, &format!("/end?h={hb}"), Some(&a)).await.body,
        "true"
    );
    assert_eq!(who(&app, &b).await, "anonymous");
}
