//! A session's own settings, kept with it from request to request.
//!
//! What [`Session::set_expiry`](crate::Session::set_expiry) and
//! [`Session::set_options`](crate::Session::set_options) decide belongs to the
//! session, not to one response: the settings travel inside the session's
//! cookie envelope, which is signed or sealed, so a client cannot change them,
//! and every later request plans with them (the next write keeps a
//! "remember me", a removal cookie finds a cookie issued under `Path=/app`).
//!
//! Binary layout (all integers big-endian), read only after the envelope
//! verified:
//!
//! ```text
//! flags u8        1 expiry, 2 path, 4 domain, 8 secure, 16 http-only,
//!                 32 same-site, 64 partitioned
//! expiry          kind u8 ‖ secs u64 (see `Expiry::to_parts`)
//! path            len u16 ‖ bytes
//! domain          0 (none) | 1 ‖ len u16 ‖ bytes
//! secure, http-only, partitioned   u8 0 | 1
//! same-site       u8 0 Strict | 1 Lax | 2 None
//! ```

use crate::config::{CookieOptions, SameSite};
use crate::expiry::Expiry;

const EXPIRY: u8 = 1;
const PATH: u8 = 2;
const DOMAIN: u8 = 4;
const SECURE: u8 = 8;
const HTTP_ONLY: u8 = 16;
const SAME_SITE: u8 = 32;
const PARTITIONED: u8 = 64;

/// A session's own expiry and cookie attribute overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) expiry: Option<Expiry>,
    /// Attribute overrides; `max_age` is never set here (it becomes `expiry`).
    pub(crate) cookie: CookieOptions,
}

impl Settings {
    /// `true` when nothing is overridden.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `true` when these settings put the cookie somewhere else than
    /// `other` does (another `Path` or `Domain`), so a cookie issued under
    /// one is not replaced by a cookie issued under the other.
    pub(crate) fn same_place(&self, other: &Self) -> bool {
        self.cookie.path == other.cookie.path && self.cookie.domain == other.cookie.domain
    }

    /// Appends the binary form to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let c = &self.cookie;
        let mut flags = 0;
        for (set, bit) in [
            (self.expiry.is_some(), EXPIRY),
            (c.path.is_some(), PATH),
            (c.domain.is_some(), DOMAIN),
            (c.secure.is_some(), SECURE),
            (c.http_only.is_some(), HTTP_ONLY),
            (c.same_site.is_some(), SAME_SITE),
            (c.partitioned.is_some(), PARTITIONED),
        ] {
            if set {
                flags |= bit;
            }
        }
        out.push(flags);
        if let Some(e) = self.expiry {
            let (kind, secs) = e.to_parts();
            out.push(kind);
            out.extend_from_slice(&secs.to_be_bytes());
        }
        if let Some(p) = &c.path {
            text(out, p);
        }
        if let Some(d) = &c.domain {
            match d {
                None => out.push(0),
                Some(d) => {
                    out.push(1);
                    text(out, d);
                }
            }
        }
        for b in [c.secure, c.http_only].into_iter().flatten() {
            out.push(u8::from(b));
        }
        if let Some(s) = c.same_site {
            out.push(match s {
                SameSite::Strict => 0,
                SameSite::Lax => 1,
                SameSite::None => 2,
            });
        }
        if let Some(p) = c.partitioned {
            out.push(u8::from(p));
        }
    }

    /// Reads what [`encode`](Self::encode) wrote; `None` for anything else.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let flags = r.byte()?;
        let mut s = Self::default();
        if flags & EXPIRY != 0 {
            let kind = r.byte()?;
            let secs = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
            s.expiry = Some(Expiry::from_parts(kind, secs)?);
        }
        if flags & PATH != 0 {
            s.cookie.path = Some(r.text()?);
        }
        if flags & DOMAIN != 0 {
            s.cookie.domain = Some(match r.byte()? {
                0 => None,
                1 => Some(r.text()?),
                _ => return None,
            });
        }
        if flags & SECURE != 0 {
            s.cookie.secure = Some(r.flag()?);
        }
        if flags & HTTP_ONLY != 0 {
            s.cookie.http_only = Some(r.flag()?);
        }
        if flags & SAME_SITE != 0 {
            s.cookie.same_site = Some(match r.byte()? {
                0 => SameSite::Strict,
                1 => SameSite::Lax,
                2 => SameSite::None,
                _ => return None,
            });
        }
        if flags & PARTITIONED != 0 {
            s.cookie.partitioned = Some(r.flag()?);
        }
        (r.0.is_empty() && flags < 128).then_some(s)
    }
}

fn text(out: &mut Vec<u8>, s: &str) {
    // Attribute values are checked to be short header text when set; the
    // length is clamped anyway so the layout can never be misread.
    let b = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn flag(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    fn text(&mut self) -> Option<String> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?);
        let b = self.take(usize::from(len))?;
        String::from_utf8(b.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn settings_round_trip() {
        let all = Settings {
            expiry: Some(Expiry::AtTime(UNIX_EPOCH + Duration::from_secs(77))),
            cookie: CookieOptions::new()
                .with_path("/app")
                .with_domain(Some("example.com"))
                .with_secure(false)
                .with_http_only(true)
                .with_same_site(SameSite::None)
                .with_partitioned(true),
        };
        let cases = [
            Settings::default(),
            all,
            Settings {
                expiry: Some(Expiry::OnInactivity(Duration::from_millis(1500))),
                cookie: CookieOptions::new().with_domain(None),
            },
        ];
        for s in cases {
            let mut out = Vec::new();
            s.encode(&mut out);
            let back = Settings::decode(&out).unwrap();
            match s.expiry {
                // Rounded up to whole seconds.
                Some(Expiry::OnInactivity(_)) => {
                    assert_eq!(
                        back.expiry,
                        Some(Expiry::OnInactivity(Duration::from_secs(2)))
                    );
                    assert_eq!(back.cookie, s.cookie);
                }
                _ => assert_eq!(back, s),
            }
            // Every truncation and any trailing byte is refused.
            for n in 0..out.len() {
                assert_eq!(Settings::decode(&out[..n]), None, "{n}");
            }
            out.push(0);
            assert_eq!(Settings::decode(&out), None);
        }
    }
}
