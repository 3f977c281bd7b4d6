//! Secret keys and key rotation.
//!
//! A [`Key`] holds at least 32 bytes of secret. Two sub-keys are derived from it
//! with HKDF-SHA256: one signs cookie values (HMAC-SHA256), the other encrypts them
//! (AES-256-GCM), so the same secret never serves both purposes.
//!
//! ```
//! use sessio::Key;
//!
//! // From configuration (hex of 32 bytes or more, or base64 of 32 or 64 bytes),
//! // made with `openssl rand -hex 32`:
//! let key = Key::parse("dd1f8828ab7031ae4ff59b87c164280cc83cd3828673633e515092a8e72b917d")?;
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
use zeroize::{Zeroize, Zeroizing};

use crate::error::ConfigError;

/// The shortest secret a [`Key`] accepts, in bytes.
pub const MIN_KEY_LEN: usize = 32;

const SIGNING_INFO: &[u8] = b"sessio v1 cookie signing";
const ENCRYPTION_INFO: &[u8] = b"sessio v1 cookie encryption";

/// A secret key for signing and encrypting session cookies.
///
/// `Debug` prints `Key(..)`; equality is constant-time; the derived sub-keys
/// are overwritten with zeros when a `Key` is dropped, and so are the
/// buffers [`Key::generate`] and [`Key::parse`] hold the secret in.
#[derive(Clone)]
pub struct Key {
    signing: [u8; 32],
    encryption: [u8; 32],
}

impl Key {
    /// A new random key from the thread-local CSPRNG (seeded from the OS).
    pub fn generate() -> Self {
        let mut master = Zeroizing::new([0u8; 64]);
        rand::rng().fill_bytes(master.as_mut());
        Self::derive(master.as_ref())
    }

    /// A key from raw secret bytes; fails when there are fewer than 32.
    ///
    /// The bytes are used as they are: they must come from a CSPRNG (or a
    /// secret manager that got them from one). No entropy check is made here;
    /// [`Key::parse`], which reads keys typed or pasted by people, makes one.
    /// The caller's buffer is not zeroized; the key's own copies are.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyTooShort`] for fewer than 32 bytes.
    pub fn from_bytes(master: &[u8]) -> Result<Self, ConfigError> {
        if master.len() < MIN_KEY_LEN {
            return Err(ConfigError::KeyTooShort(master.len()));
        }
        Ok(Self::derive(master))
    }

    /// A key from a string kept in configuration, such as an environment
    /// variable; surrounding whitespace is ignored. Make one with
    /// `openssl rand -hex 32`.
    ///
    /// Accepted encodings:
    /// - hex: an even number of at least 64 hex digits (32 bytes or more);
    /// - base64, standard or URL-safe, padded or not, that decodes to exactly
    ///   32 or 64 bytes.
    ///
    /// Other lengths fail with [`ConfigError::KeyTooShort`] (under 32 bytes)
    /// or [`ConfigError::KeyEncoding`]. Input that is plainly not random fails
    /// with [`ConfigError::WeakKey`]:
    /// - the decoded key holds fewer than 16 distinct byte values (`"0" * 64`,
    ///   `"ab" * 32`, a repeated word; 32 random bytes hold about 30);
    /// - the decoded key is a shorter block repeated (`"0123456789abcdef" * 4`);
    /// - base64 text without both lower- and upper-case letters (a word or a
    ///   passphrase; random base64 of 43 characters lacks one of the two about
    ///   once in three billion).
    ///
    /// ```
    /// use sessio::{ConfigError, Key};
    ///
    /// let key = Key::parse("8d717f2cb8cf2faef2414c70c6bdfb6c1d2db08b3499da7badd6fc6e74eab66c")?;
    /// assert_eq!(Key::parse("  jXF/LLjPL67yQUxwxr37bB0tsIs0mdp7rdb8bnTqtmw=\n")?, key);
    ///
    /// assert_eq!(Key::parse(&"0".repeat(64)), Err(ConfigError::WeakKey));
    /// assert_eq!(Key::parse(&"passwordpassword".repeat(3)), Err(ConfigError::WeakKey));
    /// assert!(ConfigError::WeakKey.to_string().contains("openssl rand -hex 32"));
    /// # Ok::<(), ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyEncoding`] for text that is neither hex nor base64,
    /// [`ConfigError::KeyTooShort`] for fewer than 32 bytes, and
    /// [`ConfigError::WeakKey`] for low-entropy input.
    pub fn parse(encoded: &str) -> Result<Self, ConfigError> {
        let s = encoded.trim();
        // A string that is hex and long enough for a hex key is taken as hex;
        // random base64 of that length is practically never all hex digits.
        let bytes = match (s.len() >= 2 * MIN_KEY_LEN)
            .then(|| decode_hex(s))
            .flatten()
        {
            Some(bytes) => bytes,
            None => {
                let bytes = decode_base64(s).ok_or(ConfigError::KeyEncoding)?;
                if bytes.len() < MIN_KEY_LEN {
                    return Err(ConfigError::KeyTooShort(bytes.len()));
                }
                if !mixes_letter_cases(s) {
                    return Err(ConfigError::WeakKey);
                }
                if !matches!(bytes.len(), 32 | 64) {
                    return Err(ConfigError::KeyEncoding);
                }
                bytes
            }
        };
        if looks_weak(&bytes) {
            return Err(ConfigError::WeakKey);
        }
        Self::from_bytes(&bytes)
    }

    fn derive(master: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(None, master);
        let mut key = Self {
            signing: [0u8; 32],
            encryption: [0u8; 32],
        };
        // 32 bytes is far below HKDF-SHA256's 8160-byte output limit.
        hk.expand(SIGNING_INFO, &mut key.signing)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hk.expand(ENCRYPTION_INFO, &mut key.encryption)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        key
    }

