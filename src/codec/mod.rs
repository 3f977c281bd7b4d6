//! Cookie value formats: signed and encrypted envelopes.
//!
//! What is protected is a small binary envelope: a version byte, the session's
//! creation time, this cookie's issue time and its expiry (unix seconds, u64
//! big-endian), followed by the store's value. Version 2 puts the session's
//! own settings (its expiry policy, cookie attribute overrides) between the
//! times and the value, as a length (u16) and the bytes `settings.rs`
//! describes; a session without settings keeps the shorter version 1. Keeping the times inside what is
//! signed or sealed lets the server reject a replayed cookie past its expiry,
//! whatever the browser did with `Max-Age`.
//!
//! - signed: `base64url(envelope) "." base64url(HMAC-SHA256(len(name) ‖ name ‖ envelope))`
//! - encrypted: `base64url(nonce ‖ AES-256-GCM(envelope, aad = name))`
//!
//! The name is length-prefixed in the MAC input so no (name, value) pair can be
//! re-split into another; AES-GCM keeps associated data apart from plaintext by
//! construction. There is no fallback decoder: a value that fails the MAC or the
//! AEAD tag is never parsed further.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use std::sync::Arc;

use crate::key::Key;
use crate::settings::Settings;

/// Browsers keep cookies up to 4096 bytes of name plus value.
pub const MAX_COOKIE_LEN: usize = 4096;

const VERSION: u8 = 1;
const VERSION_WITH_SETTINGS: u8 = 2;
const HEADER_LEN: usize = 1 + 8 * 3;
const TAG_LEN: usize = 32;
const TAG_B64_LEN: usize = 43;
const NONCE_LEN: usize = 12;
const AEAD_TAG_LEN: usize = 16;
/// Envelopes up to this size (header, value, AEAD tag) are built on the stack.
const STACK_LEN: usize = 256;

/// How the layer protects the value a store puts in the cookie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protection {
    /// HMAC-SHA256: the client can read the value but not change it. Right for
    /// random ids, which reveal nothing.
    #[default]
    Signed,
    /// AES-256-GCM: the client can neither read nor change the value.
    Encrypted,
}

/// What is sealed or signed with every cookie value: times in unix seconds,
/// and the session's own settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// When the session was first created (absolute timeout counts from here).
    pub(crate) created: u64,
    /// When this cookie value was issued.
    pub(crate) issued: u64,
    /// When the session expires on the server.
    pub(crate) expires: u64,
    /// The session's own settings; `None` when it has none (most sessions).
    pub(crate) settings: Option<Arc<Settings>>,
}

impl Envelope {
    /// The settings' bytes, with their length in front, when there are any.
    fn settings_bytes(&self) -> Option<Vec<u8>> {
        let s = self.settings.as_deref().filter(|s| !s.is_empty())?;
        let mut out = vec![0, 0];
        s.encode(&mut out);
        let len = (out.len() - 2) as u16;
        out[..2].copy_from_slice(&len.to_be_bytes());
        Some(out)
    }

    /// Bytes the envelope adds after its fixed header, before the value.
    pub(crate) fn extra_len(&self) -> usize {
        self.settings_bytes().map_or(0, |b| b.len())
    }
}

/// Why an incoming cookie value was rejected; safe to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    TooLarge,
    Malformed,
    BadTag,
    UnknownVersion,
}

impl DecodeError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::TooLarge => "cookie over 4096 bytes",
            Self::Malformed => "malformed cookie value",
            Self::BadTag => "signature or authentication tag did not verify",
            Self::UnknownVersion => "unknown envelope version",
        }
    }
}

/// A value that verified: its envelope, the store's value, and which key
/// verified it (0 is the current key).
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) envelope: Envelope,
    pub(crate) value: Vec<u8>,
    pub(crate) key_index: usize,
}

struct Material {
    mac: Hmac<Sha256>,
    aead: Aes256Gcm,
}

