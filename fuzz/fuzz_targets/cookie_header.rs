//! Cookie header parsing: arbitrary bytes, split into header lines at `\n`.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    common::drive(&sessio::MemoryStore::new(), &lines);
});
