//! Loading and saving one session: the logic behind the table of DESIGN §3.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{from_unix_secs, unix_secs, Clock};
use crate::codec::{encoded_len, Codec, Envelope, Protection, MAX_COOKIE_LEN};
use crate::config::{CookieAttrs, Expiry};
use crate::error::Error;
use crate::session::{Inner, State};
use crate::store::{Changes, Expires, Record, Store};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Turns a store error into the response a client gets.
pub(crate) type ErrorHandler = Arc<dyn Fn(&Error) -> http::Response<()> + Send + Sync>;

/// What a [`Session`](crate::Session) needs from its layer, with the store type
/// erased. The extractor has only the request to go on, so lazy loading needs
/// this one dynamic call; the save on the way out calls [`Shared`] directly.
pub(crate) trait Engine: Send + Sync + 'static {
    fn load<'a>(&'a self, session: &'a Inner) -> BoxFuture<'a, Result<(), Error>>;
    fn save<'a>(&'a self, session: &'a Inner) -> BoxFuture<'a, Result<(), Error>>;
    fn attrs(&self, slot: usize) -> &CookieAttrs;
}

/// Configuration and store shared by every request through one layer.
pub(crate) struct Shared<St> {
    pub(crate) store: St,
    pub(crate) codec: Codec,
    pub(crate) protection: Protection,
    pub(crate) cookies: Vec<CookieAttrs>,
    pub(crate) expiry: Expiry,
    pub(crate) absolute: Option<Duration>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) on_error: ErrorHandler,
}

/// One store operation decided under the session lock, run after it.
enum Write {
    Nothing,
    Create(Record),
    /// Writes `record`; the changes are the plan's `taken`.
    Update {
        value: String,
        record: Record,
    },
    Touch(String),
    Reissue(String),
    Remove,
}

/// What one save will do, decided under the session's lock.
pub(crate) struct Plan {
    write: Write,
    deletes: Vec<String>,
    attrs: Option<CookieAttrs>,
    envelope: Envelope,
    expires: Expires,
    max_age: Option<u64>,
    taken: Changes,
}

impl<St: Store> Shared<St> {
    pub(crate) async fn load_session(&self, session: &Inner) -> Result<(), Error> {
        // The value is copied out so that no lock is held across the store's
        // await. An id fits on the stack; only a long value (the cookie
        // store's) takes an allocation.
        let mut short = [0u8; 64];
        let long: String;
        let value: Option<&str> = {
            let st = session.state();
            if st.loaded {
                return Ok(());
            }
            match st.value.as_deref() {
                None => None,
                Some(v) if v.len() <= short.len() => {
                    short[..v.len()].copy_from_slice(v.as_bytes());
                    std::str::from_utf8(&short[..v.len()]).ok()
                }
                Some(v) => {
                    long = v.to_owned();
                    Some(&long)
                }
            }
        };
        let loaded = match value {
            None => None,
            Some(v) => match self.store.load(v).await {
                Ok(found) => {
                    if found.is_none() {
                        // SECURITY A3: unknown or expired id → fresh session.
                        tracing::warn!(
                            cookie = %self.cookies[session.slot].name,
                            "session not found in store; starting a fresh session"
                        );
                    }
                    found
                }
                Err(err) => {
                    tracing::error!(
                        cookie = %self.cookies[session.slot].name,
                        error = %err,
                        source = ?std::error::Error::source(&err).map(ToString::to_string),
                        "loading the session failed"
                    );
                    session.state().load_error = Some(err.clone());
                    return Err(err);
                }
            },
        };
        let mut st = session.state();
        if st.loaded {
            // `destroy` ran while the store was being read.
            return Ok(());
        }
        st.loaded = true;
        match loaded {
            Some(record) => st.data = record,
            None => {
                st.value = None;
                st.envelope = None;
                st.reissue = false;
                st.created = unix_secs(self.clock.now());
            }
        }
        Ok(())
    }

