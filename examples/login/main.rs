//! The flagship example: register, log in, log out, with flash messages and
//! CSRF-protected forms; passwords hashed with Argon2id, users in SQLite.
//! Signed in, a user sees where else they are signed in ("Active sessions"),
//! signs out any other session or all of them, and changes their password,
//! which signs out the others.
//!
//! ```sh
//! cargo run --example login        # then open http://127.0.0.1:3000
//! ```
//!
//! Environment:
//! - `PORT`: default 3000; the server listens on 127.0.0.1 only.
//! - `SESSION_KEY`: from `openssl rand -hex 32` (64 or more hex digits, or
//!   base64 of 32 or 64 bytes; a passphrase is refused); generated when
//!   unset, so sessions do not survive a restart.
//! - `STORE`: `memory` (the default), `cookie` (the whole session sealed in
//!   the cookie: nothing kept on the server, so a logout cannot revoke a
//!   copied cookie before it expires), `redis` (needs `--features redis`:
//!   sessions in Redis, shared by every instance that uses the same Redis and
//!   the same `SESSION_KEY`), `sqlite` (needs `--features sqlite`: sessions
//!   in the users' SQLite file, surviving a restart with the same
//!   `SESSION_KEY`) or `postgres` (needs `--features postgres`: sessions in
//!   the PostgreSQL at `DATABASE_URL`). Each store is set up by one small
//!   function below, which hands `app::router` the store and what lists its
//!   users' sessions: a `UserSessions` over the same store when it keeps a
//!   user index, else the reason the "Active sessions" page shows.
//! - `REDIS_URL`: the Redis for `STORE=redis`; default
//!   `redis://127.0.0.1:6379`. The store connects lazily: while Redis is
//!   unreachable, pages answer 503 and recover once it is back.
//! - `DATABASE_URL`: the SQLite file (`sqlite://` prefix optional); default
//!   `sessio-login.sqlite3` in the temporary directory. With `STORE=postgres`,
//!   a `postgres://` URL for the sessions (users stay in the default file).
//! - `COOKIE_SECURE`: `1` marks the cookie `Secure` (and names it `__Host-id`),
//!   for running behind an HTTPS proxy. Default off; see `cookie_secure`.
//!
//! Two instances, one login (Redis): give both the same `SESSION_KEY`, the
//! same `REDIS_URL` and the same `DATABASE_URL` file, on two ports. Log in on
//! one and the other greets you: the cookie on 127.0.0.1 goes to both ports,
//! and either instance finds the session in Redis; a logout on one ends the
//! session on both.
//!
//! ```sh
//! export SESSION_KEY=$(openssl rand -hex 32) STORE=redis \
//!     REDIS_URL=redis://127.0.0.1:6379 DATABASE_URL=/tmp/sessio-login.sqlite3
//! cargo build --example login --features redis
//! PORT=3000 cargo run --example login --features redis &
//! PORT=3001 cargo run --example login --features redis &
//! # log in on http://127.0.0.1:3000, then open http://127.0.0.1:3001
//! ```

mod app;
mod devices;
mod pages;
mod users;

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;

use sessio::users::UserSessions;
use sessio::{CookieStore, Key, MemoryStore};

use devices::Devices;
use users::Users;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT={p}: not a port number"))?,
        Err(_) => 3000,
    };
    let options = app::Options {
        key: key_from_env()?,
        secure: cookie_secure()?,
    };
    // A wrong STORE is refused before the database is opened.
    let backend = backend_from_env()?;
    let db = database_path();
    let users = Users::open(&db).map_err(|e| format!("opening {}: {e}", db.display()))?;
    tracing::info!(path = %db.display(), "users kept in SQLite");
    // What must live as long as the server (a SQL store's sweeper).
    #[allow(unused_mut)]
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    let (store, router) = match backend {
        Backend::Memory => {
            let (store, devices) = memory();
            ("memory", app::router(store, devices, users, options)?)
        }
        Backend::Cookie => {
            let (store, devices) = cookie();
            ("cookie", app::router(store, devices, users, options)?)
        }
        #[cfg(feature = "redis")]
        Backend::Redis => {
            let (store, devices) = redis()?;
            ("redis", app::router(store, devices, users, options)?)
        }
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            use sessio::store::sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
            let file = SqliteConnectOptions::new()
                .filename(&db)
                .create_if_missing(true);
            let store = sessio::SqlStore::sqlite(SqlitePool::connect_with(file).await?);
            store.migrate().await?;
            keep.push(Box::new(store.spawn_sweeper(SWEEP)));
            let devices = sql_devices(&store);
            ("sqlite", app::router(store, devices, users, options)?)
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let url =
                std::env::var("DATABASE_URL").map_err(|_| "STORE=postgres needs DATABASE_URL")?;
            let pool = sessio::store::sqlx::postgres::PgPoolOptions::new()
                .acquire_timeout(std::time::Duration::from_secs(2))
                .connect_lazy(&url)
                // The error leaves the URL out: it may hold a password.
                .map_err(|_| "DATABASE_URL: not a PostgreSQL URL")?;
            let store = sessio::SqlStore::postgres(pool);
            store.migrate().await?;
            keep.push(Box::new(store.spawn_sweeper(SWEEP)));
            let devices = sql_devices(&store);
            ("postgres", app::router(store, devices, users, options)?)
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("binding {addr}: {e}"))?;
    tracing::info!(%store, "login example listening on http://{addr}");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    drop(keep);
    Ok(())
}