/// Keyed signers and ciphers, built once per layer.
pub(crate) struct Codec {
    keys: Vec<Material>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Codec {
    /// `keys[0]` signs and seals; the rest only verify and open.
    pub(crate) fn new(keys: &[Key]) -> Self {
        let keys = keys
            .iter()
            .map(|k| Material {
                mac: <Hmac<Sha256> as Mac>::new_from_slice(k.signing())
                    .expect("HMAC accepts keys of any length"),
                aead: Aes256Gcm::new(k.encryption().into()),
            })
            .collect();
        Self { keys }
    }

    /// Encodes `value` for the cookie `name`.
    #[cfg(test)]
    pub(crate) fn encode(
        &self,
        protection: Protection,
        name: &str,
        envelope: &Envelope,
        value: &[u8],
    ) -> String {
        let mut out = String::with_capacity(encoded_len(protection, value.len()));
        self.encode_into(protection, name, envelope, value, &mut out);
        out
    }

    /// Appends the encoding of `value` for the cookie `name` to `out`:
    /// exactly [`encoded_len`] bytes, so a caller can size `out` once.
    pub(crate) fn encode_into(
        &self,
        protection: Protection,
        name: &str,
        envelope: &Envelope,
        value: &[u8],
        out: &mut String,
    ) {
        // The envelope is built on the stack when it is small (an id always
        // is), on the heap otherwise: no allocation for a server-side store.
        let extra = envelope.settings_bytes();
        let extra = extra.as_deref().unwrap_or_default();
        let len = HEADER_LEN + extra.len() + value.len();
        let mut stack = [0u8; STACK_LEN];
        let mut heap = Vec::new();
        let buf: &mut [u8] = if len + AEAD_TAG_LEN <= STACK_LEN {
            &mut stack[..len + AEAD_TAG_LEN]
        } else {
            heap.resize(len + AEAD_TAG_LEN, 0);
            &mut heap
        };
        buf[0] = if extra.is_empty() {
            VERSION
        } else {
            VERSION_WITH_SETTINGS
        };
        buf[1..9].copy_from_slice(&envelope.created.to_be_bytes());
        buf[9..17].copy_from_slice(&envelope.issued.to_be_bytes());
        buf[17..HEADER_LEN].copy_from_slice(&envelope.expires.to_be_bytes());
        buf[HEADER_LEN..HEADER_LEN + extra.len()].copy_from_slice(extra);
        buf[HEADER_LEN + extra.len()..len].copy_from_slice(value);
        let current = &self.keys[0];
        match protection {
            Protection::Signed => {
                let plain = &buf[..len];
                let tag = mac(&current.mac, name, plain);
                B64.encode_string(plain, out);
                out.push('.');
                B64.encode_string(tag, out);
            }
            Protection::Encrypted => {
                let mut nonce = [0u8; NONCE_LEN];
                rand::rng().fill_bytes(&mut nonce);
                // Sealed in place: the buffer becomes ciphertext ‖ tag.
                let (plain, tag_out) = buf.split_at_mut(len);
                let tag = current
                    .aead
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), name.as_bytes(), plain)
                    .expect("AES-GCM encryption of a cookie-sized message cannot fail");
                tag_out.copy_from_slice(&tag);
                // base64 of nonce ‖ sealed in one run: the 12-byte nonce is a
                // whole number of 3-byte groups, so encoding the two pieces
                // one after the other gives the same text.
                B64.encode_string(nonce, out);
                B64.encode_string(&*buf, out);
            }
        }
    }

    /// Verifies or opens a cookie value received under `name`.
    pub(crate) fn decode(
        &self,
        protection: Protection,
        name: &str,
        cookie: impl AsRef<[u8]>,
    ) -> Result<Opened, DecodeError> {
        // Bytes, not text: anything outside base64url fails to decode, so a
        // separate UTF-8 check of the whole value would only repeat the work.
        let cookie = cookie.as_ref();
        if name.len() + cookie.len() > MAX_COOKIE_LEN {
            return Err(DecodeError::TooLarge);
        }
        let (plain, start, key_index) = match protection {
            Protection::Signed => self.verify(name, cookie)?,
            Protection::Encrypted => self.open(name, cookie)?,
        };
        parse_envelope(plain, start, key_index)
    }

    /// The verified bytes, where the envelope starts in them (at once), and
    /// the key index.
    fn verify(&self, name: &str, cookie: &[u8]) -> Result<(Vec<u8>, usize, usize), DecodeError> {
        let dot = memchr::memrchr(b'.', cookie).ok_or(DecodeError::Malformed)?;
        let (body, tag) = (&cookie[..dot], &cookie[dot + 1..]);
        if tag.len() != TAG_B64_LEN {
            return Err(DecodeError::Malformed);
        }
        let mut tag_bytes = [0u8; TAG_LEN + 2];
        let n = B64
            .decode_slice(tag, &mut tag_bytes)
            .map_err(|_| DecodeError::Malformed)?;
        let tag = &tag_bytes[..n];
        let plain = B64.decode(body).map_err(|_| DecodeError::Malformed)?;
        for (i, m) in self.keys.iter().enumerate() {
            let mut mac = m.mac.clone();
            feed(&mut mac, name, &plain);
            // `verify_slice` compares in constant time (SECURITY C14).
            if mac.verify_slice(tag).is_ok() {
                return Ok((plain, 0, i));
            }
        }
        Err(DecodeError::BadTag)
    }

    /// The opened bytes, where the envelope starts in them, and the key index.
    fn open(&self, name: &str, cookie: &[u8]) -> Result<(Vec<u8>, usize, usize), DecodeError> {
        let mut bytes = B64.decode(cookie).map_err(|_| DecodeError::Malformed)?;
        if bytes.len() < NONCE_LEN + AEAD_TAG_LEN {
            return Err(DecodeError::Malformed);
        }
        let (nonce, rest) = bytes.split_at_mut(NONCE_LEN);
        let (sealed, tag) = rest.split_at_mut(rest.len() - AEAD_TAG_LEN);
        for (i, m) in self.keys.iter().enumerate() {
            // Opened in place: aes-gcm checks the tag before it decrypts, so
            // a key that fails leaves the ciphertext as it was for the next.
            let opened = m.aead.decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                name.as_bytes(),
                sealed,
                aes_gcm::Tag::from_slice(tag),
            );
            if opened.is_ok() {
                bytes.truncate(bytes.len() - AEAD_TAG_LEN);
                return Ok((bytes, NONCE_LEN, i));
            }
        }
        Err(DecodeError::BadTag)
    }
}

