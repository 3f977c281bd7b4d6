//! The per-request session handle.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::from_unix_secs;
use crate::config::CookieOptions;
use crate::error::Error;
use crate::expiry::Expiry;
use crate::id::Id;
use crate::persist::ErasedLayer;
use crate::state::{SessionStatus, State};
use crate::store::{Changes, Record};
use crate::users::{META_KEY, SEEN_KEY, SINCE_KEY, USER_KEY};

/// A session, as a handler sees it.
///
/// A cheap handle (one `Arc`); clones share one state, so two extractors in one
/// request see the same data. The store is read lazily: the axum extractor
/// loads the session once, plain tower services call [`load`](Self::load). Once
/// loaded, the data methods are synchronous; the layer saves what changed when
/// the response goes out, or [`save`](Self::save) persists it at once.
///
/// ```
/// # async fn demo(session: sessio::Session) -> Result<(), sessio::Error> {
/// let visits: u64 = session.get("visits")?.unwrap_or(0);
/// session.set("visits", visits + 1)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) layer: Arc<dyn ErasedLayer>,
    pub(crate) slot: usize,
    pub(crate) load_once: tokio::sync::OnceCell<()>,
    pub(crate) state: Mutex<State>,
}

impl Session {
    pub(crate) fn new(layer: Arc<dyn ErasedLayer>, slot: usize, state: State) -> Self {
        Self {
            inner: Arc::new(Inner {
                layer,
                slot,
                load_once: tokio::sync::OnceCell::new(),
                state: Mutex::new(state),
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state()
    }

    /// Nothing to do on the way out (see [`State::idle`]).
    pub(crate) fn untouched(&self, refresh_every: bool) -> bool {
        self.state().idle(refresh_every)
    }

    /// Reads the session from the store, once; later calls return at once.
    ///
    /// The axum extractor calls this for you. A failure is also reported to the
    /// layer, which answers with its error handler's response, so a handler
    /// never runs on a session that looks empty because the store was down.
    ///
    /// # Errors
    ///
    /// The store's error when it cannot be read ([`Error::StoreUnavailable`]
    /// when unreachable). An unknown, expired or unreadable record is no
    /// error: the session starts fresh.
    pub async fn load(&self) -> Result<(), Error> {
        if self.inner.state().is_loaded() {
            return Ok(());
        }
        self.inner
            .load_once
            .get_or_try_init(|| self.inner.layer.load(&self.inner))
            .await
            .map(|_| ())
    }

    /// Persists the session now, instead of when the response goes out, and
    /// returns any store error to the caller. The `Set-Cookie` is still sent
    /// with the response.
    ///
    /// # Errors
    ///
    /// The store's error ([`Error::StoreUnavailable`], [`Error::Store`],
    /// [`Error::RecordTooLarge`], ...), [`Error::CookieTooLarge`], or
    /// [`Error::RecordGone`] when the session was ended elsewhere. A failed
    /// save keeps its changes; the layer does not send them again on the way
    /// out unless the session changes after the failure.
    pub async fn save(&self) -> Result<(), Error> {
        self.inner.layer.save(&self.inner).await
    }

    /// The cookie name of this session.
    pub fn name(&self) -> &str {
        &self.inner.layer.attrs(self.inner.slot).name
    }

    /// The session id: `None` before the session is loaded, for a new session
    /// not yet saved, and for stores whose cookie value is not an id (the
    /// cookie store).
    pub fn id(&self) -> Option<Id> {
        let st = self.state();
        if !st.is_loaded() {
            return None;
        }
        st.value().and_then(Id::parse)
    }

    /// The value under `key`, deserialized; `None` when absent.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded;
    /// [`Error::Deserialize`] when the value is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let st = self.loaded_state()?;
        st.data()
            .get(key)
            .map(|v| T::deserialize(v).map_err(Error::deserialize))
            .transpose()
    }

    /// Sets `key`. Setting the value already stored changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded;
    /// [`Error::Serialize`] when `value` cannot be serialized.
    pub fn set(&self, key: &str, value: impl Serialize) -> Result<(), Error> {
        let value = serde_json::to_value(value).map_err(Error::serialize)?;
        self.loaded_state()?.set(key, value);
        Ok(())
    }

    /// Removes `key`, returning whether it was there.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded.
    pub fn delete(&self, key: &str) -> Result<bool, Error> {
        Ok(self.loaded_state()?.remove(key).is_some())
    }

    /// Removes `key` and returns its value, deserialized (tower-sessions'
    /// `remove`).
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded;
    /// [`Error::Deserialize`] when the value is not a `T` (it then stays in
    /// the session).
    pub fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let mut st = self.loaded_state()?;
        let Some(v) = st.data().get(key) else {
            return Ok(None);
        };
        let value = T::deserialize(v).map_err(Error::deserialize)?;
        st.remove(key);
        Ok(Some(value))
    }

    /// `true` when the session holds `key`.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded.
    pub fn contains_key(&self, key: &str) -> Result<bool, Error> {
        Ok(self.loaded_state()?.data().get(key).is_some())
    }

    /// The keys the session holds, in no particular order (actix's
    /// `entries`, gorilla's `Values`); reserved keys (`_flash…`, `_csrf`)
    /// included.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded.
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        let st = self.loaded_state()?;
        Ok(st.data().iter().map(|(k, _)| k.to_owned()).collect())
    }

