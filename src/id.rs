//! Session ids: 128 bits from a CSPRNG, base64url without padding (22 characters).

use std::fmt;

use base64::Engine as _;
use rand::RngCore;

/// What mints ids in the stores: the CSPRNG by default, a fixed sequence in
/// tests that force collisions.
#[cfg(any(
    feature = "memory-store",
    feature = "redis",
    feature = "postgres",
    feature = "sqlite"
))]
pub(crate) type IdGenerator = dyn Fn() -> Id + Send + Sync;

/// Length of an encoded id, in characters.
pub(crate) const ID_LEN: usize = 22;

/// A session id, as minted by a server-side store.
///
/// `Debug` is redacted: ids are bearer secrets and never belong in logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Id(String);

impl Id {
    /// A new id: 16 bytes from the thread-local CSPRNG (ChaCha, seeded and
    /// periodically reseeded from the operating system).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses an id, accepting only exactly 22 base64url characters, so empty,
    /// over-long or odd-character values never reach a store.
    pub fn parse(s: &str) -> Option<Self> {
        is_valid(s).then(|| Self(s.to_owned()))
    }

    /// The id as text, for a store key or a cookie value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Id(..)")
    }
}

/// `true` for exactly [`ID_LEN`] characters of the base64url alphabet.
pub(crate) fn is_valid(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| BASE64URL[usize::from(b)])
}

/// The base64url alphabet as a table: checked on every store access.
static BASE64URL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    // SECURITY A1: 1e6 ids are unique, of fixed length and alphabet.
    #[test]
    fn a_million_ids_are_unique_fixed_length_and_alphabet() {
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let id = Id::generate();
            assert!(is_valid(id.as_str()));
            assert!(seen.insert(id.0));
        }
    }

    // SECURITY A4: malformed ids are refused before any store sees them.
    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "short",
            "aaaaaaaaaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaaaaaaa*",
            "aaaaaaaaaaaaaaaaaaaa\0a",
            "aaaaaaaaaaaaaaaaaaaaé",
            "aaaaaaaaaaaaaaaaaaaa a",
        ] {
            assert!(Id::parse(bad).is_none(), "{bad:?}");
        }
        assert!(Id::parse("AAAAAAAAAAAAAAAAAAAA-_").is_some());
    }

    #[test]
    fn the_alphabet_is_exactly_base64url() {
        for b in 0..=255u8 {
            let id = String::from_utf8(vec![b'A'; ID_LEN - 1])
                .map(|mut s| {
                    s.push(char::from(b));
                    s
                })
                .unwrap();
            let expected = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(is_valid(&id), expected && b.is_ascii(), "{b}");
        }
    }

    // SECURITY H36: Debug of an id is redacted.
    #[test]
    fn debug_is_redacted() {
        let id = Id::generate();
        assert_eq!(format!("{id:?}"), "Id(..)");
    }
}
