//! How a record sits in the `data` column: a JSON object with one member per
//! session key, whose value is a JSON string holding that value's own JSON
//! text (`{"user": "\"ada\"", "n": "42"}`).
//!
//! Keeping each value as text makes the per-key merge exact on both
//! databases: PostgreSQL's `jsonb` would rewrite numbers (`1e19`, `-0.0`) and
//! refuses `\u0000` anywhere, and SQLite's `json_patch` (RFC 7396) would read
//! a `null` value as "delete this key" and merge nested objects instead of
//! replacing them. A stored value is never JSON `null` (it is the text
//! `"null"`), so in a merge patch `null` means exactly "remove".
//!
//! Keys are stored with `\` written `\\` and NUL written `\0`: PostgreSQL
//! text (and so `jsonb` keys and `text[]`) cannot hold NUL, and session keys
//! may.

use std::borrow::Cow;

use serde_json::Value;

use super::Failure;
use crate::error::StoreError;
use crate::store::record::value_nests_too_deep;
use crate::store::{Changes, Record};

/// The stored form of a session key.
pub(super) fn stored_key(key: &str) -> Cow<'_, str> {
    if !key.contains(['\\', '\0']) {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len() + 2);
    for c in key.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The session key a stored key stands for; `None` for an escape this code
/// never writes.
fn session_key(stored: &str) -> Option<Cow<'_, str>> {
    if !stored.contains('\\') {
        return Some(Cow::Borrowed(stored));
    }
    let mut out = String::with_capacity(stored.len());
    let mut chars = stored.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '\\' => out.push('\\'),
                '0' => out.push('\0'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(Cow::Owned(out))
}

/// The JSON text of one value, refusing what could not be read back.
fn value_text(value: &Value) -> Result<String, StoreError> {
    // SECURITY J49: refuse at save what a load could not parse.
    if value_nests_too_deep(value) {
        return Err(StoreError::encode(serde::ser::Error::custom(
            "session data nests too deeply for the sql store",
        )));
    }
    serde_json::to_string(value).map_err(StoreError::encode)
}

/// Appends `"key":"<value text>"` (or `"key":null` for `None`) to an object
/// being written.
fn member(out: &mut String, key: &str, text: Option<&str>) -> Result<(), StoreError> {
    if out.len() > 1 {
        out.push(',');
    }
    out.push_str(&serde_json::to_string(&*stored_key(key)).map_err(StoreError::encode)?);
    out.push(':');
    match text {
        Some(text) => out.push_str(&serde_json::to_string(text).map_err(StoreError::encode)?),
        None => out.push_str("null"),
    }
    Ok(())
}

/// The `data` of a whole record.
pub(super) fn encode(record: &Record) -> Result<String, StoreError> {
    let mut out = String::from("{");
    for (k, v) in record.iter() {
        member(&mut out, k, Some(&value_text(v)?))?;
    }
    out.push('}');
    Ok(out)
}

/// Reads `data` back into a record.
pub(super) fn decode(data: &str) -> Result<Record, StoreError> {
    let corrupt = || StoreError::unreadable(Failure::Corrupt);
    let object: serde_json::Map<String, Value> =
        serde_json::from_str(data).map_err(|_| corrupt())?;
    let mut record = Record::new();
    for (stored, text) in object {
        let (Some(key), Value::String(text)) = (session_key(&stored), text) else {
            return Err(corrupt());
        };
        let value: Value = serde_json::from_str(&text).map_err(|_| corrupt())?;
        record.insert(key.into_owned(), value);
    }
    Ok(record)
}

/// What an update or rotation writes: the request's [`Changes`] in stored form.
#[derive(Debug)]
pub(super) struct Patch {
    /// Start from an empty record instead of the stored one.
    pub(super) cleared: bool,
    /// Stored keys to remove.
    pub(super) removed: Vec<String>,
    /// `(session key, value text)` to set.
    set: Vec<(String, String)>,
}