    /// Replaces the value under `key` with `f(old)`; does nothing when the
    /// key is absent. Returns the new value.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded;
    /// [`Error::Deserialize`] when the old value is not a `T`;
    /// [`Error::Serialize`] when the new one cannot be serialized. Either
    /// way the session is left as it was.
    pub fn update<T, F>(&self, key: &str, f: F) -> Result<Option<T>, Error>
    where
        T: DeserializeOwned + Serialize,
        F: FnOnce(T) -> T,
    {
        match self.get::<T>(key)? {
            Some(old) => {
                let new = f(old);
                self.set(key, &new)?;
                Ok(Some(new))
            }
            None => Ok(None),
        }
    }

    /// Replaces the value under `key` with `f(old)`, or sets `default` when
    /// the key is absent. Returns the new value.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded;
    /// [`Error::Deserialize`] when the old value is not a `T`;
    /// [`Error::Serialize`] when the new one cannot be serialized. Either
    /// way the session is left as it was.
    ///
    /// ```
    /// # fn demo(session: sessio::Session) -> Result<(), sessio::Error> {
    /// let visits: u64 = session.update_or("visits", 1, |n: u64| n + 1)?;
    /// # let _ = visits;
    /// # Ok(()) }
    /// ```
    pub fn update_or<T, F>(&self, key: &str, default: T, f: F) -> Result<T, Error>
    where
        T: DeserializeOwned + Serialize,
        F: FnOnce(T) -> T,
    {
        let new = match self.get::<T>(key)? {
            Some(old) => f(old),
            None => default,
        };
        self.set(key, &new)?;
        Ok(new)
    }

    /// Removes every key, replacing what the store holds as of this request
    /// (a concurrent request's changes to other keys go too). A session
    /// cleared to empty is deleted from the store and its cookie removed when
    /// the response goes out.
    ///
    /// Deleting keys one by one instead keeps a concurrent request's other
    /// keys: the record is deleted only when the store's merged record is
    /// empty.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded.
    pub fn clear(&self) -> Result<(), Error> {
        self.loaded_state()?.clear();
        Ok(())
    }

    /// Gives the session a new id and keeps its data; the old record is deleted
    /// and its cookie stops working. Call it when privileges change (login) to
    /// prevent session fixation.
    ///
    /// The move happens when the response goes out (or at [`save`](Self::save)),
    /// only if the old record still exists: a request that loaded the session
    /// before a concurrent logout does not bring it back. The CSRF token (the
    /// `csrf` feature) is dropped, so a token known before the login does not
    /// work after it; the next [`csrf_token`](crate::csrf::csrf_token) makes a
    /// new one. If the handler answers with a 5xx, the old record is still
    /// deleted, and nothing is written under the new id.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded.
    pub fn cycle_id(&self) -> Result<(), Error> {
        self.loaded_state()?.cycle_id();
        Ok(())
    }

    /// Ends the session: the record is deleted and the browser told to drop
    /// the cookie (at the `Path` and `Domain` it was issued under). Data set
    /// afterwards in the same request starts a new session with a new id.
    ///
    /// The deletion happens whatever the response's status: a logout handler
    /// that destroys the session and then fails still logs the user out.
    pub fn destroy(&self) {
        self.state().destroy();
    }

