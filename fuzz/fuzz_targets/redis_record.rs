//! The Redis record decoder: arbitrary field/value pairs as an HGETALL reply,
//! in RESP2 and RESP3 shape. A record that decodes must hold at most as many
//! keys as fields were given; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessio::store::redis_fuzzing::decode_hash;

fuzz_target!(|input: (Vec<(Vec<u8>, Vec<u8>)>, bool)| {
    let (fields, resp3) = input;
    let n = fields.len();
    if let Some(keys) = decode_hash(fields, resp3) {
        assert!(keys < n.max(1), "more keys than fields");
    }
});
