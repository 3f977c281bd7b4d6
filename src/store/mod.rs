//! Where session data lives: the [`Store`] trait and the built-in stores.
//!
//! A store keeps [`Record`]s and mints the value that goes in the cookie: a
//! random id for server-side stores, the data itself for the cookie store. The
//! layer signs or encrypts that value (as [`Store::protection`] asks), checks
//! the times sealed with it, and only then hands it back to the store, so a
//! store holds no cryptography.
//!
//! The contract:
//! - `create` never overwrites an existing record: on an id collision it mints
//!   another id.
//! - `update` never brings back a deleted or expired record: it answers
//!   `Ok(None)` and writes nothing.
//! - `touch` extends the TTL without rewriting data.
//! - Expiry is given as [`Expires`]; the store forgets the record after it.
//! - Unreachable backends answer [`Error::StoreUnavailable`] (the layer answers
//!   503), other failures [`Error::Store`] (500).
//!
//! [`test_util`](crate::test_util) (feature `test-util`) checks all of this
//! against any store.
//!
//! # Write your own store
//!
//! A complete store over a `HashMap` (a real one would talk to a database):
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//! use std::time::SystemTime;
//!
//! use sessio::store::{Changes, Expires, Record, Store};
//! use sessio::{Error, Id};
//!
//! #[derive(Clone, Default)]
//! struct MapStore {
//!     rows: Arc<Mutex<HashMap<String, (Record, SystemTime)>>>,
//! }
//!
//! impl MapStore {
//!     fn live(&self, id: &str) -> Option<Record> {
//!         let rows = self.rows.lock().unwrap();
//!         let (record, at) = rows.get(id)?;
//!         (*at > SystemTime::now()).then(|| record.clone())
//!     }
//! }
//!
//! impl Store for MapStore {
//!     async fn create(&self, record: &Record, expires: Expires) -> Result<String, Error> {
//!         let mut rows = self.rows.lock().unwrap();
//!         loop {
//!             let id = Id::generate().as_str().to_owned();
//!             if !rows.contains_key(&id) {
//!                 rows.insert(id.clone(), (record.clone(), expires.at()));
//!                 return Ok(id);
//!             }
//!         }
//!     }
//!
//!     async fn load(&self, value: &str) -> Result<Option<Record>, Error> {
//!         Ok(self.live(value))
//!     }
//!
//!     async fn update(
//!         &self,
//!         value: &str,
//!         record: &Record,
//!         changes: &Changes,
//!         expires: Expires,
//!     ) -> Result<Option<String>, Error> {
//!         let Some(mut stored) = self.live(value) else {
//!             return Ok(None); // deleted or expired: never resurrect
//!         };
//!         stored.apply(changes, record);
//!         self.rows.lock().unwrap().insert(value.to_owned(), (stored, expires.at()));
//!         Ok(Some(value.to_owned()))
//!     }
//!
//!     async fn touch(&self, value: &str, expires: Expires) -> Result<bool, Error> {
//!         let mut rows = self.rows.lock().unwrap();
//!         match rows.get_mut(value) {
//!             Some((_, at)) if *at > SystemTime::now() => {
//!                 *at = expires.at();
//!                 Ok(true)
//!             }
//!             _ => Ok(false),
//!         }
//!     }
//!
//!     async fn delete(&self, value: &str) -> Result<(), Error> {
//!         self.rows.lock().unwrap().remove(value);
//!         Ok(())
//!     }
//! }
//!
//! let layer = sessio::SessionLayer::new(MapStore::default(), sessio::Key::generate());
//! # let _ = layer;
//! ```

use std::future::Future;

pub use crate::codec::Protection;
use crate::error::Error;

mod record;
pub use record::{Changes, Expires, Record};

#[cfg(feature = "memory-store")]
mod memory;
#[cfg(feature = "memory-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory-store")))]
pub use memory::MemoryStore;

// Public so its module docs (what a client-side store cannot do, key
// rotation, when to choose Redis) are rendered.
#[cfg(feature = "cookie-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookie-store")))]
pub mod cookie;
#[cfg(feature = "cookie-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookie-store")))]
pub use cookie::CookieStore;

#[cfg(feature = "redis")]
mod redis;
/// The deadpool-redis crate [`RedisStore`] is built on, re-exported so that a
/// pool you build for [`RedisStore::new`] comes from the same version.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use deadpool_redis;
#[cfg(all(feature = "redis", fuzzing))]
#[doc(hidden)]
pub use redis::fuzzing as redis_fuzzing;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisStore, RedisStoreBuilder};

/// A place to keep sessions. See the [module docs](self) for the contract and
/// a complete example.
pub trait Store: Send + Sync + 'static {
    /// How the layer protects this store's cookie value. Server-side stores,
    /// whose values are random ids, keep the default ([`Protection::Signed`]).
    fn protection(&self) -> Protection {
        Protection::Signed
    }

    /// Stores a new record and returns the value for the cookie. Never
    /// overwrites an existing record.
    fn create(
        &self,
        record: &Record,
        expires: Expires,
    ) -> impl Future<Output = Result<String, Error>> + Send;

    /// The record for a cookie value, or `None` when there is none (unknown,
    /// deleted, expired or malformed).
    fn load(&self, value: &str) -> impl Future<Output = Result<Option<Record>, Error>> + Send;

    /// Writes a changed record and returns the (possibly new) cookie value, or
    /// `None`, writing nothing, when the record no longer exists.
    ///
    /// `changes` lists what this request changed; a store that can apply a diff
    /// should, so concurrent requests that change different keys both keep
    /// their change.
    fn update(
        &self,
        value: &str,
        record: &Record,
        changes: &Changes,
        expires: Expires,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Extends the record's expiry without rewriting it; `false` when the
    /// record no longer exists.
    fn touch(
        &self,
        value: &str,
        expires: Expires,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Deletes the record; deleting a missing record is not an error.
    fn delete(&self, value: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The key under which a server-side store keeps the session with this id:
/// `prefix` followed by the hex SHA-256 of the id, so a leaked store dump holds
/// no usable session tokens (SECURITY A5).
pub fn storage_key(prefix: &str, id: &str) -> String {
    use sha2::{Digest, Sha256};
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(id.as_bytes());
    let mut key = String::with_capacity(prefix.len() + 64);
    key.push_str(prefix);
    for b in digest {
        key.push(char::from(HEX[usize::from(b >> 4)]));
        key.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    // SECURITY A5: the store key is prefix + SHA-256(id); the id is not in it.
    #[test]
    fn storage_key_hides_the_id() {
        let id = crate::Id::generate();
        let key = storage_key("session:", id.as_str());
        assert!(key.starts_with("session:"));
        assert_eq!(key.len(), "session:".len() + 64);
        assert!(!key.contains(id.as_str()));
        assert_eq!(key, storage_key("session:", id.as_str()));
        assert_ne!(key, storage_key("session:", crate::Id::generate().as_str()));
        // A known vector: SHA-256("abc").
        assert_eq!(
            storage_key("", "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
