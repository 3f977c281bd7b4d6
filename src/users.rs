//! A user's sessions: bind a session to a user, list the user's live
//! sessions, end one, all, or all but the current one ("log out everywhere").
//!
//! At login, [`Session::set_user`] binds the session to a user id (next to
//! [`Session::cycle_id`]); [`Session::destroy`] and [`Session::clear`] end the
//! binding. The binding is kept in the session's record, and stores that
//! implement [`UserIndex`] keep a per-user index of the records bound to each
//! user, holding only SHA-256 digests, never ids or cookie values.
//! [`UserSessions`] is the handle an application uses, in a handler or
//! outside any request (an admin task, a password-reset job):
//!
//! ```
//! use sessio::users::UserSessions;
//! use sessio::{Key, MemoryStore, Session, SessionLayer};
//!
//! let store = MemoryStore::new();
//! let users = UserSessions::new(store.clone());
//! let layer = SessionLayer::new(store, Key::generate());
//!
//! async fn login(session: Session) -> Result<(), sessio::Error> {
//!     session.cycle_id()?;
//!     session.set_user("alice")?;
//!     session.set_meta("device", "Firefox on Linux")?;
//!     Ok(())
//! }
//!
//! async fn change_password(
//!     users: UserSessions<MemoryStore>,
//!     session: Session,
//! ) -> Result<usize, sessio::Error> {
//!     // ... store the new password hash, then:
//!     users.end_others(&session).await
//! }
//! # let _ = (users, layer);
//! ```
//!
//! What each entry shows ([`UserSession`]): when the user signed in on it,
//! when it was last seen, when it expires, the application's fields set with
//! [`Session::set_meta`], and whether it is the session of the request
//! asking. "Last seen" moves when sessio writes the session anyway or
//! extends its expiry (at most once per half of its idle window by
//! default), so binding a user costs no extra store round trip on a request
//! that does not change the binding.
//!
//! # Guarantees
//!
//! - Ending a session deletes its record: its next request, on any instance,
//!   starts a fresh session (nothing caches it).
//! - [`cycle_id`](Session::cycle_id) keeps a bound session in the index
//!   under its new id.
//! - Listing or ending sessions of one user never shows or ends another
//!   user's: [`end`](UserSessions::end) ends a session only if it is bound
//!   to the user named.
//! - [`end_others`](UserSessions::end_others) and
//!   [`end_all`](UserSessions::end_all) list and end until a listing shows
//!   nothing new, and stores guarantee that a rotation racing the end of
//!   its session answers "gone" instead of leaving a copy: a concurrent
//!   `cycle_id` (a login on an old session) cannot carry an old session past
//!   a password change.
//! - Expired sessions are never listed; the index drops them lazily and
//!   stays bounded.
//!
//! The cookie store keeps the whole session in the browser and cannot list
//! or end sessions: it does not implement [`UserIndex`], so
//! `UserSessions::new(CookieStore::new())` does not compile.
//!
//! ```compile_fail
//! let users = sessio::users::UserSessions::new(sessio::CookieStore::new());
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::SystemTime;

use serde_json::Value;

use crate::clock::from_unix_secs;
use crate::error::Error;
use crate::session::Session;
use crate::store::{Listed, UserIndex};

/// The record key holding the id of the user a session is bound to (a JSON
/// string). Stores that implement [`UserIndex`] index records by it.
pub const USER_KEY: &str = "_user";
/// When the session was bound to its user (unix seconds).
pub(crate) const SINCE_KEY: &str = "_user_since";
/// When the session was last written or had its expiry extended (unix seconds).
pub(crate) const SEEN_KEY: &str = "_user_seen";
/// The application's fields (a JSON object of strings).
pub(crate) const META_KEY: &str = "_user_meta";

/// The longest user id [`Session::set_user`] accepts, in bytes.
pub const MAX_USER_LEN: usize = 256;
/// The most fields [`Session::set_meta`] keeps per session.
pub const MAX_META_FIELDS: usize = 8;
/// The longest field name plus value [`Session::set_meta`] accepts, in bytes.
pub const MAX_META_LEN: usize = 256;

/// The most list-and-end rounds of [`UserSessions::end_all`]; each round
/// past the first runs only because a concurrent request added a session.
const MAX_ROUNDS: usize = 16;

/// An opaque name for one stored session: the hex SHA-256 of its store
/// value, never the id itself, so it can be shown in a page and posted back
/// (a "sign out" button) without giving away the session.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle(String);

impl SessionHandle {
    /// The handle of the record stored under `value` (a session id for the
    /// server-side stores).
    pub fn of(value: &str) -> Self {
        Self(crate::store::storage_key("", value))
    }

    /// Reads a handle back from text (a form field): 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Self(text.to_owned()))
    }

    /// The handle as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({}…)", &self.0[..self.0.len().min(8)])
    }
}

/// One of a user's live sessions, as [`UserSessions::list`] shows it.
#[derive(Debug, Clone)]
pub struct UserSession {
    handle: SessionHandle,
    signed_in: Option<SystemTime>,
    last_seen: Option<SystemTime>,
    expires: SystemTime,
    meta: BTreeMap<String, String>,
    current: bool,
}