    /// Saves what changed and leaves the `Set-Cookie` to send in `outgoing`.
    /// Saves what changed. `last` says nothing else can reach the session
    /// any more (the layer's own save once the handler is done, with no clone
    /// kept anywhere), so the plan may move the data out instead of copying it.
    pub(crate) async fn save_session(&self, session: &Inner, last: bool) -> Result<(), Error> {
        match self.plan_for(session, last) {
            Some(plan) => self.apply(session, plan).await,
            None => Ok(()),
        }
    }

    /// What saving `session` would write, taken out of its state; `None`
    /// when there is nothing to write (an unchanged session, most requests).
    /// Synchronous, so the layer can tell before it starts anything async.
    pub(crate) fn plan_for(&self, session: &Inner, last: bool) -> Option<Plan> {
        self.plan(&mut session.state(), last)
    }

    /// Carries out a plan from [`plan_for`](Self::plan_for) and leaves the
    /// `Set-Cookie` to send in the session's `outgoing`.
    pub(crate) async fn apply(&self, session: &Inner, plan: Plan) -> Result<(), Error> {
        let result = self.execute(session.slot, &plan).await;
        let mut st = session.state();
        let removing = matches!(plan.write, Write::Remove);
        match result {
            Ok(Some(value)) => {
                let attrs = plan.attrs.as_ref().unwrap_or(&self.cookies[session.slot]);
                let len = encoded_len(self.protection, value.len());
                st.outgoing = Some(attrs.set_cookie_with(len, plan.max_age, |out| {
                    self.codec.encode_into(
                        self.protection,
                        &attrs.name,
                        &plan.envelope,
                        value.as_bytes(),
                        out,
                    );
                }));
                st.value = Some(value);
                st.envelope = Some(plan.envelope);
                st.removal = false;
                Ok(())
            }
            Ok(None) => {
                if removing {
                    let attrs = plan.attrs.as_ref().unwrap_or(&self.cookies[session.slot]);
                    st.outgoing = Some(attrs.removal());
                    st.removal = false;
                    st.value = None;
                }
                Ok(())
            }
            Err(err) => {
                put_back(&mut st, plan);
                tracing::error!(
                    cookie = %self.cookies[session.slot].name,
                    error = %err,
                    source = ?std::error::Error::source(&err).map(ToString::to_string),
                    "saving the session failed"
                );
                Err(err)
            }
        }
    }

    /// Puts a plan that was never carried out back into its session, so the
    /// state still describes the unsaved changes.
    pub(crate) fn put_back(&self, session: &Inner, plan: Plan) {
        put_back(&mut session.state(), plan);
    }

    fn plan(&self, st: &mut State, last: bool) -> Option<Plan> {
        if !st.loaded {
            return None;
        }
        let now = unix_secs(self.clock.now());
        let expiry = st.expiry.unwrap_or(self.expiry);
        let mut at = match expiry {
            Expiry::BrowserSession { idle } | Expiry::OnInactivity(idle) => {
                now.saturating_add(idle.as_secs())
            }
            Expiry::AtTime(t) => unix_secs(t),
        };
        if let Some(abs) = self.absolute {
            at = at.min(st.created.saturating_add(abs.as_secs()));
        }
        let ttl = at.saturating_sub(now);
        let dirty = !st.changes.is_empty() || st.force_create;
        let mut deletes = std::mem::take(&mut st.deletes);
        // Cloned only for a write that takes it along, and moved instead
        // when nothing can read the session after this save.
        let take = |data: &mut Record| {
            if last {
                std::mem::take(data)
            } else {
                data.clone()
            }
        };
        let write = match st.value.as_deref() {
            _ if ttl == 0 => {
                deletes.extend(st.value.take());
                if st.removal || !deletes.is_empty() {
                    Write::Remove
                } else {
                    Write::Nothing
                }
            }
            None if st.data.is_empty() => {
                if st.removal {
                    Write::Remove
                } else {
                    Write::Nothing
                }
            }
            None => Write::Create(take(&mut st.data)),
            Some(v) if dirty && st.data.is_empty() => {
                deletes.push(v.to_owned());
                Write::Remove
            }
            Some(_) if dirty => Write::Update {
                value: if last {
                    st.value.take().unwrap_or_default()
                } else {
                    st.value.clone().unwrap_or_default()
                },
                record: take(&mut st.data),
            },
            Some(v) => {
                let old = st.envelope.map_or(0, |e| e.expires);
                let half_gone = expiry
                    .window()
                    .is_some_and(|w| old.saturating_sub(now).saturating_mul(2) < w.as_secs());
                if st.refresh || (half_gone && at > old) {
                    Write::Touch(v.to_owned())
                } else if st.reissue {
                    Write::Reissue(v.to_owned())
                } else {
                    Write::Nothing
                }
            }
        };
        if matches!(write, Write::Nothing) && deletes.is_empty() {
            return None;
        }
        let taken = std::mem::take(&mut st.changes);
        st.force_create = false;
        st.refresh = false;
        st.reissue = false;
        let fresh = Envelope {
            created: st.created,
            issued: now,
            expires: at,
        };
        let envelope = match write {
            // A re-issue keeps the old times: only the key changes.
            Write::Reissue(_) => st.envelope.unwrap_or(fresh),
            _ => fresh,
        };
        let max_age = match expiry {
            Expiry::BrowserSession { .. } => None,
            _ => Some(envelope.expires.saturating_sub(now)),
        };
        Some(Plan {
            write,
            deletes,
            attrs: st.attrs.clone(),
            envelope,
            expires: Expires::new(from_unix_secs(at), Duration::from_secs(ttl)),
            max_age,
            taken,
        })
    }

