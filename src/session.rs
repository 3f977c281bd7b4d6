//! The per-request session handle.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::Envelope;
use crate::config::{CookieAttrs, CookieOptions, Expiry};
use crate::engine::Engine;
use crate::error::Error;
use crate::id::Id;
use crate::store::{Changes, Record};

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
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) slot: usize,
    pub(crate) once: tokio::sync::OnceCell<()>,
    pub(crate) state: Mutex<State>,
}

/// Everything the layer knows about one session during one request.
#[derive(Default)]
pub(crate) struct State {
    /// The data has been read from the store (or the session is new).
    pub(crate) loaded: bool,
    /// The store value of the record this session lives in, if any.
    pub(crate) value: Option<String>,
    /// Times from the verified cookie, or for a new session its creation time.
    pub(crate) envelope: Option<Envelope>,
    /// Seconds since the epoch when this session was created.
    pub(crate) created: u64,
    /// The cookie verified under a fallback key and must be re-issued.
    pub(crate) reissue: bool,
    pub(crate) data: Record,
    pub(crate) changes: Changes,
    /// Write the data as a new record (after `cycle_id`).
    pub(crate) force_create: bool,
    /// Old records to delete on the next save.
    pub(crate) deletes: Vec<String>,
    /// A cookie is in the browser that must be removed if nothing replaces it.
    pub(crate) removal: bool,
    /// Expiry or cookie options changed: re-issue the cookie, extend the TTL.
    pub(crate) refresh: bool,
    pub(crate) expiry: Option<Expiry>,
    pub(crate) attrs: Option<CookieAttrs>,
    /// The `Set-Cookie` a save produced, not yet sent.
    pub(crate) outgoing: Option<String>,
    /// Loading failed; the layer answers with its error handler.
    pub(crate) load_error: Option<Error>,
}

