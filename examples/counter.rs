//! A per-session counter: the smallest complete app.
//!
//! ```sh
//! cargo run --example counter            # memory store on port 3000
//! curl -c jar -b jar localhost:3000/incr # {"count":0}, then 1, 2, ...
//! ```
//!
//! Environment: `PORT` (default 3000), `STORE` (`memory`, the default, or
//! `cookie`: the whole session sealed in the cookie, no server state, or
//! `redis` with `--features redis`: sessions in Redis at `REDIS_URL`, default
//! `redis://127.0.0.1:6379`, shared by every instance),
//! `SESSION_KEY` (from `openssl rand -hex 32`: 64 or more hex digits, or
//! base64 of 32 or 64 bytes; generated when unset, so sessions do not survive
//! a restart).

use std::net::SocketAddr;

use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use sessio::{CookieStore, Key, MemoryStore, Session, SessionLayer, Store};

async fn incr(session: Session) -> Result<Json<Value>, sessio::Error> {
    let count: u64 = session.get("count")?.unwrap_or(0);
    session.set("count", count + 1)?;
    Ok(Json(json!({ "count": count })))
}

async fn index() -> Html<&'static str> {
    Html("<!doctype html><title>counter</title><p>GET <a href=\"/incr\">/incr</a> to count.</p>")
}

fn app<St: Store + Clone>(store: St, key: Key) -> Router {
    // Plain HTTP on localhost: browsers drop `Secure` cookies there, so the
    // example turns it off. Keep the default (on) behind TLS.
    let layer = SessionLayer::builder(store, key)
        .with_secure(false)
        .build()
        .expect("valid session configuration");
    Router::new()
        .route("/", get(index))
        .route("/incr", get(incr))
        .layer(layer)
}

fn key_from_env() -> Key {
    match std::env::var("SESSION_KEY") {
        Ok(s) => Key::parse(&s).unwrap_or_else(|e| panic!("SESSION_KEY: {e}")),
        Err(_) => {
            tracing::warn!(
                "SESSION_KEY is not set: using a random key; sessions will not survive a restart"
            );
            Key::generate()
        }
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let key = key_from_env();
    let store = std::env::var("STORE").unwrap_or_else(|_| "memory".into());
    let app = match store.as_str() {
        "memory" => app(MemoryStore::new(), key),
        "cookie" => app(CookieStore::new(), key),
        #[cfg(feature = "redis")]
        "redis" => {
            let url =
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            let store =
                sessio::RedisStore::connect(&url).unwrap_or_else(|e| panic!("REDIS_URL: {e}"));
            app(store, key)
        }
        other => {
            panic!("STORE={other}: expected memory, cookie or redis (redis needs --features redis)")
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    tracing::info!(%addr, %store, "counter listening");
    axum::serve(listener, app).await.expect("server");
}
