//! When sessions expire, and when a quiet session is extended.

use std::time::{Duration, SystemTime};

use crate::clock::unix_secs;
use crate::error::ConfigError;

/// How long the server keeps an idle session by default: 24 hours.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest lifetime a session gets: 400 days, the cap browsers put on a
/// cookie's lifetime (RFC 6265bis). Longer windows, and `AtTime` moments
/// further away, are shortened to it, for the cookie and the record alike.
pub const MAX_LIFETIME: Duration = Duration::from_secs(400 * 24 * 60 * 60);

/// When a session expires.
///
/// `BrowserSession` and `OnInactivity` are *rolling*: a request that reads or
/// writes the session after more than half the window has passed extends it
/// (a read refreshes the store's TTL without rewriting the data) and
/// re-issues its cookie with the new expiry. Before that, a write to a
/// server-side store keeps the expiry the cookie carries, for the record's
/// TTL too, and sends no `Set-Cookie`: the cookie the browser holds still
/// points at the record. So a session lives between half a window and a
/// whole window after its last request. A write through the cookie store,
/// whose cookie is the data, always re-issues the cookie and extends it.
/// `AtTime` never moves. An absolute timeout set on the layer caps all three.
///
/// A session's own expiry ([`Session::set_expiry`](crate::Session::set_expiry),
/// or a `max_age` in [`Session::set_options`](crate::Session::set_options))
/// is kept with the session (sealed in its cookie) and holds on every later
/// request until it is changed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expiry {
    /// A cookie without `Max-Age`, dropped when the browser closes; the server
    /// forgets the session after `idle` without activity.
    BrowserSession {
        /// The server-side inactivity window.
        idle: Duration,
    },
    /// Cookie and record live for this long after the session was last
    /// extended (see above: at most every half window).
    OnInactivity(Duration),
    /// Cookie and record expire at this moment.
    AtTime(SystemTime),
}

impl Default for Expiry {
    /// A browser-session cookie, with the record kept for 24 hours of inactivity.
    fn default() -> Self {
        Self::BrowserSession { idle: DEFAULT_IDLE }
    }
}

impl Expiry {
    /// The rolling window, if this expiry is rolling, at most [`MAX_LIFETIME`].
    pub fn window(self) -> Option<Duration> {
        match self {
            Self::BrowserSession { idle } | Self::OnInactivity(idle) => {
                Some(idle.min(MAX_LIFETIME))
            }
            Self::AtTime(_) => None,
        }
    }

    /// When a session active at `now` expires under this policy, in unix
    /// seconds: never more than [`MAX_LIFETIME`] away, never a panic.
    pub(crate) fn deadline(self, now: u64) -> u64 {
        let cap = now.saturating_add(MAX_LIFETIME.as_secs());
        match (self, self.window()) {
            (_, Some(window)) => now.saturating_add(window.as_secs()),
            (Self::AtTime(at), None) => unix_secs(at).min(cap),
            _ => cap,
        }
    }

    /// `true` when the cookie carries `Max-Age` (it outlives the browser).
    pub(crate) fn persistent(self) -> bool {
        !matches!(self, Self::BrowserSession { .. })
    }

    /// `true` when a rolling session whose record expires at `expires` should
    /// be extended at `now`: more than half its window has passed.
    pub(crate) fn half_gone(self, expires: u64, now: u64) -> bool {
        self.window()
            .is_some_and(|w| expires.saturating_sub(now).saturating_mul(2) < w.as_secs())
    }

    /// `Max-Age` for a cookie whose session expires at `deadline`, seen at
    /// `now`: none for a browser-session cookie.
    pub(crate) fn max_age(self, deadline: u64, now: u64) -> Option<u64> {
        self.persistent().then(|| deadline.saturating_sub(now))
    }

    /// The policy as a kind byte and whole seconds (a window, rounded up and
    /// capped, or a moment), as the cookie envelope keeps it.
    pub(crate) fn to_parts(self) -> (u8, u64) {
        let secs = |d: Duration| {
            let d = d.min(MAX_LIFETIME);
            d.as_secs() + u64::from(d.subsec_nanos() > 0)
        };
        match self {
            Self::BrowserSession { idle } => (0, secs(idle)),
            Self::OnInactivity(d) => (1, secs(d)),
            Self::AtTime(t) => (2, unix_secs(t)),
        }
    }

    /// The policy [`to_parts`](Self::to_parts) made; `None` for an unknown kind.
    pub(crate) fn from_parts(kind: u8, secs: u64) -> Option<Self> {
        Some(match kind {
            0 => Self::BrowserSession {
                idle: Duration::from_secs(secs),
            },
            1 => Self::OnInactivity(Duration::from_secs(secs)),
            2 => Self::AtTime(crate::clock::from_unix_secs(secs)),
            _ => return None,
        })
    }

    pub(crate) fn validate(self) -> Result<(), ConfigError> {
        match self.window() {
            Some(d) if d.is_zero() => Err(ConfigError::ZeroDuration("the expiry window")),
            _ => Ok(()),
        }
    }
}

/// When a session that is only read (or not even extracted) gets its expiry
/// extended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refresh {
    /// Extend a rolling session when a request reads it after more than half
    /// its window has passed; a request that never extracts the session
    /// extends nothing. One store write per half window at most. The default.
    #[default]
    WhenHalfGone,
    /// Extend the session on every request that carries its cookie, whether
    /// or not the handler extracts it (tower-sessions' `with_always_save`,
    /// actix's `TtlExtensionPolicy::OnEveryRequest`): one store write (a TTL
    /// refresh) and a re-issued cookie per request.
    OnEveryRequest,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    // A window or moment past any real lifetime is shortened, never a panic.
    #[test]
    fn huge_windows_are_capped_not_overflowed() {
        let cap = MAX_LIFETIME.as_secs();
        for e in [
            Expiry::OnInactivity(Duration::MAX),
            Expiry::BrowserSession {
                idle: Duration::MAX,
            },
        ] {
            assert_eq!(e.deadline(1_000), 1_000 + cap);
            assert_eq!(e.deadline(u64::MAX), u64::MAX);
            assert_eq!(e.window(), Some(MAX_LIFETIME));
        }
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 2);
        assert_eq!(Expiry::AtTime(far).deadline(1_000), 1_000 + cap);
        let past = UNIX_EPOCH + Duration::from_secs(10);
        assert_eq!(Expiry::AtTime(past).deadline(1_000), 10);
    }

    #[test]
    fn half_gone_is_past_half_the_window() {
        let e = Expiry::OnInactivity(Duration::from_secs(100));
        assert!(!e.half_gone(160, 100));
        assert!(e.half_gone(149, 100));
        assert!(!Expiry::AtTime(UNIX_EPOCH).half_gone(0, 100));
    }
}
