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
//!   [`Updated::Gone`] and writes nothing. It applies the request's
//!   [`Changes`] to the record *as stored* (a per-key merge, so two requests
//!   that change different keys both keep their change), and when the merged
//!   record is empty it deletes it and answers [`Updated::Emptied`]. A store
//!   that keeps the record as one blob reads it, calls [`Record::apply`] and
//!   writes it back, all under one lock or in one transaction.
//! - `rotate` (behind `cycle_id`) moves a record to a freshly minted id only
//!   if the old record still exists, applying the changes on the way, and
//!   deletes the old one; the existence check and the move are one atomic
//!   step, so a rotation racing a logout answers [`Updated::Gone`] and brings
//!   nothing back.
//! - A new id is never one that was handed out before and deleted or
//!   expired since (ids are random, never reused counters).
//! - Values and keys round-trip exactly: long values, empty keys, keys that
//!   start with `\0`, any Unicode.
//! - `touch` extends the TTL without rewriting data.
//! - Expiry is given as [`Deadline`]; the store forgets the record after it.
//! - Failures are a [`StoreError`]: an unreachable backend answers
//!   [`StoreError::Unavailable`] (the layer answers 503); a record that exists
//!   but cannot be decoded [`StoreError::Unreadable`]
//!   (the layer deletes it and starts a fresh session); other failures
//!   [`StoreError::Backend`] (500).
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
//! use sessio::store::{Changes, Deadline, Record, Store, StoreError, Updated};
//! use sessio::Id;
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
//!     async fn create(&self, record: &Record, expires: Deadline) -> Result<String, StoreError> {
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
//!     async fn load(&self, value: &str) -> Result<Option<Record>, StoreError> {
//!         Ok(self.live(value))
//!     }
//!
//!     async fn update(
//!         &self,
//!         value: &str,
//!         record: &Record,
//!         changes: &Changes,
//!         expires: Deadline,
//!     ) -> Result<Updated, StoreError> {
//!         let mut rows = self.rows.lock().unwrap();
//!         let Some((stored, at)) = rows.get_mut(value).filter(|(_, at)| *at > SystemTime::now())
//!         else {
//!             return Ok(Updated::Gone); // deleted or expired: never resurrect
//!         };
//!         stored.apply(changes, record);
//!         if stored.is_empty() {
//!             rows.remove(value);
//!             return Ok(Updated::Emptied);
//!         }
//!         *at = expires.at();
//!         Ok(Updated::Written(value.to_owned()))
//!     }
//!
//!     async fn rotate(
//!         &self,
//!         old: &str,
//!         record: &Record,
//!         changes: &Changes,
//!         expires: Deadline,
//!     ) -> Result<Updated, StoreError> {
//!         // One lock around the check, the removal and the insert: atomic.
//!         let mut rows = self.rows.lock().unwrap();
//!         let Some((mut stored, at)) = rows.remove(old) else {
//!             return Ok(Updated::Gone);
//!         };
//!         if at <= SystemTime::now() {
//!             return Ok(Updated::Gone);
//!         }
//!         stored.apply(changes, record);
//!         if stored.is_empty() {
//!             return Ok(Updated::Emptied);
//!         }
//!         loop {
//!             let id = Id::generate().as_str().to_owned();
//!             if !rows.contains_key(&id) {
//!                 rows.insert(id.clone(), (stored, expires.at()));
//!                 return Ok(Updated::Written(id));
//!             }
//!         }
//!     }
//!
//!     async fn touch(&self, value: &str, expires: Deadline) -> Result<bool, StoreError> {
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
//!     async fn delete(&self, value: &str) -> Result<(), StoreError> {
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
pub use crate::error::StoreError;

mod record;
pub use record::{Changes, Deadline, Record};

#[cfg(feature = "memory-store")]
mod memory;
#[cfg(feature = "memory-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory-store")))]
pub use memory::{MemoryStore, DEFAULT_MAX_SESSIONS};

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

#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use sql::{SqlStore, Sweeper, DEFAULT_SWEEP_BATCH, DEFAULT_TABLE_NAME};
/// The sqlx crate [`SqlStore`] is built on, re-exported so that a pool you
/// build for it comes from the same version.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use sqlx;

