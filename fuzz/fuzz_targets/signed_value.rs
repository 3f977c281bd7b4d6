//! Signed value verification: arbitrary bytes as the value of the `id` cookie.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = [b"id=".as_slice(), data].concat();
    common::drive(&sessio::MemoryStore::new(), &[&line]);
});