impl Session {
    pub(crate) fn new(engine: Arc<dyn Engine>, slot: usize, state: State) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                slot,
                once: tokio::sync::OnceCell::new(),
                state: Mutex::new(state),
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state()
    }

    /// Never loaded, nor failed to load: nothing to save or send (DESIGN §3).
    pub(crate) fn untouched(&self) -> bool {
        let st = self.state();
        !st.loaded && st.load_error.is_none() && st.outgoing.is_none()
    }

    /// Reads the session from the store, once; later calls return at once.
    ///
    /// The axum extractor calls this for you. A failure is also reported to the
    /// layer, which answers with its error handler's response, so a handler
    /// never runs on a session that looks empty because the store was down.
    pub async fn load(&self) -> Result<(), Error> {
        if self.inner.state().loaded {
            return Ok(());
        }
        self.inner
            .once
            .get_or_try_init(|| self.inner.engine.load(&self.inner))
            .await
            .map(|_| ())
    }

    /// Persists the session now, instead of when the response goes out, and
    /// returns any store error to the caller. The `Set-Cookie` is still sent
    /// with the response.
    pub async fn save(&self) -> Result<(), Error> {
        self.inner.engine.save(&self.inner).await
    }

    /// The cookie name of this session.
    pub fn name(&self) -> &str {
        &self.inner.engine.attrs(self.inner.slot).name
    }

    /// The session id: `None` before the session is loaded, for a new session
    /// not yet saved, and for stores whose cookie value is not an id (the
    /// cookie store).
    pub fn id(&self) -> Option<Id> {
        let st = self.state();
        if !st.loaded {
            return None;
        }
        st.value.as_deref().and_then(Id::parse)
    }

    /// The value under `key`, deserialized; `None` when absent.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let st = self.loaded_state()?;
        st.data
            .get(key)
            .map(|v| T::deserialize(v).map_err(Error::deserialize))
            .transpose()
    }

    /// Sets `key`. Setting the value already stored changes nothing.
    pub fn set(&self, key: &str, value: impl Serialize) -> Result<(), Error> {
        let value = serde_json::to_value(value).map_err(Error::serialize)?;
        let mut st = self.loaded_state()?;
        match st.data.get_mut(key) {
            Some(old) if *old == value => return Ok(()),
            // Replaced in place: no new key.
            Some(old) => *old = value,
            None => {
                st.data.insert(key, value);
            }
        }
        st.changes.record_set(key);
        Ok(())
    }

    /// Removes `key`, returning whether it was there.
    pub fn delete(&self, key: &str) -> Result<bool, Error> {
        let mut st = self.loaded_state()?;
        let was = st.data.remove(key).is_some();
        if was {
            st.changes.record_remove(key);
        }
        Ok(was)
    }

    /// Removes every key. A session cleared to empty is deleted from the store
    /// and its cookie removed when the response goes out.
    pub fn clear(&self) -> Result<(), Error> {
        let mut st = self.loaded_state()?;
        if !st.data.is_empty() {
            st.data.clear();
            st.changes.record_clear();
        }
        Ok(())
    }

    /// Gives the session a new id and keeps its data; the old record is deleted
    /// and its cookie stops working. Call it when privileges change (login) to
    /// prevent session fixation.
    pub fn cycle_id(&self) -> Result<(), Error> {
        let mut st = self.loaded_state()?;
        if let Some(old) = st.value.take() {
            st.deletes.push(old);
            st.removal = true;
        }
        st.force_create = true;
        Ok(())
    }

    /// Ends the session: the record is deleted and the browser told to drop
    /// the cookie. Data set afterwards in the same request starts a new
    /// session with a new id.
    pub fn destroy(&self) {
        let mut st = self.state();
        if let Some(old) = st.value.take() {
            st.deletes.push(old);
            st.removal = true;
        }
        st.loaded = true;
        st.data.clear();
        st.changes = Changes::default();
        st.force_create = false;
    }

    /// Changes when this session expires, from this response on.
    pub fn set_expiry(&self, expiry: Expiry) {
        let mut st = self.state();
        st.expiry = Some(expiry);
        st.refresh = true;
    }

    /// Overrides cookie attributes for this session (gorilla's `session.Options`).
    /// Fails, changing nothing, when the result would be an invalid cookie.
    pub fn set_options(&self, options: CookieOptions) -> Result<(), Error> {
        let attrs = self
            .inner
            .engine
            .attrs(self.inner.slot)
            .with_overrides(&options)?;
        let mut st = self.state();
        st.attrs = Some(attrs);
        if let Some(max_age) = options.max_age {
            st.expiry = Some(Expiry::OnInactivity(max_age));
        }
        st.refresh = true;
        Ok(())
    }

    fn loaded_state(&self) -> Result<MutexGuard<'_, State>, Error> {
        let st = self.state();
        if st.loaded {
            Ok(st)
        } else {
            Err(Error::NotLoaded)
        }
    }

    /// Reads and removes the flashes under `key` (see `flash.rs`).
    pub(crate) fn take_list<T: DeserializeOwned>(&self, key: &str) -> Result<Vec<T>, Error> {
        let mut st = self.loaded_state()?;
        let Some(list) = st.data.get(key) else {
            return Ok(Vec::new());
        };
        let items = Vec::<T>::deserialize(list).map_err(Error::deserialize)?;
        st.data.remove(key);
        st.changes.record_remove(key);
        Ok(items)
    }

    /// Appends to the list under `key`.
    pub(crate) fn push_list(&self, key: &str, value: impl Serialize) -> Result<(), Error> {
        let value = serde_json::to_value(value).map_err(Error::serialize)?;
        let mut st = self.loaded_state()?;
        let mut list = match st.data.remove(key) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        list.push(value);
        st.data.insert(key, Value::Array(list));
        st.changes.record_set(key);
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
            .field("loaded", &st.loaded)
            .field("keys", &st.data.len())
            .finish_non_exhaustive()
    }
}
