//! Where a user is signed in: the "Active sessions" page, its sign-out
//! buttons, and the store plumbing behind them.
//!
//! Listing and ending a user's sessions needs a store that keeps a per-user
//! index (`sessio::store::UserIndex`); the cookie store keeps each session in
//! its browser and has none. [`Devices`] hides that difference from the
//! handlers: it holds a `UserSessions` over the layer's own store when the
//! store has an index, or the reason it cannot list sessions, which the page
//! shows instead of failing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use sessio::store::UserIndex;
use sessio::users::{SessionHandle, UserSession, UserSessions};
use sessio::{Error, Session};

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// What the pages need from `UserSessions`, object-safe so one app type
/// serves every store.
trait Index: Send + Sync {
    fn list<'a>(&'a self, session: &'a Session) -> Boxed<'a, Vec<UserSession>>;
    fn end<'a>(&'a self, user: &'a str, handle: &'a SessionHandle) -> Boxed<'a, bool>;
    fn end_others<'a>(&'a self, session: &'a Session) -> Boxed<'a, usize>;
}

impl<S: UserIndex> Index for UserSessions<S> {
    fn list<'a>(&'a self, session: &'a Session) -> Boxed<'a, Vec<UserSession>> {
        Box::pin(self.list_for(session))
    }

    fn end<'a>(&'a self, user: &'a str, handle: &'a SessionHandle) -> Boxed<'a, bool> {
        Box::pin(UserSessions::end(self, user, handle))
    }

    fn end_others<'a>(&'a self, session: &'a Session) -> Boxed<'a, usize> {
        Box::pin(UserSessions::end_others(self, session))
    }
}

/// A user's sessions in the app's store, or why the store cannot list them.
#[derive(Clone)]
pub(crate) struct Devices(Result<Arc<dyn Index>, &'static str>);

/// Shown where a store without a user index cannot list or end sessions.
pub(crate) const NEEDS_INDEX: &str =
    "Listing sessions needs a server-side store that keeps a user index.";

impl Devices {
    /// Lists and ends sessions through `users`, which must be built over the
    /// very store the session layer uses (`UserSessions::new(store.clone())`).
    pub(crate) fn new<S: UserIndex>(users: UserSessions<S>) -> Self {
        Self(Ok(Arc::new(users)))
    }

    /// For a store without a user index; `why` tells the user which store
    /// this is and why it keeps no list.
    pub(crate) fn unlisted(why: &'static str) -> Self {
        Self(Err(why))
    }

    /// The user's live sessions, the current one marked; `Err` with the
    /// reason when the store keeps no index.
    pub(crate) async fn list(&self, session: &Session) -> Result<Listing, Error> {
        match &self.0 {
            Ok(index) => Ok(Listing::Sessions(index.list(session).await?)),
            Err(why) => Ok(Listing::Unlisted(why)),
        }
    }

    /// Ends `user`'s session `handle`: `Some(false)` when it is not one of
    /// theirs (or already ended), `None` without an index.
    pub(crate) async fn end(
        &self,
        user: &str,
        handle: &SessionHandle,
    ) -> Result<Option<bool>, Error> {
        match &self.0 {
            Ok(index) => Ok(Some(index.end(user, handle).await?)),
            Err(_) => Ok(None),
        }
    }

    /// Ends every other session of the user `session` is bound to: how many
    /// ended, `None` without an index.
    pub(crate) async fn end_others(&self, session: &Session) -> Result<Option<usize>, Error> {
        match &self.0 {
            Ok(index) => Ok(Some(index.end_others(session).await?)),
            Err(_) => Ok(None),
        }
    }
}

/// What the "Active sessions" page shows.
pub(crate) enum Listing {
    Sessions(Vec<UserSession>),
    /// The store keeps no index; the text says which store and why.
    Unlisted(&'static str),
}

/// The longest device summary kept, in characters.
const MAX_DEVICE: usize = 48;

/// A short summary of a `User-Agent` ("Firefox on Linux"): a known browser
/// and system by name, else the first product token, shortened. It comes from
/// the request, so whatever shows it must escape it.
pub(crate) fn device(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.map(str::trim).filter(|ua| !ua.is_empty()) else {
        return "Unknown device".to_owned();
    };
    // Order matters: Edge and Opera say "Chrome", Chrome says "Safari".
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .into_iter()
    .find(|(token, _)| ua.contains(token))
    .map(|(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(token, _)| ua.contains(token))
    .map(|(_, name)| name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        _ => {
            let product = ua.split_whitespace().next().unwrap_or(ua);
            let mut short: String = product.chars().take(MAX_DEVICE).collect();
            if short.len() < product.len() {
                short.push('…');
            }
            short
        }
    }
}

/// "just now", "5 minutes ago", "3 hours ago", "2 days ago".
pub(crate) fn ago(at: Option<SystemTime>, now: SystemTime) -> String {
    let Some(at) = at else {
        return "unknown".to_owned();
    };
    let secs = now.duration_since(at).map_or(0, |d| d.as_secs());
    let (n, unit) = match secs {
        0..60 => return "just now".to_owned(),
        60..3600 => (secs / 60, "minute"),
        3600..86400 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{s} ago")
}
