//! One small release server per configuration, all with the same handlers:
//!
//! - `GET /`: never touches the session ("untouched");
//! - `GET /read`: reads the counter, `{"count": n}`;
//! - `GET /incr`: reads the counter and stores `n + 1`, `{"count": n}`.
//!
//! The bare axum server answers `/read` and `/incr` with `{"count": 0}`: the
//! same response without a session layer, the baseline the others are
//! divided by.
//!
//! `server CONFIG PORT`, CONFIG one of `bare`, `sessio-memory`,
//! `sessio-cookie`, `sessio-redis`, `sessio-redis-cached` (the same
//! `RedisStore` with its client cache on, 10 000 entries), `ts-memory`, `ts-memory-signed`
//! (tower-sessions' memory store with its signed cookie, HMAC-SHA256 like
//! sessio's), `ts-redis`, `sessio-sqlite` (a WAL-mode file at `SQLITE_PATH`,
//! default in the temporary directory, emptied at start) and
//! `sessio-postgres` (`DATABASE_URL`). Redis
//! configurations read `REDIS_URL` (default `redis://127.0.0.1:6379`). With
//! `RUST_LOG` set, events go to stderr (`RUST_LOG=sqlx::query=debug`: one
//! line per SQL statement sent). Listens
//! on 127.0.0.1 only. The runtime has one worker per CPU it may run on, so
//! `taskset -c 1` gives a one-core server.

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

const POOL_SIZE: usize = 8;
/// `sessio-redis-cached`: the README's example size.
#[cfg(feature = "redis")]
const CLIENT_CACHE_ENTRIES: usize = 10_000;

async fn untouched() -> &'static str {
    "ok"
}

mod bare {
    use super::*;

    pub(crate) async fn count() -> Json<Value> {
        Json(json!({ "count": 0 }))
    }

    pub(crate) fn app() -> Router {
        Router::new()
            .route("/", get(untouched))
            .route("/read", get(count))
            .route("/incr", get(count))
    }
}

mod with_sessio {
    use super::*;
    use sessio::{Key, Session, SessionLayer, Store};

    async fn read(session: Session) -> Json<Value> {
        let n: u64 = session.get("count").expect("get").unwrap_or(0);
        Json(json!({ "count": n }))
    }

    async fn incr(session: Session) -> Json<Value> {
        let n: u64 = session.get("count").expect("get").unwrap_or(0);
        session.set("count", n + 1).expect("set");
        Json(json!({ "count": n }))
    }

    pub(crate) fn app<St: Store + Clone>(store: St) -> Router {
        Router::new()
            .route("/", get(untouched))
            .route("/read", get(read))
            .route("/incr", get(incr))
            .layer(SessionLayer::new(store, Key::generate()))
    }

    #[cfg(feature = "sql")]
    pub(crate) async fn sqlite(path: &str) -> Router {
        use sessio::store::sqlx::sqlite::{
            SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
        };
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE as u32)
            .connect_with(options)
            .await
            .expect("sqlite pool");
        let store = sessio::SqlStore::sqlite(pool);
        store.migrate().await.expect("migrate");
        app(store)
    }

    #[cfg(feature = "sql")]
    pub(crate) async fn postgres(url: &str) -> Router {
        let pool = sessio::store::sqlx::postgres::PgPoolOptions::new()
            .max_connections(POOL_SIZE as u32)
            .connect(url)
            .await
            .expect("postgres pool");
        let store = sessio::SqlStore::postgres(pool);
        store.migrate().await.expect("migrate");
        app(store)
    }

    #[cfg(feature = "redis")]
    pub(crate) fn redis(url: &str) -> Router {
        let store = sessio::RedisStore::builder()
            .with_pool_size(POOL_SIZE)
            .connect(url)
            .expect("redis store");
        app(store)
    }

    /// The same store with the client cache on: loads answered from memory
    /// until Redis invalidates them, each write followed by a `PING` fence.
    #[cfg(feature = "redis")]
    pub(crate) fn redis_cached(url: &str) -> Router {
        let store = sessio::RedisStore::builder()
            .with_pool_size(POOL_SIZE)
            .with_client_cache(CLIENT_CACHE_ENTRIES)
            .connect(url)
            .expect("redis store with client cache");
        app(store)
    }
}

mod with_tower_sessions {
    use super::*;
    use tower_sessions::{Session, SessionManagerLayer, SessionStore};
    use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

    async fn read(session: Session) -> Json<Value> {
        let n: u64 = session.get("count").await.expect("get").unwrap_or(0);
        Json(json!({ "count": n }))
    }

    async fn incr(session: Session) -> Json<Value> {
        let n: u64 = session.get("count").await.expect("get").unwrap_or(0);
        session.insert("count", n + 1).await.expect("insert");
        Json(json!({ "count": n }))
    }

    pub(crate) fn app<St: SessionStore + Clone>(store: St) -> Router {
        Router::new()
            .route("/", get(untouched))
            .route("/read", get(read))
            .route("/incr", get(incr))
            .layer(SessionManagerLayer::new(store))
    }

    pub(crate) fn signed<St: SessionStore + Clone>(store: St) -> Router {
        Router::new()
            .route("/", get(untouched))
            .route("/read", get(read))
            .route("/incr", get(incr))
            .layer(
                SessionManagerLayer::new(store)
                    .with_signed(tower_sessions::cookie::Key::generate()),
            )
    }

    pub(crate) async fn redis(url: &str) -> Router {
        let config = Config::from_url(url).expect("redis url");
        let pool = Pool::new(config, None, None, None, POOL_SIZE).expect("fred pool");
        // The connection task runs for the life of the process.
        let _task = pool.connect();
        pool.wait_for_connect().await.expect("connect to redis");
        app(tower_sessions_redis_store::RedisStore::new(pool))
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(port)) = (args.next(), args.next()) else {
        eprintln!("usage: server CONFIG PORT");
        std::process::exit(2);
    };
    let port: u16 = port.parse().expect("PORT");
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let app = match config.as_str() {
        "bare" => bare::app(),
        "sessio-memory" => with_sessio::app(sessio::MemoryStore::new()),
        "sessio-cookie" => with_sessio::app(sessio::CookieStore::new()),
        #[cfg(feature = "redis")]
        "sessio-redis" => with_sessio::redis(&redis_url),
        #[cfg(feature = "redis")]
        "sessio-redis-cached" => with_sessio::redis_cached(&redis_url),
        #[cfg(feature = "sql")]
        "sessio-sqlite" => {
            let path = std::env::var("SQLITE_PATH").unwrap_or_else(|_| {
                let dir = std::env::temp_dir();
                format!("{}/sessio-compare-{port}.sqlite3", dir.display())
            });
            with_sessio::sqlite(&path).await
        }
        #[cfg(feature = "sql")]
        "sessio-postgres" => {
            let url = std::env::var("DATABASE_URL").expect("sessio-postgres needs DATABASE_URL");
            with_sessio::postgres(&url).await
        }
        "ts-memory" => with_tower_sessions::app(tower_sessions::MemoryStore::default()),
        "ts-memory-signed" => with_tower_sessions::signed(tower_sessions::MemoryStore::default()),
        "ts-redis" => with_tower_sessions::redis(&redis_url).await,
        other => {
            eprintln!("unknown configuration {other}");
            std::process::exit(2);
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
