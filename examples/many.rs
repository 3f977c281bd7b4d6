//! Two named sessions in one handler: a long-lived shopping cart and a
//! short-lived login, each with its own cookie, store and expiry.
//!
//! ```sh
//! cargo run --example many
//! curl -c jar -b jar -X POST 'localhost:3000/cart?item=apple'
//! curl -c jar -b jar -X POST 'localhost:3000/login?user=ada'
//! curl -c jar -b jar localhost:3000/     # {"cart":["apple"],"user":"ada"}
//! curl -c jar -b jar -X POST localhost:3000/logout
//! curl -c jar -b jar localhost:3000/     # the cart survives: {"cart":["apple"],"user":null}
//! ```
//!
//! Two stacked layers give each session its own store and expiry. When the
//! sessions can share both, one layer does it:
//! `SessionLayer::many(store, key, ["cart", "auth"])`, read the same way
//! through the `Sessions` extractor (gin's `sessions.Many` and `DefaultMany`).
//!
//! A real app would also put `sessio::csrf::CsrfLayer` inside the layers
//! (see the `login` example); this one stays small.
//!
//! Environment: `PORT` (default 3000). Keys are generated at start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Query;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sessio::{Error, Expiry, Key, MemoryStore, SessionLayer, Sessions};

/// Both sessions in one handler.
async fn show(sessions: Sessions) -> Result<Json<Value>, Error> {
    let cart = sessions.get("cart").await?;
    let auth = sessions.get("auth").await?;
    let items: Vec<String> = cart.get("items")?.unwrap_or_default();
    let user: Option<String> = auth.get("user")?;
    Ok(Json(json!({ "cart": items, "user": user })))
}

async fn add(
    sessions: Sessions,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Error> {
    let cart = sessions.get("cart").await?;
    let mut items: Vec<String> = cart.get("items")?.unwrap_or_default();
    if let Some(item) = q.get("item") {
        items.push(item.clone());
    }
    cart.set("items", &items)?;
    Ok(Json(json!({ "cart": items })))
}

async fn login(
    sessions: Sessions,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Error> {
    let auth = sessions.get("auth").await?;
    let user = q.get("user").cloned().unwrap_or_else(|| "guest".into());
    // Only the auth session gets a new id; the cart is not a privilege.
    auth.cycle_id()?;
    auth.set("user", &user)?;
    Ok(Json(json!({ "user": user })))
}

async fn logout(sessions: Sessions) -> Result<Json<Value>, Error> {
    sessions.get("auth").await?.destroy();
    Ok(Json(json!({ "user": null })))
}

/// The app; `Secure` is off because the example serves plain HTTP on loopback.
pub(crate) fn app() -> Result<Router, Error> {
    let cart = SessionLayer::builder(MemoryStore::new(), Key::generate())
        .with_cookie_name("cart")
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::from_secs(30 * 24 * 3600)))
        .build()?;
    let auth = SessionLayer::builder(MemoryStore::new(), Key::generate())
        .with_cookie_name("auth")
        .with_secure(false)
        .with_expiry(Expiry::BrowserSession {
            idle: Duration::from_secs(30 * 60),
        })
        .build()?;
    Ok(Router::new()
        .route("/", get(show))
        .route("/cart", post(add))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(auth)
        .layer(cart))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("many listening on http://{addr}");
    axum::serve(listener, app()?).await?;
    Ok(())
}
