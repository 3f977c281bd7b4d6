//! Sealed value opening: arbitrary bytes, base64url-encoded the way a sealed
//! cookie is, and as raw text, as the value of a CookieStore's `id` cookie.
#![no_main]

#[path = "common.rs"]
mod common;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = sessio::CookieStore::new();
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data);
    let sealed = [b"id=".as_slice(), encoded.as_bytes()].concat();
    let raw = [b"id=".as_slice(), data].concat();
    common::drive(&store, &[&sealed]);
    common::drive(&store, &[&raw]);
});
