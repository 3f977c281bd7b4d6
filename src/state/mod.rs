//! One session's state during one request, and every transition of it.
//!
//! The request's cookies give the state its candidates ([`State::from_cookies`]);
//! loading picks the first candidate with a live record, or starts a fresh
//! session ([`State::accept`], [`State::start_fresh`]); handler operations
//! change data, settings and lifecycle; on the way out [`State::plan`] decides
//! what goes to the store and which `Set-Cookie` headers go out, the layer
//! runs the plan, and [`State::commit`] or [`State::restore`] records how it
//! went. No other module writes these fields.
//!
//! The table under "What goes out" in the crate docs is this module's
//! contract: each row is a branch of [`State::plan`] or [`State::commit`].

use std::sync::Arc;

use serde_json::Value;

use crate::codec::Envelope;
use crate::config::CookieOptions;
use crate::error::Error;
use crate::expiry::Expiry;
use crate::settings::Settings;
use crate::store::{Changes, Record};

mod plan;
pub(crate) use plan::{Cx, Op, Outcome, Plan};

/// The session key of the CSRF token (the `csrf` feature); rotated by
/// `cycle_id`.
pub(crate) const CSRF_KEY: &str = "_csrf";

/// A cookie of the session's name that verified, or the one this session was
/// last issued.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    /// The store's value (an id, or the cookie store's data).
    pub(crate) value: String,
    pub(crate) envelope: Envelope,
    /// Verified under a fallback key: re-issue under the current key.
    pub(crate) reissue: bool,
}

impl Issued {
    fn place(&self) -> Place {
        Place(self.envelope.settings.clone())
    }
}

/// Where in the browser a cookie of this session sits: the settings it was
/// issued under (their `Path` and `Domain` pick the place).
#[derive(Clone, Debug, Default)]
pub(crate) struct Place(pub(crate) Option<Arc<Settings>>);

impl Place {
    fn same(&self, other: &Place) -> bool {
        let none = Settings::default();
        let a = self.0.as_deref().unwrap_or(&none);
        let b = other.0.as_deref().unwrap_or(&none);
        a.same_place(b)
    }
}

/// What a request did to its session, as [`Session::status`](crate::Session::status)
/// reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionStatus {
    /// Nothing changed (reading, and extending the expiry, are no change).
    #[default]
    Unchanged,
    /// Data or the session's own settings changed.
    Changed,
    /// [`cycle_id`](crate::Session::cycle_id) gave the session a new id.
    Renewed,
    /// [`destroy`](crate::Session::destroy) ended the session.
    Ended,
}

/// Everything the layer knows about one session during one request.
#[derive(Default)]
pub(crate) struct State {
    /// Verified cookies not yet tried against the store, in request order.
    first: Option<Issued>,
    more: Vec<Issued>,
    /// Candidates tried so far while loading.
    tried: usize,
    loaded: bool,
    load_error: Option<Error>,
    /// The record this session lives in and the cookie it was issued with.
    current: Option<Issued>,
    /// Seconds since the epoch when this session was created.
    created: u64,
    data: Record,
    changes: Changes,
    /// The session's own settings, as they will be sealed in its next cookie.
    settings: Option<Arc<Settings>>,
    settings_changed: bool,
    /// `cycle_id` was called: move the record to a new id.
    rotate: bool,
    /// Records to delete whatever the response's status (`destroy`).
    ended: Vec<String>,
    /// Where the browser holds this session's cookie, if it sent one.
    held: Option<Place>,
    /// The held cookie no longer points at a live session: remove it unless a
    /// new cookie replaces it.
    must_remove: bool,
    /// Removal cookies for places the session's cookie moved away from.
    moved: Vec<String>,
    /// The session's latest `Set-Cookie` (its cookie, or its removal).
    cookie: Option<String>,
    /// Bumped by every change, so a failed save can tell whether anything
    /// changed after it.
    generation: u64,
    /// The generation whose save failed (the handler got the error).
    failed: Option<u64>,
    status: SessionStatus,
    /// An anonymous visitor's CSRF secret, kept in its own signed cookie
    /// instead of a stored session (see [`Anon`]).
    anon: Option<Anon>,
    /// The request carried the companion cookie of an anonymous secret.
    anon_sent: bool,
    /// This request stored the session's data (which the save may have
    /// moved out of `data`).
    stored: bool,
}

/// A CSRF secret for a visitor who has no stored session: it rides in a
/// signed companion cookie (`<name>-csrf`), so rendering a form stores
/// nothing. Once the session is stored the session's own secret takes over.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anon {
    pub(crate) secret: [u8; 32],
    /// Made in this request (so the companion cookie must go out).
    pub(crate) fresh: bool,
    /// Safe to carry into the session when it is first stored: made here, or
    /// sent under a `__Host-` name that a sibling subdomain cannot plant.
    pub(crate) adoptable: bool,
}

