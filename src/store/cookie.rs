//! A client-side store: the whole session travels in the cookie.
//!
//! [`CookieStore`] keeps nothing on the server. The value it hands the layer
//! is the session's data as compact JSON; the layer seals it with AES-256-GCM
//! under its [`Key`](crate::Key) (or, with [`CookieStore::signed_only`], signs
//! it with HMAC-SHA256), binds the cookie name into it, and seals the creation,
//! issue and expiry times alongside. Nothing to run, nothing to share between
//! servers, and a session survives restarts as long as the key does.
//!
//! ```
//! use sessio::{CookieStore, Key, Protection, SessionLayer, Store};
//!
//! // Encrypted by default: the client can neither read nor change the data.
//! let layer = SessionLayer::new(CookieStore::new(), Key::generate());
//!
//! // Signed only, an explicit opt-in: the client can read the data (it is
//! // base64 of the JSON) but not change it.
//! let readable = SessionLayer::new(CookieStore::signed_only(), Key::generate());
//! # let _ = (layer, readable);
//!
//! assert_eq!(CookieStore::new().protection(), Protection::Encrypted);
//! assert_eq!(CookieStore::signed_only().protection(), Protection::Signed);
//! ```
//!
//! # What a client-side store cannot do
//!
//! - **Revoke a cookie before it expires.** There is no record to delete:
//!   [`Session::destroy`](crate::Session::destroy) and
//!   [`Session::cycle_id`](crate::Session::cycle_id) replace the cookie in the
//!   browser that obeys, but a copy taken earlier (stolen, or replayed by the
//!   user to undo a change such as spending a one-time flash or a logout)
//!   keeps opening until the expiry sealed inside it. The server checks that
//!   expiry itself, whatever the browser does with `Max-Age`, so keep the
//!   window short ([`Expiry::OnInactivity`](crate::Expiry::OnInactivity), an
//!   [absolute timeout](crate::SessionLayerBuilder::with_absolute_timeout)).
//! - **Stop a copy being renewed.** A rolling session is re-sealed whenever a
//!   request reads it past half its window, so a copy that keeps being used
//!   keeps being renewed. A layer over this store therefore has an absolute
//!   timeout by default ([`DEFAULT_CLIENT_SIDE_ABSOLUTE`](crate::store::DEFAULT_CLIENT_SIDE_ABSOLUTE),
//!   7 days from the session's creation); set your own with
//!   [`with_absolute_timeout`](crate::SessionLayerBuilder::with_absolute_timeout).
//! - **Keep data secret in signed-only mode.** A signed cookie is base64 of
//!   the JSON: anyone holding it reads every key and value. Tampering is still
//!   detected. The default, encrypted mode hides the data.
//! - **Hold much.** Browsers keep about 4 KiB of cookie name plus value. The
//!   envelope costs 53 bytes before base64, which then adds a third, so about
//!   3 KB of JSON fit. A save that would exceed 4096 bytes fails with
//!   [`Error::CookieTooLarge`](crate::Error::CookieTooLarge): the response is the layer's error handler's
//!   (500 by default), no `Set-Cookie` is sent, and a `tracing` ERROR gives
//!   the size and the limit. Every request carries the whole cookie, too.
//! - **Merge concurrent changes.** Two requests in flight each answer with a
//!   complete cookie; the browser keeps the last one it receives, so a change
//!   made only by the other is lost.
//!
//! # Key rotation
//!
//! Give the layer the new key and keep the old one as a fallback with
//! [`with_fallback_keys`](crate::SessionLayerBuilder::with_fallback_keys):
//! cookies sealed under a fallback key still open, and are re-sealed under the
//! current key by the next response that writes the session cookie (every
//! successful request that loads the session writes it), keeping the expiry
//! sealed in them. Once the old key is removed from the list, every cookie
//! still under it is rejected at once, and its holder gets a fresh, empty
//! session. Removing a key is therefore the only way to revoke cookies early,
//! and it revokes all of them.
//!
//! ```
//! use sessio::{CookieStore, Key, SessionLayer};
//! # let (new_key, old_key) = (Key::generate(), Key::generate());
//! let layer = SessionLayer::builder(CookieStore::new(), new_key)
//!     // Drop the old key once every cookie under it has expired, or at once
//!     // to log everyone out.
//!     .with_fallback_keys([old_key])
//!     .build()?;
//! # let _ = layer;
//! # Ok::<(), sessio::Error>(())
//! ```
//!
//! # When to choose Redis instead
//!
//! Use a server-side store (Redis, or `MemoryStore` for a single process)
//! when a logout or a password change must end a session at once, when
//! sessions hold more than a few kilobytes or data the user must never see
//! even encrypted, when concurrent requests change the same session, or when
//! you need to list or count sessions on the server.

use serde::ser::Error as _;

use super::{Changes, Deadline, Protection, Record, Store, Updated};
use crate::error::StoreError;

/// Keeps the whole session in the cookie, encrypted by default.
///
/// A small `Copy` value with no state: the layer does all the cryptography,
/// as [`protection`](Store::protection) asks. See the [module docs](self) for
/// what a client-side store cannot do.
///
/// ```
/// use sessio::{CookieStore, Expiry, Key, SessionLayer};
/// use std::time::Duration;
///
/// let layer = SessionLayer::builder(CookieStore::new(), Key::generate())
///     .with_expiry(Expiry::OnInactivity(Duration::from_secs(3600)))
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), sessio::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieStore {
    protection: Protection,
}

impl Default for CookieStore {
    /// The same as [`CookieStore::new`]: encrypted.
    fn default() -> Self {
        Self::new()
    }
}