/// The embedded store. The sessions page reads the very store the layer
/// writes: a clone shares the sessions.
fn memory() -> (MemoryStore, Devices) {
    let store = MemoryStore::new();
    let devices = Devices::new(UserSessions::new(store.clone()));
    (store, devices)
}

/// Sessions sealed in their cookies: the server keeps no list of them.
fn cookie() -> (CookieStore, Devices) {
    let why = "The cookie store keeps each session inside its browser's cookie, \
        so this server has no list of them.";
    (CookieStore::new(), Devices::unlisted(why))
}

#[cfg(feature = "redis")]
fn redis() -> Result<(sessio::RedisStore, Devices), Box<dyn Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    // The error leaves the URL out: it may hold a password.
    let store = sessio::RedisStore::connect(&url).map_err(|e| format!("REDIS_URL: {e}"))?;
    // Every instance on this Redis lists and ends the same sessions.
    let devices = Devices::new(UserSessions::new(store.clone()));
    Ok((store, devices))
}

/// What lists the SQL stores' sessions (SQLite and PostgreSQL alike): the
/// same table the layer writes, through a clone sharing the pool.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn sql_devices(store: &sessio::SqlStore) -> Devices {
    Devices::new(UserSessions::new(store.clone()))
}

/// How often a SQL store deletes expired sessions.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const SWEEP: std::time::Duration = std::time::Duration::from_secs(300);

/// Where the sessions live, from `STORE`.
enum Backend {
    Memory,
    Cookie,
    #[cfg(feature = "redis")]
    Redis,
    #[cfg(feature = "sqlite")]
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

fn backend_from_env() -> Result<Backend, Box<dyn Error>> {
    match std::env::var("STORE").as_deref().unwrap_or("memory") {
        "memory" => Ok(Backend::Memory),
        "cookie" => Ok(Backend::Cookie),
        #[cfg(feature = "redis")]
        "redis" => Ok(Backend::Redis),
        #[cfg(not(feature = "redis"))]
        "redis" => Err("STORE=redis needs the redis feature: \
             cargo run --example login --features redis"
            .into()),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Backend::Sqlite),
        #[cfg(not(feature = "sqlite"))]
        "sqlite" => Err("STORE=sqlite needs the sqlite feature: \
             cargo run --example login --features sqlite"
            .into()),
        #[cfg(feature = "postgres")]
        "postgres" => Ok(Backend::Postgres),
        #[cfg(not(feature = "postgres"))]
        "postgres" => Err("STORE=postgres needs the postgres feature: \
             cargo run --example login --features postgres"
            .into()),
        other => {
            Err(format!("STORE={other}: expected memory, cookie, redis, sqlite or postgres").into())
        }
    }
}

fn key_from_env() -> Result<Key, Box<dyn Error>> {
    match std::env::var("SESSION_KEY") {
        Ok(s) => Ok(Key::parse(&s).map_err(|e| format!("SESSION_KEY: {e}"))?),
        Err(_) => {
            tracing::warn!(
                "SESSION_KEY is not set: using a random key; sessions will not survive a restart"
            );
            Ok(Key::generate())
        }
    }
}

fn database_path() -> PathBuf {
    match std::env::var("DATABASE_URL") {
        // STORE=postgres: the URL is the sessions'; users keep the default file.
        Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            std::env::temp_dir().join("sessio-login.sqlite3")
        }
        Ok(url) => {
            let path = url.strip_prefix("sqlite:").unwrap_or(&url);
            PathBuf::from(path.strip_prefix("//").unwrap_or(path))
        }
        Err(_) => std::env::temp_dir().join("sessio-login.sqlite3"),
    }
}

/// `Secure` cookies travel only over HTTPS. This example serves plain HTTP on
/// 127.0.0.1, where tools such as curl would not send a `Secure` cookie back,
/// so the flag is off unless `COOKIE_SECURE=1` says TLS is in front (a proxy).
/// A deployed app keeps the library's default: on.
fn cookie_secure() -> Result<bool, Box<dyn Error>> {
    match std::env::var("COOKIE_SECURE").as_deref() {
        Err(_) | Ok("") | Ok("0") | Ok("false") => Ok(false),
        Ok("1") | Ok("true") => Ok(true),
        Ok(other) => Err(format!("COOKIE_SECURE={other}: expected 1 or 0").into()),
    }
}