    /// Binds the session to `user` (at login, next to
    /// [`cycle_id`](Self::cycle_id)), so stores with a per-user index list it
    /// among the user's sessions ([`users`](crate::users)). Binding to the
    /// user it is already bound to keeps its sign-in time.
    /// [`destroy`](Self::destroy) and [`clear`](Self::clear) end the binding.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded;
    /// [`Error::InvalidUser`] for an empty id or one longer than
    /// [`MAX_USER_LEN`](crate::users::MAX_USER_LEN) bytes.
    pub fn set_user(&self, user: &str) -> Result<(), Error> {
        if user.is_empty() || user.len() > crate::users::MAX_USER_LEN {
            return Err(Error::InvalidUser);
        }
        let now = crate::clock::unix_secs(self.inner.layer.now());
        let mut st = self.loaded_state()?;
        if st.data().get(USER_KEY).and_then(|v| v.as_str()) == Some(user) {
            return Ok(());
        }
        st.set(USER_KEY, serde_json::Value::String(user.to_owned()));
        st.set(SINCE_KEY, serde_json::Value::from(now));
        st.set(SEEN_KEY, serde_json::Value::from(now));
        Ok(())
    }

    /// The user the session is bound to ([`set_user`](Self::set_user)).
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded.
    pub fn user(&self) -> Result<Option<String>, Error> {
        let st = self.loaded_state()?;
        Ok(crate::store::bound_user(st.data()).map(str::to_owned))
    }

    /// Sets an application field shown with the session in its user's list
    /// ([`UserSession::meta`](crate::users::UserSession::meta)): a device
    /// summary, an IP address. Kept with the session's data.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded;
    /// [`Error::InvalidMeta`], changing nothing, when the name plus value is
    /// longer than [`MAX_META_LEN`](crate::users::MAX_META_LEN) bytes or the
    /// session already has [`MAX_META_FIELDS`](crate::users::MAX_META_FIELDS)
    /// other fields.
    pub fn set_meta(&self, name: &str, value: &str) -> Result<(), Error> {
        if name.len() + value.len() > crate::users::MAX_META_LEN {
            return Err(Error::InvalidMeta);
        }
        let mut st = self.loaded_state()?;
        let mut meta = match st.data().get(META_KEY) {
            Some(serde_json::Value::Object(map)) => map.clone(),
            _ => serde_json::Map::new(),
        };
        if !meta.contains_key(name) && meta.len() >= crate::users::MAX_META_FIELDS {
            return Err(Error::InvalidMeta);
        }
        if meta.get(name).and_then(|v| v.as_str()) == Some(value) {
            return Ok(());
        }
        meta.insert(name.to_owned(), serde_json::Value::String(value.to_owned()));
        st.set(META_KEY, serde_json::Value::Object(meta));
        Ok(())
    }

    /// The handle of the stored record this session lives in, as its user's
    /// list shows it ([`UserSession::handle`](crate::users::UserSession::handle));
    /// `None` before it is stored and for the cookie store.
    pub fn handle(&self) -> Option<crate::users::SessionHandle> {
        if self.inner.layer.is_client_side() {
            return None;
        }
        self.state().value().map(crate::users::SessionHandle::of)
    }

    /// Changes when this session expires, from this response on and on every
    /// later request until it is changed again: the policy is kept with the
    /// session (sealed in its cookie). Windows longer than
    /// [`MAX_LIFETIME`](crate::MAX_LIFETIME) are shortened to it.
    pub fn set_expiry(&self, expiry: Expiry) {
        self.state().set_expiry(expiry);
    }

    /// Overrides cookie attributes for this session (gorilla's `session.Options`),
    /// from this response on and on every later request: the overrides are
    /// kept with the session. Each call overrides the attributes it sets and
    /// keeps earlier overrides of the others; a `max_age` is the same as
    /// [`set_expiry`](Self::set_expiry) with [`Expiry::OnInactivity`]. When
    /// the `Path` or `Domain` changes, the cookie at the old place is removed.
    ///
    /// # Errors
    ///
    /// [`Error::Config`], changing nothing, when the result would be an
    /// invalid cookie (a `__Host-` cookie given a `Domain`, `SameSite=None`
    /// without `Secure`, ...).
    pub fn set_options(&self, options: CookieOptions) -> Result<(), Error> {
        let mut st = self.state();
        let merged = st.with_options(&options);
        self.inner
            .layer
            .attrs(self.inner.slot)
            .with_overrides(&merged.cookie)?;
        st.replace_settings(merged);
        Ok(())
    }