impl CookieStore {
    /// A store whose cookies the layer encrypts with AES-256-GCM: the client
    /// can neither read nor change the data.
    pub fn new() -> Self {
        Self {
            protection: Protection::Encrypted,
        }
    }

    /// A store whose cookies the layer only signs with HMAC-SHA256.
    ///
    /// **The client can read the session data**: the cookie value is base64 of
    /// the JSON, and anyone holding the cookie (the user, a browser extension,
    /// a log that records headers) sees every key and value. Changes are still
    /// detected and rejected. Choose it only for data that is no secret from
    /// the user and when something else must read the cookie; otherwise keep
    /// the default, [`CookieStore::new`].
    pub fn signed_only() -> Self {
        Self {
            protection: Protection::Signed,
        }
    }

    /// The session data as the cookie carries it.
    fn seal(record: &Record) -> Result<String, StoreError> {
        if record.nests_too_deep() {
            return Err(StoreError::encode(serde_json::Error::custom(
                "session data nests too deeply for the cookie store",
            )));
        }
        serde_json::to_string(record).map_err(StoreError::encode)
    }
}

impl Store for CookieStore {
    fn protection(&self) -> Protection {
        self.protection
    }

    fn is_client_side(&self) -> bool {
        true
    }

    async fn create(&self, record: &Record, _expires: Deadline) -> Result<String, StoreError> {
        Self::seal(record)
    }

    /// Only values the layer verified arrive here, so anything that does not
    /// parse is a bug or an old format: answered as "no session", never an error.
    async fn load(&self, value: &str) -> Result<Option<Record>, StoreError> {
        Ok(serde_json::from_str(value).ok())
    }

    /// The cookie carries the whole record, so this writes all of it; there is
    /// no stored copy to apply `changes` to. An empty record is "emptied": the
    /// layer removes the cookie.
    async fn update(
        &self,
        _value: &str,
        record: &Record,
        _changes: &Changes,
        _expires: Deadline,
    ) -> Result<Updated, StoreError> {
        if record.is_empty() {
            return Ok(Updated::Emptied);
        }
        Self::seal(record).map(Updated::Written)
    }

    /// As [`update`](Store::update): the data is the cookie, there is no id to
    /// move. An old cookie of a cookie-store session stays valid until the
    /// expiry sealed in it (see the module docs).
    async fn rotate(
        &self,
        old: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
    ) -> Result<Updated, StoreError> {
        self.update(old, record, changes, expires).await
    }

    /// The expiry lives in the envelope the layer seals, so the layer re-seals
    /// the same data with the new expiry; nothing to do here.
    async fn touch(&self, _value: &str, _expires: Deadline) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Nothing is kept on the server; the layer sends the removal cookie.
    async fn delete(&self, _value: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::MAX_DEPTH;
    use serde_json::{json, Value};
    use std::time::{Duration, SystemTime};

    fn expires() -> Deadline {
        Deadline::new(SystemTime::now(), Duration::from_secs(60))
    }

    fn nested(levels: usize) -> Record {
        let mut v = Value::Null;
        for _ in 0..levels {
            v = Value::Array(vec![v]);
        }
        [("k".to_owned(), v)].into_iter().collect()
    }

    #[test]
    fn default_is_encrypted_and_signed_only_is_opt_in() {
        assert_eq!(CookieStore::default().protection(), Protection::Encrypted);
        assert_eq!(CookieStore::new().protection(), Protection::Encrypted);
        assert_eq!(CookieStore::signed_only().protection(), Protection::Signed);
    }

    #[tokio::test]
    async fn data_is_compact_json() {
        let r: Record = [("n".to_owned(), json!(1))].into_iter().collect();
        let v = CookieStore::new().create(&r, expires()).await.unwrap();
        assert_eq!(v, r#"{"n":1}"#);
    }

    // SECURITY J49: data nested as deep as serde_json reads round-trips; one
    // level deeper is refused when saving instead of sealing a cookie that
    // never opens.
    #[tokio::test]
    async fn nesting_is_limited_to_what_can_be_read_back() {
        let s = CookieStore::new();
        let deepest = nested(MAX_DEPTH - 1);
        let v = s.create(&deepest, expires()).await.unwrap();
        assert_eq!(s.load(&v).await.unwrap(), Some(deepest));

        let too_deep = nested(MAX_DEPTH);
        let json = serde_json::to_string(&too_deep).unwrap();
        assert!(s.load(&json).await.unwrap().is_none(), "limit moved");
        let err = s.create(&too_deep, expires()).await.unwrap_err();
        assert!(matches!(err, StoreError::Encode(_)), "{err:?}");
        let err = s
            .update("", &too_deep, &Changes::default(), expires())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Encode(_)), "{err:?}");
    }

    // serde_json's default float parsing may miss by one ulp; the crate turns
    // on its `float_roundtrip` feature so data comes back bit for bit.
    #[tokio::test]
    async fn floats_round_trip_exactly() {
        let s = CookieStore::new();
        for f in [
            1.0559953781465763e232_f64,
            -8.926503565247852e-153,
            0.1,
            -0.0,
        ] {
            let r: Record = [("f".to_owned(), json!(f))].into_iter().collect();
            let v = s.create(&r, expires()).await.unwrap();
            let back = s.load(&v).await.unwrap().unwrap();
            let got = back.get("f").and_then(Value::as_f64).unwrap();
            assert_eq!(got.to_bits(), f.to_bits(), "{f:e} came back as {got:e}");
        }
    }

    #[tokio::test]
    async fn load_of_non_objects_is_none() {
        let s = CookieStore::new();
        for v in ["", "null", "[]", "1", "\"s\"", "{", "{\"a\":1}x", "\u{0}"] {
            assert_eq!(s.load(v).await.unwrap(), None, "{v:?}");
        }
    }
}
