//! Reading the session cookie from the request.

use http::header::COOKIE;
use http::HeaderMap;

use crate::clock::unix_secs;
use crate::codec::Envelope;
use crate::persist::LayerConfig;
use crate::state::{Issued, State};

/// How far in the future an issue time may be before it is refused, for
/// clocks that differ between servers.
const CLOCK_SKEW_SECS: u64 = 300;

/// At most this many cookies of one name are verified per request: a few
/// duplicates happen (a cookie under another path, one planted from a sibling
/// subdomain), a hundred are an attack on the CPU (SECURITY J47).
const MAX_VERIFIED: usize = 3;

/// The state of session `slot` for this request: the cookies of that name,
/// across every `Cookie` header line, that verify and have not expired, in
/// order (SECURITY D20, D21, D22); loading takes the first with a live
/// record. Rejections are one WARN event per request, without the values.
pub(super) fn read<St>(config: &LayerConfig<St>, slot: usize, headers: &HeaderMap) -> State {
    let name = &config.cookies[slot].name;
    // The clock is read only once a cookie of this name is there to check:
    // a request without one (most first visits, every asset) needs no time.
    let mut now = None;
    // The first verified cookie apart: one (the usual case) needs no Vec.
    let mut first = None;
    let mut more = Vec::new();
    let (mut tried, mut rejected, mut skipped) = (0usize, 0usize, 0usize);
    let mut reason = "";
    #[cfg(feature = "csrf")]
    let companion = config.cookies[slot].companion_name();
    #[cfg(feature = "csrf")]
    let mut anon = None;
    for line in headers.get_all(COOKIE) {
        for (n, v) in pairs(line.as_bytes()) {
            #[cfg(feature = "csrf")]
            if n == companion.as_bytes() && anon.is_none() {
                anon = companion_secret(config, companion, v);
                continue;
            }
            if n != name.as_bytes() {
                continue;
            }
            if tried == MAX_VERIFIED {
                skipped += 1;
                continue;
            }
            tried += 1;
            let opened = match config.codec.decode(config.protection, name, v) {
                Ok(o) => o,
                Err(e) => {
                    rejected += 1;
                    reason = e.reason();
                    continue;
                }
            };
            let now = *now.get_or_insert_with(|| unix_secs(config.clock.now()));
            if let Err(why) =
                check_times(&opened.envelope, now, config.absolute.map(|d| d.as_secs()))
            {
                rejected += 1;
                reason = why;
                continue;
            }
            let Ok(value) = String::from_utf8(opened.value) else {
                rejected += 1;
                reason = "value not UTF-8";
                continue;
            };
            let issued = Issued {
                value,
                envelope: opened.envelope,
                reissue: opened.key_index > 0,
            };
            if first.is_none() {
                first = Some(issued);
            } else {
                more.push(issued);
            }
        }
    }
    if rejected + skipped > 0 {
        tracing::warn!(
            cookie = %name,
            rejected,
            skipped,
            reason,
            "rejected session cookie"
        );
    }
    #[allow(unused_mut)]
    let mut state = State::from_cookies(first, more, rejected + skipped > 0);
    #[cfg(feature = "csrf")]
    if let Some(secret) = anon {
        // A `__Host-` cookie cannot be planted by a sibling subdomain.
        let host_only = companion
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("__Host-"));
        state.anon_from_cookie(secret, host_only);
    }
    state
}

/// The CSRF secret in a companion cookie, if it verifies and has not expired.
#[cfg(feature = "csrf")]
fn companion_secret<St>(config: &LayerConfig<St>, name: &str, value: &[u8]) -> Option<[u8; 32]> {
    let opened = config
        .codec
        .decode(crate::codec::Protection::Signed, name, value)
        .ok()?;
    let now = unix_secs(config.clock.now());
    check_times(&opened.envelope, now, None).ok()?;
    opened.value.try_into().ok()
}

/// SECURITY C13 / E25: the times sealed in the cookie decide, not the browser.
fn check_times(env: &Envelope, now: u64, absolute: Option<u64>) -> Result<(), &'static str> {
    if env.expires <= now {
        return Err("expired");
    }
    if env.issued > now.saturating_add(CLOCK_SKEW_SECS) || env.created > env.issued {
        return Err("issued in the future");
    }
    if absolute.is_some_and(|abs| env.created.saturating_add(abs) <= now) {
        return Err("absolute timeout reached");
    }
    Ok(())
}

/// `name=value` pairs of one `Cookie` header line. Pieces without `=` are
/// skipped, so one malformed cookie hides none of the others.
pub(crate) fn pairs(line: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    // memchr finds each `;` a word at a time, not byte by byte.
    let mut start = 0;
    let ends = memchr::memchr_iter(b';', line).chain(std::iter::once(line.len()));
    ends.map(move |end| {
        let part = &line[start..end];
        start = end + 1;
        part
    })
    .filter_map(|part| {
        let part = part.trim_ascii();
        let eq = part.iter().position(|&b| b == b'=')?;
        let (name, value) = (part[..eq].trim_ascii(), part[eq + 1..].trim_ascii());
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        Some((name, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_skip_malformed_pieces() {
        let got: Vec<_> = pairs(b"a=1; junk; ;=; b = \"2\" ;c=").collect();
        assert_eq!(
            got,
            vec![
                (&b"a"[..], &b"1"[..]),
                (&b""[..], &b""[..]),
                (&b"b"[..], &b"2"[..]),
                (&b"c"[..], &b""[..])
            ]
        );
    }

    #[test]
    fn times_are_checked() {
        let env = |created, issued, expires| Envelope {
            created,
            issued,
            expires,
            settings: None,
        };
        assert!(check_times(&env(10, 20, 100), 50, None).is_ok());
        assert_eq!(check_times(&env(10, 20, 50), 50, None), Err("expired"));
        assert_eq!(
            check_times(&env(10, 1000, 2000), 50, None),
            Err("issued in the future")
        );
        assert_eq!(
            check_times(&env(10, 20, 100), 50, Some(40)),
            Err("absolute timeout reached")
        );
    }
}