    /// Runs the plan; returns the store value to put in the cookie, if any.
    async fn execute(&self, slot: usize, plan: &Plan) -> Result<Option<String>, Error> {
        let value = match &plan.write {
            Write::Nothing | Write::Remove => None,
            Write::Create(record) => Some(self.store.create(record, plan.expires).await?),
            Write::Update { value, record } => match self
                .store
                .update(value, record, &plan.taken, plan.expires)
                .await?
            {
                Some(v) => Some(v),
                // SECURITY F28 / G35: never resurrect; report it.
                None => return Err(Error::RecordGone),
            },
            Write::Touch(v) => {
                if self.store.touch(v, plan.expires).await? {
                    Some(v.clone())
                } else {
                    tracing::warn!(
                        cookie = %self.cookies[slot].name,
                        "session record vanished before its expiry could be extended"
                    );
                    None
                }
            }
            Write::Reissue(v) => Some(v.clone()),
        };
        if let Some(v) = &value {
            let name = &plan.attrs.as_ref().unwrap_or(&self.cookies[slot]).name;
            let size = name.len() + 1 + encoded_len(self.protection, v.len());
            if size > MAX_COOKIE_LEN {
                tracing::error!(
                    cookie = %name,
                    size,
                    limit = MAX_COOKIE_LEN,
                    "session cookie too large; not saved"
                );
                if matches!(plan.write, Write::Create(_)) {
                    // Best effort: the record is unreachable without its cookie.
                    let _ = self.store.delete(v).await;
                }
                return Err(Error::CookieTooLarge {
                    size,
                    limit: MAX_COOKIE_LEN,
                });
            }
        }
        for old in &plan.deletes {
            self.store.delete(old).await?;
        }
        Ok(value)
    }
}

/// Puts back what a plan took from the state (changes, deletes, a pending
/// create), under anything newer, after a save that failed or never ran.
fn put_back(st: &mut State, plan: Plan) {
    let mut changes = std::mem::take(&mut st.changes);
    changes.merge_older(plan.taken);
    st.changes = changes;
    let later = std::mem::take(&mut st.deletes);
    st.deletes = plan.deletes;
    st.deletes.extend(later);
    if matches!(plan.write, Write::Create(_)) {
        st.force_create = true;
    }
}

impl<St: Store> Engine for Shared<St> {
    fn load<'a>(&'a self, session: &'a Inner) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.load_session(session))
    }

    fn save<'a>(&'a self, session: &'a Inner) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.save_session(session, false))
    }

    fn attrs(&self, slot: usize) -> &CookieAttrs {
        &self.cookies[slot]
    }
}
