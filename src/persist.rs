//! Loading and saving one session against the store. What to write is the
//! state's decision ([`crate::state`]); this module talks to the store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{unix_secs, Clock};
use crate::codec::{Codec, Protection, MAX_COOKIE_LEN};
use crate::config::CookieAttrs;
use crate::error::{Error, StoreError};
use crate::expiry::{Expiry, Refresh};
use crate::session::Inner;
use crate::state::{Cx, Op, Outcome, Plan};
use crate::store::{Store, Updated};

pub(crate) type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Turns a store error into the response a client gets.
pub(crate) type ErrorHandler = Arc<dyn Fn(&Error) -> http::Response<()> + Send + Sync>;

/// What a [`Session`](crate::Session) needs from its layer, with the store type
/// erased. The extractor has only the request to go on, so lazy loading needs
/// this one dynamic call; the save on the way out calls [`LayerConfig`] directly.
pub(crate) trait ErasedLayer: Send + Sync + 'static {
    fn load<'a>(&'a self, session: &'a Inner) -> StoreFuture<'a, Result<(), Error>>;
    fn save<'a>(&'a self, session: &'a Inner) -> StoreFuture<'a, Result<(), Error>>;
    fn attrs(&self, slot: usize) -> &CookieAttrs;
    /// The layer's expiry, for sessions without their own.
    fn expiry(&self) -> Expiry;
    /// The layer's clock.
    fn now(&self) -> std::time::SystemTime;
    /// The store keeps the session in the cookie ([`Store::is_client_side`]).
    fn is_client_side(&self) -> bool;
}

/// Configuration and store shared by every request through one layer.
pub(crate) struct LayerConfig<St> {
    pub(crate) store: St,
    pub(crate) codec: Codec,
    pub(crate) protection: Protection,
    pub(crate) cookies: Vec<CookieAttrs>,
    pub(crate) expiry: Expiry,
    pub(crate) absolute: Option<Duration>,
    pub(crate) refresh: Refresh,
    /// Mark responses made from a loaded session `Cache-Control: private`.
    pub(crate) private: bool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) on_error: ErrorHandler,
}

/// A store value copied out of the session's lock, on the stack when it
/// fits (an id always does).
enum Copied {
    Short([u8; 64], usize),
    Long(String),
}

impl Copied {
    fn new(v: &str) -> Self {
        if v.len() <= 64 {
            let mut b = [0u8; 64];
            b[..v.len()].copy_from_slice(v.as_bytes());
            Self::Short(b, v.len())
        } else {
            Self::Long(v.to_owned())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied from a `str` whole: always UTF-8.
            Self::Short(b, n) => std::str::from_utf8(&b[..*n]).unwrap_or_default(),
            Self::Long(s) => s,
        }
    }
}

impl<St: Store> LayerConfig<St> {
    /// Now, in unix seconds: read once per way out, and shared by the
    /// plan, the save and the cookies it queues.
    pub(crate) fn now(&self) -> u64 {
        unix_secs(self.clock.now())
    }

