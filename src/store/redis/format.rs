//! How a session is laid out in Redis: one hash per session, one field per
//! session key holding the value's JSON, and a reserved version field.
//!
//! Field names that start with `\0` are reserved for the store. A session key
//! that itself starts with `\0` is stored with one more `\0` in front, so no
//! session key can overwrite or fake the version field.

use std::borrow::Cow;

use deadpool_redis::redis::Value;

use super::Failure;
use crate::error::StoreError;
use crate::store::Record;

/// The reserved field that marks a hash as a session record.
pub(super) const VERSION_FIELD: &str = "\0v";
/// The reserved field that names the user index listing a record (see
/// `users.rs`); absent from a record bound to no user.
pub(super) const INDEX_FIELD: &str = "\0u";
/// The record format this code writes and reads.
pub(super) const VERSION: &str = "1";

/// The hash field for a session key.
pub(super) fn field(key: &str) -> Cow<'_, str> {
    if key.starts_with('\0') {
        Cow::Owned(format!("\0{key}"))
    } else {
        Cow::Borrowed(key)
    }
}

/// What a field name means.
#[derive(Debug, PartialEq, Eq)]
enum Field<'a> {
    Version,
    /// Reserved for a later format; ignored.
    Reserved,
    Key(&'a str),
}

fn parse_field(name: &str) -> Field<'_> {
    match name.strip_prefix('\0') {
        None => Field::Key(name),
        Some(rest) if rest.starts_with('\0') => Field::Key(rest),
        Some(_) if name == VERSION_FIELD => Field::Version,
        Some(_) => Field::Reserved,
    }
}

/// Reads an `HGETALL` reply. `Ok(None)` for a missing key and for a hash that
/// is not a session record (no version field); an error for a record that is
/// ours but unreadable, so a corrupt session is never mistaken for an empty one.
pub(super) fn decode(reply: Value) -> Result<Option<Record>, Failure> {
    let pairs = pairs(reply)?;
    if pairs.is_empty() {
        return Ok(None);
    }
    // The version decides how the rest reads: checked before any field.
    let version = pairs
        .iter()
        .find(|(name, _)| name == VERSION_FIELD.as_bytes())
        .map(|(_, v)| v.as_slice());
    match version {
        None => return Ok(None),
        Some(v) if v != VERSION.as_bytes() => return Err(Failure::UnknownVersion),
        Some(_) => {}
    }
    let mut record = Record::new();
    for (name, value) in pairs {
        let name = std::str::from_utf8(&name).map_err(|_| Failure::Corrupt)?;
        if let Field::Key(key) = parse_field(name) {
            let value = serde_json::from_slice(&value).map_err(|_| Failure::Corrupt)?;
            record.insert(key, value);
        }
    }
    Ok(Some(record))
}

/// The flat field, value, ... array `take.lua` answers (after the index
/// name), as raw bytes.
pub(super) fn raw_fields(items: Vec<Value>) -> Result<Vec<Vec<u8>>, Failure> {
    if !items.len().is_multiple_of(2) {
        return Err(Failure::UnexpectedReply);
    }
    items.into_iter().map(bytes).collect()
}

/// The error for data nested deeper than JSON reads back: stored, it would
/// make every later load of the session fail.
pub(super) fn too_deep() -> StoreError {
    StoreError::encode(serde::ser::Error::custom(
        "session data nests too deeply for the redis store",
    ))
}

/// A hash's fields and values, as raw bytes.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The field/value pairs of a hash, from a RESP2 flat array or a RESP3 map.
fn pairs(reply: Value) -> Result<Pairs, Failure> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) => {
            if !items.len().is_multiple_of(2) {
                return Err(Failure::UnexpectedReply);
            }
            let mut items = items.into_iter();
            let mut out = Vec::with_capacity(items.len() / 2);
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                out.push((bytes(k)?, bytes(v)?));
            }
            Ok(out)
        }
        Value::Map(items) => items
            .into_iter()
            .map(|(k, v)| Ok((bytes(k)?, bytes(v)?)))
            .collect(),
        _ => Err(Failure::UnexpectedReply),
    }
}

pub(super) fn bytes(v: Value) -> Result<Vec<u8>, Failure> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        _ => Err(Failure::UnexpectedReply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn reply(fields: &[(&str, &str)]) -> Value {
        Value::Array(
            fields
                .iter()
                .flat_map(|(k, v)| [bulk(k), bulk(v)])
                .collect(),
        )
    }

    #[test]
    fn keys_starting_with_nul_cannot_reach_reserved_fields() {
        assert_eq!(field("user"), "user");
        assert_eq!(field("\0v"), "\0\0v");
        for key in ["user", "", "\0v", "\0\0x", "v"] {
            assert_eq!(parse_field(&field(key)), Field::Key(key));
        }
        assert_eq!(parse_field(VERSION_FIELD), Field::Version);
        assert_eq!(parse_field("\0later"), Field::Reserved);
    }

    #[test]
    fn decodes_resp2_and_resp3_replies() {
        let flat = reply(&[("\0v", "1"), ("n", "42"), ("\0\0v", "\"x\"")]);
        let map = Value::Map(vec![(bulk("\0v"), bulk("1")), (bulk("n"), bulk("42"))]);
        let got = decode(flat).unwrap().unwrap();
        assert_eq!(got.get("n"), Some(&json!(42)));
        assert_eq!(got.get("\0v"), Some(&json!("x")));
        assert_eq!(got.len(), 2);
        assert_eq!(decode(map).unwrap().unwrap().get("n"), Some(&json!(42)));
    }

    #[test]
    fn missing_key_and_foreign_hash_are_absent() {
        assert_eq!(decode(Value::Array(vec![])).unwrap(), None);
        assert_eq!(decode(Value::Nil).unwrap(), None);
        assert_eq!(decode(reply(&[("n", "42")])).unwrap(), None);
    }

    #[test]
    fn unreadable_records_are_errors_not_panics() {
        assert!(matches!(
            decode(reply(&[("\0v", "1"), ("n", "{bad")])),
            Err(Failure::Corrupt)
        ));
        assert!(matches!(
            decode(reply(&[("\0v", "2")])),
            Err(Failure::UnknownVersion)
        ));
        assert!(matches!(
            decode(Value::Array(vec![bulk("\0v")])),
            Err(Failure::UnexpectedReply)
        ));
        assert!(matches!(
            decode(Value::Int(3)),
            Err(Failure::UnexpectedReply)
        ));
        let bad_utf8 = Value::Array(vec![
            bulk("\0v"),
            bulk("1"),
            Value::BulkString(vec![0xff]),
            bulk("1"),
        ]);
        assert!(matches!(decode(bad_utf8), Err(Failure::Corrupt)));
    }
}