impl State {
    /// The state of a session whose request carried verified cookies of its
    /// name (`first`, then `more`, in order) and, when `rejected`, at least
    /// one that did not verify.
    pub(crate) fn from_cookies(first: Option<Issued>, more: Vec<Issued>, rejected: bool) -> Self {
        debug_assert!(first.is_some() || more.is_empty());
        let mut st = Self {
            first,
            more,
            ..Self::default()
        };
        st.held = match &st.first {
            Some(c) => Some(c.place()),
            None if rejected => Some(Place::default()),
            None => None,
        };
        st.must_remove = st.first.is_none() && rejected;
        st
    }

    /// A loaded session holding `record`, stored nowhere (see
    /// [`Session::detached`](crate::Session::detached)).
    pub(crate) fn detached(record: Record) -> Self {
        Self {
            loaded: true,
            data: record,
            ..Self::default()
        }
    }

    pub(crate) fn changes(&self) -> &Changes {
        &self.changes
    }

    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Nothing to do on the way out: never loaded, no cookie to send or
    /// remove, and (with `refresh_every`) no cookie to refresh.
    pub(crate) fn idle(&self, refresh_every: bool) -> bool {
        !self.loaded
            && self.load_error.is_none()
            && self.cookie.is_none()
            && self.moved.is_empty()
            && !self.must_remove
            && !(refresh_every && self.first.is_some())
    }

    /// A stored, non-empty session was loaded: the response was made for
    /// one visitor.
    pub(crate) fn is_personal(&self) -> bool {
        self.loaded && self.current.is_some() && (self.stored || !self.data.is_empty())
    }

    /// The value of the next candidate to try, if any remains.
    pub(crate) fn next_candidate(&self) -> Option<&str> {
        match self.tried {
            0 => self.first.as_ref(),
            n => self.more.get(n - 1),
        }
        .map(|c| c.value.as_str())
    }

    /// The candidate just tried has no record (or an unreadable one).
    pub(crate) fn reject_candidate(&mut self) {
        self.tried += 1;
    }

    /// The candidate just tried has `record`: this is the session.
    pub(crate) fn accept(&mut self, record: Record) {
        let chosen = match self.tried {
            0 => self.first.take(),
            n => self.more.get(n - 1).cloned(),
        };
        self.first = None;
        self.more = Vec::new();
        let Some(chosen) = chosen else { return };
        self.loaded = true;
        self.created = chosen.envelope.created;
        self.held = Some(chosen.place());
        self.must_remove = false;
        // Settings set before the load go over the stored ones.
        let stored = chosen.envelope.settings.clone();
        self.settings = match self.settings.take() {
            Some(top) if self.settings_changed => Some(match stored {
                Some(base) => Arc::new(base.overlay(&top)),
                None => top,
            }),
            _ => stored,
        };
        self.data = record;
        self.current = Some(chosen);
    }

    /// No candidate has a live record: a fresh, empty session created `now`.
    /// A cookie the browser sent is removed unless something replaces it.
    pub(crate) fn start_fresh(&mut self, now: u64) {
        self.first = None;
        self.more = Vec::new();
        self.loaded = true;
        self.created = now;
        self.current = None;
        if self.tried > 0 {
            self.must_remove = true;
        }
        if !self.settings_changed {
            self.settings = None;
        }
    }

    /// The request carried a valid companion cookie with this secret.
    #[cfg(feature = "csrf")]
    pub(crate) fn anon_from_cookie(&mut self, secret: [u8; 32], adoptable: bool) {
        self.anon = Some(Anon {
            secret,
            fresh: false,
            adoptable,
        });
        self.anon_sent = true;
    }

    /// Loaded, not stored, no data: a visitor without a session.
    #[cfg(feature = "csrf")]
    pub(crate) fn is_anonymous(&self) -> bool {
        self.loaded && self.current.is_none() && self.data.is_empty()
    }

    #[cfg(feature = "csrf")]
    pub(crate) fn anon_secret(&self) -> Option<[u8; 32]> {
        self.anon.map(|a| a.secret)
    }

    /// A new anonymous secret, made in this request.
    #[cfg(feature = "csrf")]
    pub(crate) fn make_anon_secret(&mut self, secret: [u8; 32]) {
        self.anon = Some(Anon {
            secret,
            fresh: true,
            adoptable: true,
        });
    }

    /// Loading failed; the layer answers with its error handler.
    pub(crate) fn load_failed(&mut self, err: Error) {
        self.load_error = Some(err);
    }

    pub(crate) fn take_load_error(&mut self) -> Option<Error> {
        self.load_error.take()
    }

    /// The `Set-Cookie` headers to send, in order: removals of places the
    /// cookie left, then the cookie (or its removal).
    pub(crate) fn take_outgoing(&mut self) -> impl Iterator<Item = String> {
        std::mem::take(&mut self.moved)
            .into_iter()
            .chain(self.cookie.take())
    }