/// A place to keep sessions. See the [module docs](self) for the contract and
/// a complete example.
pub trait Store: Send + Sync + 'static {
    /// How the layer protects this store's cookie value. Server-side stores,
    /// whose values are random ids, keep the default ([`Protection::Signed`]).
    fn protection(&self) -> Protection {
        Protection::Signed
    }

    /// `true` for a store whose cookie carries the whole session, so that a
    /// copied cookie cannot be revoked before its sealed expiry. The layer
    /// then caps sessions with [`DEFAULT_CLIENT_SIDE_ABSOLUTE`] unless an
    /// absolute timeout is set, so a copy cannot be renewed forever.
    /// Server-side stores keep the default, `false`.
    fn is_client_side(&self) -> bool {
        false
    }

    /// Stores a new record and returns the value for the cookie. Never
    /// overwrites an existing record.
    fn create(
        &self,
        record: &Record,
        expires: Deadline,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// The record for a cookie value, or `None` when there is none (unknown,
    /// deleted, expired or malformed).
    fn load(&self, value: &str) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Applies `changes` to the stored record (new values taken from
    /// `record`, the request's copy) and sets its expiry.
    ///
    /// Answers [`Updated::Written`] with the (possibly new) cookie value,
    /// [`Updated::Emptied`] when the merged record is empty and was deleted,
    /// or [`Updated::Gone`], writing nothing, when the record no longer
    /// exists.
    fn update(
        &self,
        value: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
    ) -> impl Future<Output = Result<Updated, StoreError>> + Send;

    /// Moves the record under `old` to a new value (a freshly minted id),
    /// applying `changes` as [`update`](Self::update) does, and deletes the
    /// old record — only if the old record still exists, checked atomically
    /// with the move.
    ///
    /// Answers [`Updated::Written`] with the new cookie value,
    /// [`Updated::Emptied`] when the merged record is empty (the old one is
    /// deleted, nothing is created), or [`Updated::Gone`], writing nothing.
    fn rotate(
        &self,
        old: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
    ) -> impl Future<Output = Result<Updated, StoreError>> + Send;

    /// Extends the record's expiry without rewriting it; `false` when the
    /// record no longer exists.
    fn touch(
        &self,
        value: &str,
        expires: Deadline,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the record; deleting a missing record is not an error.
    fn delete(&self, value: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A store that keeps a per-user index of its records, so an application
/// can list and end a user's sessions ([`UserSessions`](crate::users::UserSessions)).
///
/// The binding is the record key [`USER_KEY`](crate::users::USER_KEY): a
/// record whose data holds `USER_KEY` as a JSON string `u` is bound to user
/// `u`. The contract, which
/// [`Suite::run_user_index`](crate::test_util::Suite::run_user_index)
/// (feature `test-util`) checks:
/// - A live record bound to `u` is listed by [`sessions_of`](Self::sessions_of)
///   from the moment `create`, `update` or `rotate` returns its cookie value
///   until it is deleted or expires, under its handle: the hex SHA-256 of
///   that value ([`storage_key`]`("", value)`). Deleted and expired records
///   are never listed; records bound to another user never are.
/// - `rotate` keeps a bound record listed under its new handle and drops the
///   old one. A rotation that races [`end_session`](Self::end_session) of
///   its old record either moves the record before it is ended (the new
///   handle is then listed, and ended by the next round of an "end all") or
///   answers [`Updated::Gone`]: it never leaves a live copy that no listing
///   after `end_session` returned shows.
/// - `update` that sets or removes `USER_KEY` (or a `clear`) moves the record
///   to the new user's index or out of every index; `delete` takes it out.
/// - [`end_session`](Self::end_session) deletes the record only if it is
///   bound to the user named.
/// - The index holds digests only (never ids or cookie values) and stays
///   bounded: entries of records that expired or were evicted are dropped
///   lazily.
pub trait UserIndex: Store {
    /// The live records bound to `user`, oldest binding first.
    fn sessions_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<Listed>, StoreError>> + Send;

    /// Deletes the record with `handle` if it is live and bound to `user`;
    /// `true` when one was deleted.
    fn end_session(
        &self,
        user: &str,
        handle: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// One record of a user, as [`UserIndex::sessions_of`] lists it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Listed {
    /// The hex SHA-256 of the record's cookie value.
    pub handle: String,
    /// The record's data; at least its `_user…` keys.
    pub record: Record,
    /// When the store forgets the record unless it is extended.
    pub expires: std::time::SystemTime,
}

impl Listed {
    /// A listing entry.
    pub fn new(handle: String, record: Record, expires: std::time::SystemTime) -> Self {
        Self {
            handle,
            record,
            expires,
        }
    }
}

/// The user a record is bound to, as [`UserIndex`] stores read it: the JSON
/// string under [`USER_KEY`](crate::users::USER_KEY).
pub fn bound_user(record: &Record) -> Option<&str> {
    record.get(crate::users::USER_KEY)?.as_str()
}

/// `true` when `changes` may move a record between users' indexes: they set
/// or remove [`USER_KEY`](crate::users::USER_KEY), or clear the record.
pub fn changes_binding(changes: &Changes) -> bool {
    let key = crate::users::USER_KEY;
    changes.cleared() || changes.set().any(|k| k == key) || changes.removed().any(|k| k == key)
}

/// The absolute timeout a layer over a client-side store
/// ([`Store::is_client_side`], the cookie store) gets when none is set: 7
/// days from the session's creation, whatever its activity.
pub const DEFAULT_CLIENT_SIDE_ABSOLUTE: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 60 * 60);

/// What [`Store::update`] and [`Store::rotate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Updated {
    /// The record is stored; the value for the cookie.
    Written(String),
    /// The merged record was empty, so it was deleted.
    Emptied,
    /// The record no longer existed (deleted or expired); nothing was written.
    Gone,
}

/// The key under which a server-side store keeps the session with this id:
/// `prefix` followed by the hex SHA-256 of the id, so a leaked store dump holds
/// no usable session tokens (SECURITY A5).
pub fn storage_key(prefix: &str, id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut key = String::with_capacity(prefix.len() + 64);
    key.push_str(prefix);
    push_hex(&mut key, &Sha256::digest(id.as_bytes()));
    key
}

/// Appends `bytes` as lowercase hex (the form of [`storage_key`]'s digest and
/// of a record's handle).
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
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