    pub(crate) fn signing(&self) -> &[u8; 32] {
        &self.signing
    }

    pub(crate) fn encryption(&self) -> &[u8; 32] {
        &self.encryption
    }
}

impl Key {
    fn wipe(&mut self) {
        self.signing.zeroize();
        self.encryption.zeroize();
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.wipe();
        #[cfg(test)]
        tests::note_what_drop_left(self);
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

fn decode_hex(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 2));
    for i in (0..s.len()).step_by(2) {
        out.push(u8::from_str_radix(&s[i..i + 2], 16).ok()?);
    }
    Some(out)
}

fn decode_base64(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(s).ok())
        .map(Zeroizing::new)
}

/// Random base64 of 32 bytes or more mixes lower- and upper-case letters.
fn mixes_letter_cases(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_lowercase()) && s.bytes().any(|b| b.is_ascii_uppercase())
}

/// Fewer than 16 distinct byte values, or a shorter block repeated.
fn looks_weak(key: &[u8]) -> bool {
    let mut seen = [false; 256];
    for &b in key {
        seen[usize::from(b)] = true;
    }
    let distinct = seen.iter().filter(|&&s| s).count();
    let repeats = (1..=key.len() / 2)
        .filter(|period| key.len().is_multiple_of(*period))
        .any(|period| key[period..] == key[..key.len() - period]);
    distinct < 16 || repeats
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
    use std::cell::Cell;

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
            Key::parse(&base64::engine::general_purpose::STANDARD.encode(&bytes()[..31]))
                .unwrap_err(),
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

    /// 64 bytes from `openssl rand -hex 64`.
    const RANDOM: &str = "bce5c4786a5b3377b4ad3c9780f4e6b9dbac8497b19dccb5decb0503e483613d\
                          6602c7f166fe7313912aa11f3e504a0728166d1e822e301fac029f3c8a632827";

    fn bytes() -> Vec<u8> {
        decode_hex(RANDOM).unwrap().to_vec()
    }

    #[test]
    fn parse_accepts_hex_and_base64_of_32_or_64_bytes() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let bytes = bytes();
        let want = Key::from_bytes(&bytes).unwrap();
        assert_eq!(Key::parse(RANDOM).unwrap(), want);
        assert_eq!(Key::parse(&RANDOM.to_uppercase()).unwrap(), want);
        assert_eq!(Key::parse(&STANDARD.encode(&bytes)).unwrap(), want);
        assert_eq!(Key::parse(&URL_SAFE_NO_PAD.encode(&bytes)).unwrap(), want);
        let short = Key::from_bytes(&bytes[..32]).unwrap();
        assert_eq!(Key::parse(&RANDOM[..64]).unwrap(), short);
        assert_eq!(
            Key::parse(&format!(" {}\n", STANDARD.encode(&bytes[..32]))).unwrap(),
            short
        );
        // Hex of any length from 32 bytes; base64 of 32 or 64 bytes only.
        assert!(Key::parse(&RANDOM[..80]).is_ok());
        assert_eq!(
            Key::parse(&STANDARD.encode(&bytes[..40])).unwrap_err(),
            ConfigError::KeyEncoding
        );
    }

    // SECURITY J52: passphrases, repeated characters and patterns are not keys.
    #[test]
    fn low_entropy_text_is_refused() {
        use base64::engine::general_purpose::STANDARD;
        let weak = [
            "0".repeat(64),
            "ab".repeat(32),
            "5e5510".repeat(11)[..64].to_owned(),
            "0123456789abcdef".repeat(4),
            RANDOM[..64].repeat(2),
            "passwordpassword".repeat(3),
            "correcthorsebatterystaplecorrecthorsebattery".to_owned(),
            "CORRECTHORSEBATTERYSTAPLE0123456789ABCDEFGHI".to_owned(),
            STANDARD.encode([7u8; 32]),
            STANDARD.encode(b"an english sentence of some bytes"[..32].repeat(2)),
        ];
        for text in &weak {
            assert_eq!(Key::parse(text), Err(ConfigError::WeakKey), "{text}");
        }
        let msg = ConfigError::WeakKey.to_string();
        assert!(msg.contains("openssl rand -hex 32"), "{msg}");
        assert!(ConfigError::KeyEncoding
            .to_string()
            .contains("openssl rand -hex 32"));
        // Raw bytes are the caller's responsibility: no entropy rule there.
        assert!(Key::from_bytes(&[7; 32]).is_ok());
    }

    thread_local! {
        /// The material the last `Key` dropped on this thread left behind.
        static LEFT_BY_DROP: Cell<Option<[u8; 64]>> = const { Cell::new(None) };
    }

    /// Called by `Drop` in test builds, after the wipe, on the key's own
    /// storage. Reading that memory after the drop instead would need
    /// `unsafe`, which the crate forbids.
    pub(super) fn note_what_drop_left(key: &Key) {
        let mut left = [0u8; 64];
        left[..32].copy_from_slice(&key.signing);
        left[32..].copy_from_slice(&key.encryption);
        LEFT_BY_DROP.with(|l| l.set(Some(left)));
    }

    // SECURITY J52: a key's material is overwritten when it is dropped.
    #[test]
    fn dropping_a_key_wipes_its_material() {
        let key = Key::parse(RANDOM).unwrap();
        assert_ne!(key.signing(), &[0; 32]);
        assert_ne!(key.encryption(), &[0; 32]);
        LEFT_BY_DROP.with(|l| l.set(None));
        drop(key);
        let left = LEFT_BY_DROP
            .with(Cell::take)
            .expect("Key's Drop did not run");
        assert_eq!(left, [0; 64]);
    }
}