    /// The store value of the record the session lives in, once loaded.
    pub(crate) fn value(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.value.as_str())
    }

    pub(crate) fn data(&self) -> &Record {
        &self.data
    }

    pub(crate) fn status(&self) -> SessionStatus {
        self.status
    }

    /// The session's own expiry, if it set one.
    pub(crate) fn own_expiry(&self) -> Option<Expiry> {
        self.settings.as_ref().and_then(|s| s.expiry)
    }

    /// When the stored session expires as last issued, in unix seconds.
    pub(crate) fn expires(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.envelope.expires)
    }

    fn changed(&mut self) {
        self.generation += 1;
        if self.status == SessionStatus::Unchanged {
            self.status = SessionStatus::Changed;
        }
    }

    /// Sets `key`; setting the value already there changes nothing.
    pub(crate) fn set(&mut self, key: &str, value: Value) {
        match self.data.get_mut(key) {
            Some(old) if *old == value => return,
            // Replaced in place: no new key.
            Some(old) => *old = value,
            None => {
                self.data.insert(key, value);
            }
        }
        self.changes.record_set(key);
        self.changed();
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Value> {
        let old = self.data.remove(key)?;
        self.changes.record_remove(key);
        self.changed();
        Some(old)
    }

    pub(crate) fn clear(&mut self) {
        if !self.data.is_empty() {
            self.data.clear();
            self.changes.record_clear();
            self.changed();
        }
    }

    /// Appends `value` to the list under `key`, dropping the oldest items
    /// past `cap`.
    pub(crate) fn push(&mut self, key: &str, value: Value, cap: usize) {
        let mut list = match self.data.remove(key) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        list.push(value);
        if list.len() > cap {
            list.drain(..list.len() - cap);
        }
        self.data.insert(key, Value::Array(list));
        self.changes.record_set(key);
        self.changed();
    }

    /// A new id at the next save, the data kept; the CSRF token is dropped so
    /// a token known before (a login) is not valid after it.
    pub(crate) fn cycle_id(&mut self) {
        self.rotate = true;
        self.remove(CSRF_KEY);
        self.changed();
        self.status = SessionStatus::Renewed;
    }

    /// Ends the session: its record (or, before loading, every verified
    /// candidate's) is deleted whatever the status, its cookie removed.
    pub(crate) fn destroy(&mut self) {
        self.ended.extend(self.current.take().map(|c| c.value));
        if !self.loaded {
            self.ended.extend(self.first.take().map(|c| c.value));
            self.ended.extend(self.more.drain(..).map(|c| c.value));
        }
        self.loaded = true;
        self.data.clear();
        self.changes = Changes::default();
        self.rotate = false;
        self.settings = None;
        self.settings_changed = false;
        self.must_remove = self.held.is_some();
        self.generation += 1;
        self.status = SessionStatus::Ended;
    }

    /// Sets the session's own expiry.
    pub(crate) fn set_expiry(&mut self, expiry: Expiry) {
        let mut s = self.settings.as_deref().cloned().unwrap_or_default();
        s.expiry = Some(expiry);
        self.replace_settings(s);
    }

    /// The session's settings with `options` laid over them, as
    /// [`set_options`](Self::set_options) would make them.
    pub(crate) fn with_options(&self, options: &CookieOptions) -> Settings {
        let mut top = Settings {
            expiry: options.max_age.map(Expiry::OnInactivity),
            cookie: options.clone(),
        };
        top.cookie.max_age = None;
        match self.settings.as_deref() {
            Some(base) => base.overlay(&top),
            None => top,
        }
    }

    /// Replaces the session's settings (already validated).
    pub(crate) fn replace_settings(&mut self, settings: Settings) {
        self.settings = Some(Arc::new(settings));
        self.settings_changed = true;
        self.changed();
    }

    /// The handler asks to save again: its own retry is never skipped.
    pub(crate) fn retry(&mut self) {
        self.failed = None;
    }

    /// The explicit save of this generation failed; the layer will not send
    /// it again unless something changes.
    pub(crate) fn save_failed(&mut self) {
        self.failed = Some(self.generation);
    }
}

impl Settings {
    /// These settings with every field `top` sets taken from `top`.
    pub(crate) fn overlay(&self, top: &Settings) -> Settings {
        let (b, t) = (&self.cookie, &top.cookie);
        Settings {
            expiry: top.expiry.or(self.expiry),
            cookie: CookieOptions {
                max_age: None,
                path: t.path.clone().or_else(|| b.path.clone()),
                domain: t.domain.clone().or_else(|| b.domain.clone()),
                secure: t.secure.or(b.secure),
                http_only: t.http_only.or(b.http_only),
                same_site: t.same_site.or(b.same_site),
                partitioned: t.partitioned.or(b.partitioned),
            },
        }
    }
}

#[cfg(test)]
mod tests;