    pub(crate) fn cx(&self, slot: usize, now: u64) -> Cx<'_> {
        Cx {
            now,
            attrs: &self.cookies[slot],
            expiry: self.expiry,
            absolute: self.absolute.map(|d| d.as_secs()),
            refresh: self.refresh,
            codec: &self.codec,
            protection: self.protection,
            keyed: !self.store.is_client_side(),
        }
    }

    /// Loads the session: the first verified cookie whose record is live
    /// wins (SECURITY D21), else a fresh session. No lock is held across the
    /// store's await.
    pub(crate) async fn load_session(&self, session: &Inner) -> Result<(), Error> {
        let name = &self.cookies[session.slot].name;
        loop {
            let value = {
                let st = session.state();
                if st.is_loaded() {
                    // `destroy` ran while the store was being read.
                    return Ok(());
                }
                match st.next_candidate() {
                    Some(v) => Copied::new(v),
                    None => break,
                }
            };
            match self.store.load(value.as_str()).await {
                Ok(Some(record)) => {
                    let mut st = session.state();
                    if !st.is_loaded() {
                        st.accept(record);
                    }
                    return Ok(());
                }
                Ok(None) => {
                    // SECURITY A3: unknown or expired id → try the next, then fresh.
                    tracing::warn!(cookie = %name, "session not found in store");
                }
                Err(StoreError::Unreadable(err)) => {
                    // SECURITY I44: no session, not a 500 on every request.
                    tracing::error!(cookie = %name, error = %err,
                        "session record unreadable; deleting it and starting a fresh session");
                    if let Err(err) = self.store.delete(value.as_str()).await {
                        tracing::error!(cookie = %name, error = %err,
                            "deleting the unreadable session record failed");
                    }
                }
                Err(err) => {
                    let err = Error::from(err);
                    tracing::error!(
                        cookie = %name,
                        error = %err,
                        source = ?std::error::Error::source(&err).map(ToString::to_string),
                        "loading the session failed"
                    );
                    session.state().load_failed(err.clone());
                    return Err(err);
                }
            }
            session.state().reject_candidate();
        }
        let mut st = session.state();
        if !st.is_loaded() {
            st.start_fresh(unix_secs(self.clock.now()));
        }
        Ok(())
    }

    /// The handler's own save: runs the plan now and returns any store error
    /// (and [`Error::RecordGone`] when the session ended elsewhere). A failed
    /// save is not sent again on the way out unless the session changes.
    pub(crate) async fn save_session(&self, session: &Inner) -> Result<(), Error> {
        session.state().retry();
        let Some(plan) = self.plan_for(session, self.now(), false, false) else {
            return Ok(());
        };
        match self.apply(session, plan).await {
            Ok(true) => Err(Error::RecordGone),
            Ok(false) => Ok(()),
            Err(err) => {
                session.state().save_failed();
                Err(err)
            }
        }
    }

    /// What saving `session` would write, taken out of its state; `None`
    /// when nothing goes to the store. Synchronous, so the layer can tell
    /// before it starts anything async.
    pub(crate) fn plan_for(
        &self,
        session: &Inner,
        now: u64,
        last: bool,
        server_error: bool,
    ) -> Option<Plan> {
        let cx = self.cx(session.slot, now);
        session.state().plan(&cx, last, server_error)
    }

    /// Carries out a plan and records the outcome in the session, queueing its
    /// `Set-Cookie`; on failure the plan goes back into the session. `true`
    /// when the record turned out to be gone.
    pub(crate) async fn apply(&self, session: &Inner, plan: Plan) -> Result<bool, Error> {
        let cx = self.cx(session.slot, plan.now);
        let result = self.execute(&cx, &plan).await;
        let mut st = session.state();
        match result {
            Ok(outcome) => {
                let gone = matches!(outcome, Outcome::Gone);
                if gone {
                    // SECURITY G35: never resurrected; the response still goes out.
                    tracing::warn!(cookie = %cx.attrs.name,
                        "session record vanished before it could be saved; removing its cookie");
                }
                st.commit(&cx, plan, outcome);
                Ok(gone)
            }
            Err(err) => {
                st.restore(plan);
                tracing::error!(
                    cookie = %cx.attrs.name,
                    error = %err,
                    source = ?std::error::Error::source(&err).map(ToString::to_string),
                    "saving the session failed"
                );
                Err(err)
            }
        }
    }

    /// Queues the session's companion cookie (an anonymous CSRF secret), if
    /// it has one to issue or remove.
    pub(crate) fn settle_companion(&self, session: &Inner, now: u64) {
        let cx = self.cx(session.slot, now);
        session.state().settle_companion(&cx);
    }

    /// Puts a plan that was never carried out back into its session.
    pub(crate) fn restore(&self, session: &Inner, plan: Plan) {
        session.state().restore(plan);
    }

    /// Runs the plan against the store: deletions first, then the operation.
    async fn execute(&self, cx: &Cx<'_>, plan: &Plan) -> Result<Outcome, Error> {
        for old in &plan.ended {
            self.store.delete(old).await?;
        }
        let updated = |u: Updated| match u {
            Updated::Written(v) => Outcome::Stored(v),
            Updated::Emptied => Outcome::Emptied,
            Updated::Gone => Outcome::Gone,
        };
        let outcome = match &plan.op {
            Op::Nothing => Outcome::Done,
            Op::Create(record) => Outcome::Stored(self.store.create(record, plan.expires).await?),
            Op::Update { value, record } => updated(
                self.store
                    .update(value, record, &plan.changes, plan.expires)
                    .await?,
            ),
            Op::Rotate { old, record } => updated(
                self.store
                    .rotate(old, record, &plan.changes, plan.expires)
                    .await?,
            ),
            Op::Touch(v) => {
                if self.store.touch(v, plan.expires).await? {
                    Outcome::Stored(v.clone())
                } else {
                    Outcome::Gone
                }
            }
            Op::Reissue(v) => Outcome::Stored(v.clone()),
        };
        if let Outcome::Stored(v) = &outcome {
            let size = cx.cookie_len(plan, v);
            if size > MAX_COOKIE_LEN {
                tracing::error!(
                    cookie = %cx.attrs.name,
                    size,
                    limit = MAX_COOKIE_LEN,
                    "session cookie too large; not saved"
                );
                if matches!(plan.op, Op::Create(_) | Op::Rotate { .. }) {
                    // Best effort: the record is unreachable without its cookie.
                    let _ = self.store.delete(v).await;
                }
                return Err(Error::CookieTooLarge {
                    size,
                    limit: MAX_COOKIE_LEN,
                });
            }
        }
        Ok(outcome)
    }
}

impl<St: Store> ErasedLayer for LayerConfig<St> {
    fn load<'a>(&'a self, session: &'a Inner) -> StoreFuture<'a, Result<(), Error>> {
        Box::pin(self.load_session(session))
    }

    fn save<'a>(&'a self, session: &'a Inner) -> StoreFuture<'a, Result<(), Error>> {
        Box::pin(self.save_session(session))
    }

    fn attrs(&self, slot: usize) -> &CookieAttrs {
        &self.cookies[slot]
    }

    fn expiry(&self) -> Expiry {
        self.expiry
    }

    fn now(&self) -> std::time::SystemTime {
        self.clock.now()
    }

    fn is_client_side(&self) -> bool {
        self.store.is_client_side()
    }
}

/// The layer behind a [`Session::detached`](crate::Session::detached): the
/// session is loaded from the start and saves nowhere.
pub(crate) struct Detached {
    attrs: CookieAttrs,
}

impl Detached {
    pub(crate) fn new() -> Self {
        Self {
            attrs: CookieAttrs::new("id"),
        }
    }
}

impl ErasedLayer for Detached {
    fn load<'a>(&'a self, _: &'a Inner) -> StoreFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn save<'a>(&'a self, _: &'a Inner) -> StoreFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn attrs(&self, _: usize) -> &CookieAttrs {
        &self.attrs
    }

    fn expiry(&self) -> Expiry {
        Expiry::default()
    }

    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }

    fn is_client_side(&self) -> bool {
        false
    }
}