impl UserSession {
    fn from_listed(listed: Listed, current: Option<&SessionHandle>) -> Self {
        let secs = |key: &str| {
            listed
                .record
                .get(key)
                .and_then(Value::as_u64)
                .map(from_unix_secs)
        };
        let meta = match listed.record.get(META_KEY) {
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect(),
            _ => BTreeMap::new(),
        };
        let handle = SessionHandle(listed.handle);
        Self {
            current: current == Some(&handle),
            signed_in: secs(SINCE_KEY),
            last_seen: secs(SEEN_KEY).or_else(|| secs(SINCE_KEY)),
            expires: listed.expires,
            meta,
            handle,
        }
    }

    /// The session's handle, for [`UserSessions::end`].
    pub fn handle(&self) -> &SessionHandle {
        &self.handle
    }

    /// When the session was bound to the user ([`Session::set_user`]).
    pub fn signed_in(&self) -> Option<SystemTime> {
        self.signed_in
    }

    /// When sessio last wrote the session or extended its expiry.
    pub fn last_seen(&self) -> Option<SystemTime> {
        self.last_seen
    }

    /// When the store forgets the session unless a request extends it.
    pub fn expires(&self) -> SystemTime {
        self.expires
    }

    /// The application's fields ([`Session::set_meta`]).
    pub fn meta(&self) -> &BTreeMap<String, String> {
        &self.meta
    }

    /// `true` for the session of the request that asked
    /// ([`UserSessions::list_for`]).
    pub fn is_current(&self) -> bool {
        self.current
    }
}

/// Lists and ends a user's sessions in a store that keeps a per-user index.
///
/// Cheap to clone (it clones the store handle); build it from the same store
/// the layer uses and put it in the application's state.
#[derive(Clone, Debug)]
pub struct UserSessions<S> {
    store: S,
}

impl<S: UserIndex> UserSessions<S> {
    /// The sessions of the users in `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// `user`'s live sessions, the most recently seen first.
    ///
    /// # Errors
    ///
    /// The store's error when it cannot be read.
    pub async fn list(&self, user: &str) -> Result<Vec<UserSession>, Error> {
        self.listing(user, None).await
    }

    /// The live sessions of the user `session` is bound to, the current one
    /// marked ([`UserSession::is_current`]); empty when it is bound to none.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded; the store's error
    /// when it cannot be read.
    pub async fn list_for(&self, session: &Session) -> Result<Vec<UserSession>, Error> {
        let Some(user) = session.user()? else {
            return Ok(Vec::new());
        };
        self.listing(&user, session.handle().as_ref()).await
    }

    async fn listing(
        &self,
        user: &str,
        current: Option<&SessionHandle>,
    ) -> Result<Vec<UserSession>, Error> {
        let listed = self.store.sessions_of(user).await?;
        let mut out: Vec<UserSession> = listed
            .into_iter()
            .map(|l| UserSession::from_listed(l, current))
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.last_seen));
        Ok(out)
    }

    /// Ends `user`'s session `handle`; `false` when it is not one of that
    /// user's live sessions (another user's handle ends nothing).
    ///
    /// # Errors
    ///
    /// The store's error when it cannot be reached.
    pub async fn end(&self, user: &str, handle: &SessionHandle) -> Result<bool, Error> {
        Ok(self.store.end_session(user, handle.as_str()).await?)
    }

    /// Ends every session of `user`; returns how many were ended.
    ///
    /// # Errors
    ///
    /// The store's error when it cannot be reached; sessions ended before
    /// the error stay ended.
    pub async fn end_all(&self, user: &str) -> Result<usize, Error> {
        self.end_all_but(user, None).await
    }

    /// Ends every session of the user `session` is bound to except `session`
    /// itself (after a password change); returns how many were ended. A
    /// session bound to no user ends nothing.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded; the store's error
    /// when it cannot be reached.
    pub async fn end_others(&self, session: &Session) -> Result<usize, Error> {
        let Some(user) = session.user()? else {
            return Ok(0);
        };
        self.end_all_but(&user, session.handle().as_ref()).await
    }

    /// Ends every session of `user` except the one with handle `keep`
    /// (from outside a request, with a handle saved earlier); returns how
    /// many were ended.
    ///
    /// # Errors
    ///
    /// The store's error when it cannot be reached.
    pub async fn end_all_except(&self, user: &str, keep: &SessionHandle) -> Result<usize, Error> {
        self.end_all_but(user, Some(keep)).await
    }

    async fn end_all_but(&self, user: &str, keep: Option<&SessionHandle>) -> Result<usize, Error> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut ended = 0;
        for _ in 0..MAX_ROUNDS {
            let listed = self.store.sessions_of(user).await?;
            let victims: Vec<String> = listed
                .into_iter()
                .map(|l| l.handle)
                .filter(|h| keep.is_none_or(|k| k.as_str() != h) && !seen.contains(h))
                .collect();
            if victims.is_empty() {
                return Ok(ended);
            }
            for handle in victims {
                if self.store.end_session(user, &handle).await? {
                    ended += 1;
                }
                seen.insert(handle);
            }
        }
        tracing::warn!(
            ended,
            "sessions kept appearing while ending a user's sessions; stopped after {MAX_ROUNDS} rounds"
        );
        Ok(ended)
    }
}