    /// The session's expiry policy: its own, when it set one, else the layer's.
    pub fn expiry(&self) -> Expiry {
        let own = self.state().own_expiry();
        own.unwrap_or_else(|| self.inner.layer.expiry())
    }

    /// When the stored session expires unless a later request extends it (as
    /// of the cookie last issued, this request's save included); `None` for a
    /// session not loaded or not stored yet.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.state().expires().map(from_unix_secs)
    }

    /// What this request did to the session so far.
    pub fn status(&self) -> SessionStatus {
        self.state().status()
    }

    /// The keys this request set, removed or cleared so far, not yet saved.
    pub fn changes(&self) -> Changes {
        self.state().changes().clone()
    }

    /// A session outside any layer, already loaded with `record`, that saves
    /// nowhere: for a handler's unit tests (actix's `Session::new`), which
    /// then look at [`changes`](Self::changes), [`status`](Self::status) and
    /// the data.
    ///
    /// ```
    /// use sessio::store::Record;
    /// use sessio::{Session, SessionStatus};
    ///
    /// async fn handler(session: Session) -> Result<(), sessio::Error> {
    ///     session.set("user", "ada")?;
    ///     Ok(())
    /// }
    ///
    /// # tokio_test(async {
    /// let session = Session::detached(Record::new());
    /// handler(session.clone()).await.unwrap();
    /// assert_eq!(session.get::<String>("user").unwrap().as_deref(), Some("ada"));
    /// assert_eq!(session.changes().set().collect::<Vec<_>>(), vec!["user"]);
    /// assert_eq!(session.status(), SessionStatus::Changed);
    /// # });
    /// # fn tokio_test(f: impl std::future::Future<Output = ()>) {
    /// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    /// # }
    /// ```
    pub fn detached(record: Record) -> Self {
        Self::new(
            Arc::new(crate::persist::Detached::new()),
            0,
            State::detached(record),
        )
    }

    fn loaded_state(&self) -> Result<MutexGuard<'_, State>, Error> {
        let st = self.state();
        if st.is_loaded() {
            Ok(st)
        } else {
            Err(Error::NotLoaded)
        }
    }

    /// Loaded, not stored, no data: a visitor without a session (CSRF
    /// secrets then go in a companion cookie).
    #[cfg(feature = "csrf")]
    pub(crate) fn is_anonymous(&self) -> Result<bool, Error> {
        Ok(self.loaded_state()?.is_anonymous())
    }

    #[cfg(feature = "csrf")]
    pub(crate) fn anon_secret(&self) -> Option<[u8; 32]> {
        self.state().anon_secret()
    }

    #[cfg(feature = "csrf")]
    pub(crate) fn make_anon_secret(&self, secret: [u8; 32]) {
        self.state().make_anon_secret(secret);
    }

    /// Reads and removes the list under `key` (flashes).
    pub(crate) fn take_list<T: DeserializeOwned>(&self, key: &str) -> Result<Vec<T>, Error> {
        let mut st = self.loaded_state()?;
        let Some(list) = st.data().get(key) else {
            return Ok(Vec::new());
        };
        let items = Vec::<T>::deserialize(list).map_err(Error::deserialize)?;
        st.remove(key);
        Ok(items)
    }

    /// Appends to the list under `key`, keeping the newest `cap` items.
    pub(crate) fn push_list(
        &self,
        key: &str,
        value: impl Serialize,
        cap: usize,
    ) -> Result<(), Error> {
        let value = serde_json::to_value(value).map_err(Error::serialize)?;
        self.loaded_state()?.push(key, value, cap);
        Ok(())
    }
}

impl Inner {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves State consistent before anything that
        // could panic, so a poisoned lock still holds usable state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("Session")
            .field("name", &self.name())
            .field("loaded", &st.is_loaded())
            .field("keys", &st.data().len())
            .finish_non_exhaustive()
    }
}