impl Patch {
    /// The changes with their new values taken from `from`, as
    /// [`Record::apply`] takes them: a key marked set but absent from `from`
    /// is left alone.
    pub(super) fn new(from: &Record, changes: &Changes) -> Result<Self, StoreError> {
        let mut set = Vec::new();
        for k in changes.set() {
            if let Some(v) = from.get(k) {
                set.push((k.to_owned(), value_text(v)?));
            }
        }
        Ok(Self {
            cleared: changes.cleared(),
            removed: changes
                .removed()
                .map(|k| stored_key(k).into_owned())
                .collect(),
            set,
        })
    }

    /// `true` when the merged record cannot be empty: a key is set.
    #[cfg(feature = "sqlite")]
    pub(super) fn sets_a_key(&self) -> bool {
        !self.set.is_empty()
    }

    /// The keys set, as one JSON object (`jsonb ||` on PostgreSQL).
    pub(super) fn set_object(&self) -> Result<String, StoreError> {
        let mut out = String::from("{");
        for (key, text) in &self.set {
            member(&mut out, key, Some(text))?;
        }
        out.push('}');
        Ok(out)
    }

    /// Keys set and keys removed (as `null`) in one RFC 7396 merge patch
    /// (`json_patch` on SQLite).
    #[cfg(feature = "sqlite")]
    pub(super) fn merge_patch(&self) -> Result<String, StoreError> {
        let mut out = self.set_object()?;
        out.pop();
        for stored in &self.removed {
            if out.len() > 1 {
                out.push(',');
            }
            // Already in stored form: written as a JSON string directly.
            out.push_str(&serde_json::to_string(stored).map_err(StoreError::encode)?);
            out.push_str(":null");
        }
        out.push('}');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn odd_keys_round_trip_through_their_stored_form() {
        for key in [
            "",
            "\0",
            "\0lead",
            "a\0b",
            "\\",
            "\\0",
            "a\\\0b",
            "ключ ∑ 🎉",
            "\"q\"",
        ] {
            let stored = stored_key(key);
            assert!(!stored.contains('\0'), "{key:?} stored with a NUL");
            assert_eq!(session_key(&stored).as_deref(), Some(key), "{key:?}");
        }
        assert_eq!(session_key("\\x"), None);
        assert_eq!(session_key("trailing\\"), None);
    }

    #[test]
    fn records_round_trip_exactly_even_where_jsonb_would_not() {
        let record: Record = [
            ("null".to_owned(), json!(null)),
            ("neg0".to_owned(), json!(-0.0)),
            ("big".to_owned(), json!(1e19)),
            ("nul".to_owned(), json!("a\u{0}b")),
            ("nested".to_owned(), json!({"a": {"b": null}})),
            ("\0k".to_owned(), json!(1)),
        ]
        .into_iter()
        .collect();
        let data = encode(&record).unwrap();
        assert!(!data.contains('\0'));
        assert_eq!(decode(&data).unwrap(), record);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn merge_patch_marks_removals_null_and_never_a_set_value() {
        let mut from = Record::new();
        from.insert("set", json!(null));
        let mut changes = Changes::default();
        changes.record_set("set");
        changes.record_set("absent");
        changes.record_remove("gone\0");
        let patch = Patch::new(&from, &changes).unwrap();
        assert!(patch.sets_a_key());
        let merged: serde_json::Map<String, Value> =
            serde_json::from_str(&patch.merge_patch().unwrap()).unwrap();
        assert_eq!(merged.get("set"), Some(&json!("null")));
        assert_eq!(merged.get("gone\\0"), Some(&Value::Null));
        assert!(!merged.contains_key("absent"));
    }

    #[test]
    fn unreadable_data_is_unreadable() {
        for bad in [
            "",
            "[]",
            "{\"a\": 1}",
            "{\"a\": \"{\"}",
            "{\"\\\\x\": \"1\"}",
        ] {
            assert!(
                matches!(decode(bad), Err(StoreError::Unreadable(_))),
                "{bad:?} decoded"
            );
        }
    }
}