fn feed(mac: &mut Hmac<Sha256>, name: &str, plain: &[u8]) {
    // Cookie names are far shorter than 4 GiB; the length prefix makes the
    // (name, value) split unambiguous (SECURITY C12).
    mac.update(&(name.len() as u32).to_be_bytes());
    mac.update(name.as_bytes());
    mac.update(plain);
}

fn mac(keyed: &Hmac<Sha256>, name: &str, plain: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = keyed.clone();
    feed(&mut mac, name, plain);
    mac.finalize().into_bytes().into()
}

/// Reads the envelope that starts at `start` in `plain`; the value is what
/// follows it.
fn parse_envelope(
    mut plain: Vec<u8>,
    start: usize,
    key_index: usize,
) -> Result<Opened, DecodeError> {
    let header = plain
        .get(start..start + HEADER_LEN)
        .ok_or(DecodeError::Malformed)?;
    let version = header[0];
    if version != VERSION && version != VERSION_WITH_SETTINGS {
        return Err(DecodeError::UnknownVersion);
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[1 + 8 * i..9 + 8 * i]);
        u64::from_be_bytes(b)
    };
    let mut envelope = Envelope {
        created: word(0),
        issued: word(1),
        expires: word(2),
        settings: None,
    };
    let mut end = start + HEADER_LEN;
    if version == VERSION_WITH_SETTINGS {
        let len = plain
            .get(end..end + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or(DecodeError::Malformed)?;
        let bytes = plain
            .get(end + 2..end + 2 + len)
            .ok_or(DecodeError::Malformed)?;
        let settings = Settings::decode(bytes).ok_or(DecodeError::Malformed)?;
        envelope.settings = Some(Arc::new(settings));
        end += 2 + len;
    }
    plain.drain(..end);
    Ok(Opened {
        envelope,
        value: plain,
        key_index,
    })
}

/// Length of the cookie value `encode` produces for a store value of `len` bytes.
pub(crate) fn encoded_len(protection: Protection, len: usize) -> usize {
    match protection {
        Protection::Signed => {
            (HEADER_LEN + len).div_ceil(3) * 4 - pad(HEADER_LEN + len) + 1 + TAG_B64_LEN
        }
        Protection::Encrypted => {
            let n = NONCE_LEN + HEADER_LEN + len + AEAD_TAG_LEN;
            n.div_ceil(3) * 4 - pad(n)
        }
    }
}

fn pad(n: usize) -> usize {
    match n % 3 {
        1 => 2,
        2 => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
