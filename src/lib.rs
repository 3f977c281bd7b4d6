//! HTTP sessions for [tower](https://docs.rs/tower) and
//! [axum](https://docs.rs/axum): signed or encrypted cookies, a pluggable
//! [`Store`], and the behaviour a login needs — lazy loading, writes only
//! when something changed, id rotation, expiry enforced on the server, and
//! store failures answered with a clear status instead of a silently empty
//! session.
//!
//! ```
//! use axum::{routing::get, Router};
//! use sessio::{Key, MemoryStore, Session, SessionLayer};
//!
//! async fn incr(session: Session) -> Result<String, sessio::Error> {
//!     let n: u64 = session.get("n")?.unwrap_or(0);
//!     session.set("n", n + 1)?;
//!     Ok(n.to_string())
//! }
//!
//! let app: Router = Router::new()
//!     .route("/incr", get(incr))
//!     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
//! # let _ = app;
//! ```
//!
//! # How one request flows
//!
//! 1. [`SessionService`] reads every `Cookie` header line, verifies the
//!    session cookie's signature (or opens its encryption) and the times
//!    sealed in it, and puts an unloaded [`Session`] in the request's
//!    extensions. No store I/O yet.
//! 2. The handler extracts [`Session`] (or calls [`Session::load`]): the
//!    store is read once. The first verified cookie with a live record
//!    wins; otherwise the session starts fresh. A store that cannot be
//!    reached makes the layer answer with its error handler (503).
//! 3. The handler reads and changes the data synchronously (`get`, `set`,
//!    `delete`, flashes), and may call [`Session::cycle_id`],
//!    [`Session::destroy`], [`Session::set_expiry`],
//!    [`Session::set_options`] or [`Session::save`].
//! 4. On the way out, the layer plans each session: nothing for an
//!    untouched or unchanged session, one store write (a per-key diff) for a
//!    change, a TTL refresh past half a rolling window, deletions for
//!    `destroy` (even on a 5xx), and the `Set-Cookie` headers that tell the
//!    browser — the cookie, or its removal at the place it was issued.
//!
//! # What goes out
//!
//! | situation | store | `Set-Cookie` |
//! |---|---|---|
//! | the session was never loaded | nothing (a TTL refresh with [`Refresh::OnEveryRequest`]) | nothing |
//! | read only, not past half its window | nothing | nothing |
//! | read only, past half a rolling window, or its settings changed | TTL extended, data not rewritten | the cookie, re-issued |
//! | changed | one write of what changed (a per-key merge) | the cookie, re-issued with a new expiry, when a rolling window is half gone, the settings changed, or the cookie is the data (cookie store); else none: the browser's cookie still holds, and the record's TTL stays at the expiry it carries |
//! | emptied (last key deleted, last flash read, `clear`) | the change sent as a diff; the record deleted only when the *store's* merged record is empty | removal cookie when deleted, else the cookie |
//! | `cycle_id` | the record moved to a new id only if it still exists (never resurrected) | the new cookie |
//! | `destroy` | the record deleted | removal cookie |
//! | the handler answered 5xx | only deletions: `destroy`, and the old record of a `cycle_id`; new data is not saved | removal cookie if a record was deleted, else nothing |
//! | the session's deadline passed (`AtTime`, absolute timeout) | the record deleted | removal cookie |
//! | record gone between load and save | nothing written (WARN) | removal cookie; the handler's response is kept |
//! | a cookie was sent but rejected (bad MAC, expired, unknown id, unreadable record) | an unreadable record is deleted | one removal cookie, unless the session is stored again |
//! | a save the handler ran failed, nothing changed since | nothing: the layer does not send a write twice | nothing |
//! | the store failed on the way out | nothing more | only the cookies of sessions already saved; the error handler's response |
//!
//! A session's own settings (its [`Expiry`] and cookie attribute overrides)
//! ride in its cookie envelope, so every row above plans with them: removal
//! cookies carry the `Path` and `Domain` the cookie was issued under, and a
//! cookie moved to another `Path` or `Domain` gets a removal at the old one.
//!
//! # Modules
//!
//! | where | what |
//! |---|---|
//! | [`SessionLayer`], [`SessionLayerBuilder`] | the middleware and its configuration (cookie attributes, [`Expiry`], [`Refresh`], keys, error handler) |
//! | [`Session`], [`Sessions`] | the handle a handler uses; several named sessions |
//! | [`store`] | the [`Store`] trait and its contract, [`MemoryStore`], [`CookieStore`], `RedisStore`, `SqlStore` |
//! | [`Key`] | secret keys, HKDF sub-keys, rotation with fallback keys |
//! | [`clock`] | the time expiry follows, injectable for tests |
//! | `csrf` | session-bound, masked CSRF tokens and the layer that checks them (feature `csrf`) |
//! | [`users`] | a user's sessions: bind at login, list, end one, all, or all others ("log out everywhere") |
//! | `extract` | the axum extractors (feature `axum`) |
//! | `test_util` | the store conformance suite (feature `test-util`) |
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | [`Session`] and [`Sessions`] as axum extractors (via `axum-core`) |
//! | `memory-store` | yes | [`MemoryStore`] |
//! | `cookie-store` | yes | [`CookieStore`] |
//! | `csrf` | yes | `sessio::csrf` |
//! | `redis` | no | `RedisStore` over a deadpool-redis pool |
//! | `redis-cluster` | no | the same on a Redis Cluster |
//! | `redis-sentinel` | no | the same on a Sentinel-managed master, following failovers |
//! | `redis-tls` | no | `rediss://` URLs |
//! | `postgres` | no | `SqlStore` on PostgreSQL, over the application's sqlx pool |
//! | `sqlite` | no | `SqlStore` on SQLite, over the application's sqlx pool |
//! | `test-util` | no | the conformance suite and a manual clock |
//!
//! A per-instance cache in front of an arbitrary shared store
//! (tower-sessions' `CachingSessionStore`) is deliberately not offered: it
//! would keep serving a session that another instance logged out. The Redis
//! store's opt-in client cache
//! ([`with_client_cache`](crate::store::RedisStoreBuilder::with_client_cache))
//! is different: Redis tells it about every change, and a request reads
//! those messages before it answers from memory.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's examples are compiled and run as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod clock;
/// The response future of [`SessionService`], under its own module as tower
/// and tower-http keep middleware futures.
pub mod future {
    pub use crate::service::ResponseFuture;
}
mod codec;
mod config;
#[cfg(feature = "csrf")]
#[cfg_attr(docsrs, doc(cfg(feature = "csrf")))]
pub mod csrf;
mod error;
mod expiry;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
mod flash;
mod id;
mod key;
mod layer;
mod persist;
mod service;
mod session;
mod sessions;
mod settings;
mod state;
pub mod store;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
pub mod users;

pub use codec::{Protection, MAX_COOKIE_LEN};
pub use config::{CookieOptions, SameSite};
pub use error::{BoxError, ConfigError, Error, ValueError, ValueErrorKind};
pub use expiry::{Expiry, Refresh, DEFAULT_IDLE, MAX_LIFETIME};
pub use flash::MAX_FLASHES;
pub use id::Id;
pub use key::{Key, MIN_KEY_LEN};
pub use layer::{SessionLayer, SessionLayerBuilder};
pub use service::SessionService;
pub use session::Session;
pub use sessions::Sessions;
pub use state::SessionStatus;
#[cfg(feature = "cookie-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookie-store")))]
pub use store::CookieStore;
#[cfg(feature = "memory-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory-store")))]
pub use store::MemoryStore;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use store::SqlStore;
pub use store::Store;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisStore, RedisStoreBuilder};
