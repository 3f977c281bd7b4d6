#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
mod codec;
mod config;
#[cfg(feature = "csrf")]
#[cfg_attr(docsrs, doc(cfg(feature = "csrf")))]
pub mod csrf;
mod engine;
mod error;
mod expiry;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
mod flash;
mod id;
mod key;
mod layer;
mod service;
mod session;
mod sessions;
mod settings;
mod state;
pub mod store;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;

pub use codec::{Protection, MAX_COOKIE_LEN};
pub use config::{CookieOptions, SameSite};
pub use error::{BoxError, ConfigError, Error, SharedError, ValueError, ValueErrorKind};
pub use expiry::{Expiry, Refresh, DEFAULT_IDLE, MAX_LIFETIME};
pub use flash::MAX_FLASHES;
pub use id::Id;
pub use key::{Key, MIN_KEY_LEN};
pub use layer::{SessionLayer, SessionLayerBuilder};
pub use service::{ResponseFuture, SessionService};
pub use session::Session;
pub use sessions::Sessions;
pub use state::SessionStatus;
#[cfg(feature = "cookie-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookie-store")))]
pub use store::CookieStore;
#[cfg(feature = "memory-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory-store")))]
pub use store::MemoryStore;
pub use store::Store;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisStore, RedisStoreBuilder};
