//! The session's secret and the masked tokens rendered from it.
//!
//! The secret is 32 random bytes kept in the session as base64url text. What
//! a page shows is never the secret: each render draws a fresh 32-byte pad
//! and sends `base64url((secret XOR pad) ‖ pad)`, so no two pages carry the
//! same token and a compressed response (BREACH) has no fixed string to
//! reveal byte by byte.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::SESSION_KEY;
use crate::error::Error;
use crate::session::Session;

/// Bytes in the session's secret, and in each pad.
const SECRET_LEN: usize = 32;

/// Characters of a rendered token: 64 bytes in base64url without padding.
pub(super) const TOKEN_LEN: usize = 86;

/// A fresh masked token for the session, making the session's secret on
/// first use.
///
/// Every call returns a different string (a new random mask); every one of
/// them is accepted by [`CsrfLayer`](super::CsrfLayer) for as long as the
/// session keeps its secret, which lasts until the session is destroyed,
/// cleared or its id is cycled. A token is 86 URL-safe characters, safe in a
/// form field, a header or a URL without escaping. Making the secret is a
/// change to the session (saved on the way out); later calls change nothing.
///
/// # Errors
///
/// [`Error::NotLoaded`] when the session is not loaded (the axum extractor
/// loads it).
///
/// ```
/// # async fn demo(session: sessio::Session) -> Result<(), sessio::Error> {
/// use sessio::csrf::csrf_token;
///
/// let first = csrf_token(&session)?;
/// let second = csrf_token(&session)?;
/// // Two renders differ; the layer accepts both.
/// assert_ne!(first, second);
/// assert_eq!(first.len(), 86);
/// # Ok(()) }
/// ```
pub fn csrf_token(session: &Session) -> Result<String, Error> {
    if let Some(secret) = stored_secret(session)? {
        return Ok(mask(&secret));
    }
    // SECURITY J46: a visitor without a session gets the secret in a signed
    // companion cookie; rendering a login form stores nothing.
    if session.is_anonymous()? {
        let secret = session.anon_secret().unwrap_or_else(|| {
            let secret = random_secret();
            session.make_anon_secret(secret);
            secret
        });
        return Ok(mask(&secret));
    }
    let secret = random_secret();
    session.set(SESSION_KEY, URL_SAFE_NO_PAD.encode(secret))?;
    Ok(mask(&secret))
}

fn random_secret() -> [u8; SECRET_LEN] {
    let mut secret = [0u8; SECRET_LEN];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// The secret a submitted token must match: the session's, or for a visitor
/// without a stored session the companion cookie's.
pub(super) fn expected_secret(session: &Session) -> Result<Option<[u8; SECRET_LEN]>, Error> {
    match stored_secret(session)? {
        Some(secret) => Ok(Some(secret)),
        None if session.is_anonymous()? => Ok(session.anon_secret()),
        None => Ok(None),
    }
}

/// The secret kept in a loaded session, if it holds a well-formed one.
pub(super) fn stored_secret(session: &Session) -> Result<Option<[u8; SECRET_LEN]>, Error> {
    // A value of the wrong shape under the reserved key is treated as absent,
    // so `csrf_token` replaces it instead of failing forever.
    let text = match session.get::<String>(SESSION_KEY) {
        Ok(text) => text,
        Err(Error::Deserialize(_)) => None,
        Err(err) => return Err(err),
    };
    Ok(text.and_then(|t| decode_exact::<SECRET_LEN>(t.as_bytes())))
}

/// `base64url((secret XOR pad) ‖ pad)` with a fresh random pad.
fn mask(secret: &[u8; SECRET_LEN]) -> String {
    let mut buf = [0u8; 2 * SECRET_LEN];
    let (masked, pad) = buf.split_at_mut(SECRET_LEN);
    rand::rng().fill_bytes(pad);
    for ((m, s), p) in masked.iter_mut().zip(secret).zip(pad.iter()) {
        *m = s ^ p;
    }
    URL_SAFE_NO_PAD.encode(buf)
}

/// The secret a submitted token was masked from; `None` when it is not a
/// rendered token (wrong length, not base64url, or the bare secret).
pub(super) fn unmask(given: &[u8]) -> Option<[u8; SECRET_LEN]> {
    if given.len() != TOKEN_LEN {
        return None;
    }
    let buf = decode_exact::<{ 2 * SECRET_LEN }>(given)?;
    let (masked, pad) = buf.split_at(SECRET_LEN);
    let mut secret = [0u8; SECRET_LEN];
    for ((s, m), p) in secret.iter_mut().zip(masked).zip(pad) {
        *s = m ^ p;
    }
    Some(secret)
}

/// Constant-time equality of two secrets.
pub(super) fn secrets_match(expected: &[u8; SECRET_LEN], given: &[u8; SECRET_LEN]) -> bool {
    expected.ct_eq(given).into()
}

/// Canonical base64url without padding that decodes to exactly `N` bytes.
fn decode_exact<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    // Room for one byte more than expected, so a longer input fails here
    // instead of being cut short.
    let mut buf = [0u8; 65];
    let n = URL_SAFE_NO_PAD.decode_slice(text, &mut buf[..N + 1]).ok()?;
    (n == N).then(|| buf[..N].try_into().expect("N bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> [u8; SECRET_LEN] {
        std::array::from_fn(|i| (i * 37 + 11) as u8)
    }

    // SECURITY J51: a fresh pad per render, and every render unmasks.
    #[test]
    fn masking_round_trips_with_a_fresh_pad_each_time() {
        let s = secret();
        let (a, b) = (mask(&s), mask(&s));
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_LEN);
        assert_eq!(unmask(a.as_bytes()), Some(s));
        assert_eq!(unmask(b.as_bytes()), Some(s));
    }

    // SECURITY J51: the bare secret and altered tokens do not unmask.
    #[test]
    fn anything_but_a_rendered_token_does_not_unmask() {
        let s = secret();
        let token = mask(&s);
        assert_eq!(unmask(URL_SAFE_NO_PAD.encode(s).as_bytes()), None);
        assert_eq!(unmask(&token.as_bytes()[..TOKEN_LEN - 1]), None);
        assert_eq!(unmask(format!("{token}A").as_bytes()), None);
        assert_eq!(unmask(token.replace(|_| true, "=").as_bytes()), None);
        assert_eq!(unmask(b""), None);
        // The last character carries 4 spare bits, always zero in a rendered
        // token: the same bytes spelt with one set are refused.
        let mut odd = token.into_bytes();
        *odd.last_mut().unwrap() += 1;
        assert_eq!(unmask(&odd), None);
    }

    #[test]
    fn secrets_match_only_when_equal() {
        let s = secret();
        let mut other = s;
        other[31] ^= 1;
        assert!(secrets_match(&s, &s));
        assert!(!secrets_match(&s, &other));
    }
}
