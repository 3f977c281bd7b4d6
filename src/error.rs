//! The one error type of the crate.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// A boxed error from a store backend, as [`StoreError::backend`] takes it.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A shared backend error, kept as the `source()` of [`Error`] (shared so that
/// `Error` is `Clone`).
pub(crate) type SharedError = Arc<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in `sessio`.
///
/// `Display` never contains a cookie value, a session id or key material, so an
/// error can be logged as it is.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The layer's configuration is invalid; found when the layer is built.
    #[error("invalid session configuration")]
    Config(#[from] ConfigError),
    /// A value could not be serialized into the session.
    #[error("could not serialize a session value")]
    Serialize(#[source] ValueError),
    /// A stored value could not be deserialized into the requested type.
    #[error("could not deserialize a session value")]
    Deserialize(#[source] ValueError),
    /// The session's data was used before it was loaded.
    ///
    /// The axum extractor loads the session; plain tower services call
    /// [`Session::load`](crate::Session::load) first.
    #[error("the session was used before it was loaded")]
    NotLoaded,
    /// The encoded session cookie would exceed the browser limit.
    #[error("session cookie would be {size} bytes, over the {limit}-byte limit")]
    CookieTooLarge {
        /// Size of name plus value, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A record over the store's size limit was not saved.
    #[error("session record would be {size} bytes, over the store's {limit}-byte limit")]
    RecordTooLarge {
        /// Size of the record, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The record was deleted or expired between load and save (for example by a
    /// logout or `cycle_id` in a concurrent request); the change was not written.
    #[error("the session record no longer exists")]
    RecordGone,
    /// [`Session::set_user`](crate::Session::set_user) was given an empty
    /// user id or one over [`MAX_USER_LEN`](crate::users::MAX_USER_LEN) bytes.
    #[error("invalid user id for a session binding")]
    InvalidUser,
    /// [`Session::set_meta`](crate::Session::set_meta) was given a field over
    /// [`MAX_META_LEN`](crate::users::MAX_META_LEN) bytes, or one field more
    /// than [`MAX_META_FIELDS`](crate::users::MAX_META_FIELDS).
    #[error("session metadata over its limits")]
    InvalidMeta,
    /// No session with this name is configured on the layer.
    #[error("no session named {0:?} is configured")]
    UnknownSession(String),
    /// The store could not be reached (connection refused, timeout, pool exhausted).
    #[error("the session store is unavailable")]
    StoreUnavailable(#[source] SharedError),
    /// The store failed in another way (a bad reply, an I/O error, ...).
    #[error("the session store failed")]
    Store(#[source] SharedError),
    /// A stored record exists but cannot be decoded. When loading, the layer
    /// logs an ERROR, deletes the record and starts a fresh session instead
    /// of failing every request until the record expires.
    #[error("the stored session record is unreadable")]
    Unreadable(#[source] SharedError),
}

impl Error {
    pub(crate) fn serialize(err: serde_json::Error) -> Self {
        Self::Serialize(ValueError::from_json(&err))
    }

    pub(crate) fn deserialize(err: serde_json::Error) -> Self {
        Self::Deserialize(ValueError::from_json(&err))
    }

    /// `true` when the error means the store could not be reached.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::StoreUnavailable(_))
    }

    /// The status code the default error handler answers with: 503 for an
    /// unreachable store, 500 for everything else.
    pub fn status(&self) -> http::StatusCode {
        if self.is_unavailable() {
            http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            http::StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// A store's error as a source; serde's messages quote the data they could
/// not use, so a `serde_json::Error` is reduced to a [`ValueError`].
fn value_free(err: BoxError) -> SharedError {
    match err.downcast_ref::<serde_json::Error>() {
        Some(json) => Arc::new(ValueError::from_json(json)),
        None => Arc::from(err),
    }
}

/// What a [`Store`](crate::store::Store) reports when it fails.
///
/// A store's own error type, so a store can say only what a store means: it
/// could not reach its backend, it found a record it cannot read, it could
/// not encode one, the record is over its size limit, or the backend failed
/// in another way. The layer turns it into an [`Error`] (see the `From`
/// impl), answering 503 for [`StoreError::Unavailable`] and 500 for the rest;
/// an unreadable record found while loading is deleted and replaced by a
/// fresh session instead.
///
/// `Display` is a fixed text per variant. A `serde_json::Error` handed to a
/// constructor is kept as a [`ValueError`], without the value its message
/// would quote.
///
/// ```
/// use sessio::store::StoreError;
/// use sessio::Error;
///
/// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let err = StoreError::unavailable(refused);
/// assert_eq!(err.to_string(), "the session store is unavailable");
/// let err = Error::from(err);
/// assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached (connection refused, timeout, pool
    /// exhausted, shutting down). Becomes [`Error::StoreUnavailable`] (503).
    #[error("the session store is unavailable")]
    Unavailable(#[source] SharedError),
    /// A stored record exists but cannot be decoded. Becomes
    /// [`Error::Unreadable`]; when loading, the layer deletes the record and
    /// starts a fresh session.
    #[error("the stored session record is unreadable")]
    Unreadable(#[source] SharedError),
    /// The record could not be encoded for the backend. Becomes
    /// [`Error::Serialize`].
    #[error("could not encode the session record")]
    Encode(#[source] ValueError),
    /// The record is over the store's size limit and was not saved. Becomes
    /// [`Error::RecordTooLarge`].
    #[error("session record would be {size} bytes, over the store's {limit}-byte limit")]
    TooLarge {
        /// Size of the record, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The backend failed in another way (a bad reply, an I/O error, a
    /// constraint). Becomes [`Error::Store`] (500).
    #[error("the session store failed")]
    Backend(#[source] SharedError),
}

impl StoreError {
    /// Wraps a backend error as [`StoreError::Backend`].
    pub fn backend(err: impl Into<BoxError>) -> Self {
        Self::Backend(value_free(err.into()))
    }

    /// Wraps a backend error as [`StoreError::Unavailable`] (answered with 503).
    pub fn unavailable(err: impl Into<BoxError>) -> Self {
        Self::Unavailable(value_free(err.into()))
    }

    /// Wraps a decoding error as [`StoreError::Unreadable`]: the record exists
    /// but cannot be read back.
    pub fn unreadable(err: impl Into<BoxError>) -> Self {
        Self::Unreadable(value_free(err.into()))
    }

    /// Wraps a serialization error as [`StoreError::Encode`], keeping only
    /// its kind and position.
    pub fn encode(err: serde_json::Error) -> Self {
        Self::Encode(ValueError::from_json(&err))
    }

    /// `true` when the error means the backend could not be reached.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => Self::StoreUnavailable(e),
            StoreError::Unreadable(e) => Self::Unreadable(e),
            StoreError::Encode(e) => Self::Serialize(e),
            StoreError::TooLarge { size, limit } => Self::RecordTooLarge { size, limit },
            StoreError::Backend(e) => Self::Store(e),
        }
    }
}

/// Why a session value could not be serialized or deserialized: the kind of
/// failure and where in the JSON it happened, never the value itself.
///
/// The source of [`Error::Serialize`] and [`Error::Deserialize`]. serde's own
/// messages quote what they could not use (`invalid type: string "...",
/// expected u64`), and a session value may be a secret, so only the kind,
/// line and column are kept; `Display` is a fixed text per kind.
///
/// ```
/// use std::error::Error as _;
///
/// # async fn demo(session: sessio::Session) -> Result<(), sessio::Error> {
/// session.set("token", "s3cret")?;
/// let err = session.get::<u64>("token").unwrap_err();
/// let source = err.source().unwrap().to_string();
/// assert_eq!(source, "the value does not have the expected type or shape");
/// assert!(!format!("{err} {err:?} {source}").contains("s3cret"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueError {
    kind: ValueErrorKind,
    line: usize,
    column: usize,
}

/// The kind of a [`ValueError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueErrorKind {
    /// Well-formed JSON that does not fit the type asked for, or a value
    /// that cannot be represented as JSON.
    Data,
    /// Text that is not JSON.
    Syntax,
    /// JSON that ends before the value does.
    Eof,
    /// Reading or writing the bytes failed.
    Io,
}

impl ValueError {
    pub(crate) fn from_json(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let kind = match err.classify() {
            Category::Data => ValueErrorKind::Data,
            Category::Syntax => ValueErrorKind::Syntax,
            Category::Eof => ValueErrorKind::Eof,
            Category::Io => ValueErrorKind::Io,
        };
        Self {
            kind,
            line: err.line(),
            column: err.column(),
        }
    }

    /// What kind of failure this was.
    pub fn kind(&self) -> ValueErrorKind {
        self.kind
    }

    /// The line in the JSON text where it happened, from 1; 0 when there was
    /// no text (a value converted directly, as [`Session::get`](crate::Session::get) does).
    pub fn line(&self) -> usize {
        self.line
    }

    /// The column in that line, from 1; 0 when there was no text.
    pub fn column(&self) -> usize {
        self.column
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ValueErrorKind::Data => "the value does not have the expected type or shape",
            ValueErrorKind::Syntax => "the stored text is not valid JSON",
            ValueErrorKind::Eof => "the stored JSON ends too early",
            ValueErrorKind::Io => "reading or writing the JSON failed",
        })?;
        if self.line != 0 {
            write!(f, " at line {} column {}", self.line, self.column)?;
        }
        Ok(())
    }
}

impl StdError for ValueError {}

/// A configuration mistake, found when the layer is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key had fewer than 32 bytes.
    #[error("a session key needs at least 32 bytes, got {0}")]
    KeyTooShort(usize),
    /// A key string was neither hex of 64 or more digits nor base64 of 32 or
    /// 64 bytes.
    #[error("a session key must be 64 or more hex digits or base64 of 32 or 64 bytes; make one with openssl rand -hex 32")]
    KeyEncoding,
    /// A key string decoded, but is plainly not random: too few distinct
    /// bytes, a repeated block, or base64 text that reads like a passphrase.
    /// See [`Key::parse`](crate::Key::parse) for the exact rule.
    #[error("the session key looks like a passphrase or a pattern, not random bytes; make one with openssl rand -hex 32")]
    WeakKey,
    /// The cookie name is empty or holds characters a cookie name cannot hold.
    #[error("invalid session cookie name")]
    InvalidCookieName,
    /// Two sessions on one layer share a cookie name.
    #[error("two sessions share the cookie name {0:?}")]
    DuplicateCookieName(String),
    /// A `__Host-` cookie must be `Secure`, have `Path=/` and no `Domain`.
    #[error("a __Host- cookie must be Secure, have Path=/ and no Domain")]
    HostPrefix,
    /// A `__Secure-` cookie must be `Secure`.
    #[error("a __Secure- cookie must be Secure")]
    SecurePrefix,
    /// `SameSite=None` is refused by browsers without `Secure`.
    #[error("SameSite=None requires Secure")]
    SameSiteNoneWithoutSecure,
    /// A path or domain holds a character that would break the `Set-Cookie` header.
    #[error("invalid cookie {0}")]
    InvalidAttribute(&'static str),
    /// `Partitioned` cookies must be `Secure`.
    #[error("a Partitioned cookie must be Secure")]
    PartitionedWithoutSecure,
    /// A duration was zero where a positive one is needed.
    #[error("{0} must be longer than zero")]
    ZeroDuration(&'static str),
    /// A SQL store's table name is not `table` or `schema.table` made of
    /// ASCII letters, digits and `_` (at most 48 a part, not starting with a
    /// digit).
    #[error("invalid session table name")]
    InvalidTableName,
    /// The Redis store's client cache was asked for where it cannot keep its
    /// promise: over a pool passed in (the store must make its connections
    /// RESP3 and tracking), on a Cluster or behind Sentinel, or with room
    /// for no entry.
    #[error("the redis client cache {0}")]
    ClientCache(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Display, Debug and the whole source chain of `err`.
    fn said(err: &Error) -> String {
        let mut text = format!("{err} {err:?}");
        let mut source = err.source();
        while let Some(s) = source {
            text.push_str(&format!(" | {s} {s:?}"));
            source = s.source();
        }
        text
    }

    // SECURITY J54: errors from stored JSON text keep where, never what.
    #[test]
    fn value_errors_from_json_text_keep_position_not_value() {
        let err = serde_json::from_str::<u64>(r#""hunter2""#).unwrap_err();
        assert!(
            err.to_string().contains("hunter2"),
            "serde quotes it: {err}"
        );
        let err = Error::deserialize(err);
        let text = said(&err);
        assert!(!text.contains("hunter2"), "{text}");
        let Error::Deserialize(source) = err else {
            panic!("{err:?}")
        };
        assert_eq!(source.kind(), ValueErrorKind::Data);
        assert_eq!((source.line(), source.column()), (1, 9));
        assert_eq!(
            source.to_string(),
            "the value does not have the expected type or shape at line 1 column 9"
        );

        let err = Error::deserialize(serde_json::from_str::<Vec<u64>>("[hunter2]").unwrap_err());
        assert!(
            said(&err).contains("not valid JSON at line 1 column 2"),
            "{}",
            said(&err)
        );
        let err = Error::from(StoreError::unreadable(
            serde_json::from_str::<u64>(r#""hunter2""#).unwrap_err(),
        ));
        assert!(
            said(&err).contains("expected type or shape"),
            "{}",
            said(&err)
        );
        assert!(!said(&err).contains("hunter2"), "{}", said(&err));
        let err = Error::from(StoreError::backend(std::io::Error::other("kept as it is")));
        assert!(said(&err).contains("kept as it is"), "{}", said(&err));
        let err = Error::deserialize(serde_json::from_str::<Vec<u8>>("[1, 2").unwrap_err());
        assert!(said(&err).contains("ends too early"), "{}", said(&err));
    }

    #[test]
    fn a_store_error_becomes_the_error_and_status_handlers_see() {
        let io = || std::io::Error::other("backend said no");
        let json = || serde_json::from_str::<u64>("x").unwrap_err();
        type Case = (StoreError, fn(&Error) -> bool, u16);
        let cases: [Case; 5] = [
            (
                StoreError::unavailable(io()),
                |e| matches!(e, Error::StoreUnavailable(_)),
                503,
            ),
            (
                StoreError::backend(io()),
                |e| matches!(e, Error::Store(_)),
                500,
            ),
            (
                StoreError::unreadable(json()),
                |e| matches!(e, Error::Unreadable(_)),
                500,
            ),
            (
                StoreError::encode(json()),
                |e| matches!(e, Error::Serialize(_)),
                500,
            ),
            (
                StoreError::TooLarge { size: 9, limit: 8 },
                |e| matches!(e, Error::RecordTooLarge { size: 9, limit: 8 }),
                500,
            ),
        ];
        for (store, is, status) in cases {
            let unavailable = store.is_unavailable();
            let err = Error::from(store);
            assert!(is(&err), "{err:?}");
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(unavailable, status == 503);
        }
    }
}
