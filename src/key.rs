//! Secret keys and key rotation.
//!
//! A [`Key`] holds at least 32 bytes of secret. Two sub-keys are derived from it
//! with HKDF-SHA256: one signs cookie values (HMAC-SHA256), the other encrypts them
//! (AES-256-GCM), so the same secret never serves both purposes.
//!
//! ```
//! use sessio::Key;
//!
//! // From configuration (hex or base64 of at least 32 bytes):
//! let key = Key::parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")?;
//! // Or random, for development (sessions will not survive a restart):
//! let other = Key::generate();
//! assert_ne!(key, other);
//! assert_eq!(format!("{key:?}"), "Key(..)");
//! # Ok::<(), sessio::ConfigError>(())
//! ```

use std::fmt;

use base64::Engine as _;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::ConfigError;

/// The shortest secret a [`Key`] accepts, in bytes.
pub const MIN_KEY_LEN: usize = 32;

const SIGNING_INFO: &[u8] = b"sessio v1 cookie signing";
const ENCRYPTION_INFO: &[u8] = b"sessio v1 cookie encryption";

/// A secret key for signing and encrypting session cookies.
///
/// `Debug` prints `Key(..)`; equality is constant-time.
#[derive(Clone)]
pub struct Key {
    signing: [u8; 32],
    encryption: [u8; 32],
}

impl Key {
    /// A new random key from the thread-local CSPRNG (seeded from the OS).
    pub fn generate() -> Self {
        let mut master = [0u8; 64];
        rand::rng().fill_bytes(&mut master);
        Self::derive(&master)
    }

    /// A key from raw secret bytes; fails when there are fewer than 32.
    pub fn from_bytes(master: &[u8]) -> Result<Self, ConfigError> {
        if master.len() < MIN_KEY_LEN {
            return Err(ConfigError::KeyTooShort(master.len()));
        }
        Ok(Self::derive(master))
    }

    /// A key from a hex or base64 (standard or URL-safe, padded or not) string of
    /// at least 32 bytes, as kept in an environment variable.
    pub fn parse(encoded: &str) -> Result<Self, ConfigError> {
        let s = encoded.trim();
        // A string that is hex and long enough for a hex key is taken as hex;
        // random base64 of that length is practically never all hex digits.
        let hex = (s.len() >= 2 * MIN_KEY_LEN)
            .then(|| decode_hex(s))
            .flatten();
        let bytes = hex
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .or_else(|| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(s)
                    .ok()
            })
            .or_else(|| base64::engine::general_purpose::URL_SAFE.decode(s).ok())
            .or_else(|| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(s)
                    .ok()
            })
            .ok_or(ConfigError::KeyEncoding)?;
        Self::from_bytes(&bytes)
    }

    fn derive(master: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(None, master);
        let mut signing = [0u8; 32];
        let mut encryption = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte output limit.
        hk.expand(SIGNING_INFO, &mut signing)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hk.expand(ENCRYPTION_INFO, &mut encryption)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self {
            signing,
            encryption,
        }
    }

    pub(crate) fn signing(&self) -> &[u8; 32] {
        &self.signing
    }

    pub(crate) fn encryption(&self) -> &[u8; 32] {
        &self.encryption
    }
}

impl TryFrom<&[u8]> for Key {
    type Error = ConfigError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Self::from_bytes(bytes)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        (self.signing.ct_eq(&other.signing) & self.encryption.ct_eq(&other.encryption)).into()
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The current key and the fallback keys that still verify.
#[derive(Clone, Debug)]
pub(crate) struct KeyRing {
    keys: Vec<Key>,
}

impl KeyRing {
    pub(crate) fn new(current: Key) -> Self {
        Self {
            keys: vec![current],
        }
    }

    pub(crate) fn set_fallbacks(&mut self, fallbacks: impl IntoIterator<Item = Key>) {
        self.keys.truncate(1);
        self.keys.extend(fallbacks);
    }

    /// All keys, current first; a cookie verified by index > 0 is re-issued.
    pub(crate) fn all(&self) -> &[Key] {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SECURITY C17: short keys are refused.
    #[test]
    fn short_key_is_refused() {
        assert_eq!(
            Key::from_bytes(&[7; 31]).unwrap_err(),
            ConfigError::KeyTooShort(31)
        );
        assert!(Key::from_bytes(&[7; 32]).is_ok());
        assert_eq!(
            Key::parse(&base64::engine::general_purpose::STANDARD.encode([1u8; 31])).unwrap_err(),
            ConfigError::KeyTooShort(31)
        );
        assert_eq!(
            Key::parse("not a key!").unwrap_err(),
            ConfigError::KeyEncoding
        );
    }

    // SECURITY C17: sub-keys come from HKDF and differ from each other and the secret.
    #[test]
    fn subkeys_are_distinct_and_deterministic() {
        let a = Key::from_bytes(&[1; 32]).unwrap();
        let b = Key::from_bytes(&[1; 32]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.signing(), a.encryption());
        assert_ne!(a.signing(), &[1; 32]);
        assert_ne!(a, Key::from_bytes(&[2; 32]).unwrap());
    }

    // SECURITY C17 / H36: Debug is redacted.
    #[test]
    fn debug_is_redacted() {
        let k = Key::from_bytes(&[0xAB; 32]).unwrap();
        let dbg = format!("{k:?} {:?}", KeyRing::new(k.clone()));
        assert!(!dbg.to_lowercase().contains("ab, "), "{dbg}");
        assert!(!dbg.contains("171"), "{dbg}");
        assert_eq!(format!("{k:?}"), "Key(..)");
    }

    #[test]
    fn parse_accepts_hex_and_base64() {
        let hex = "00".repeat(32);
        let b64 = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0u8; 40]);
        assert_eq!(
            Key::parse(&hex).unwrap(),
            Key::from_bytes(&[0; 32]).unwrap()
        );
        assert_eq!(
            Key::parse(&b64).unwrap(),
            Key::from_bytes(&[0; 32]).unwrap()
        );
        assert_eq!(
            Key::parse(&url).unwrap(),
            Key::from_bytes(&[0; 40]).unwrap()
        );
    }
}
