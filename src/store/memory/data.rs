//! How [`MemoryStore`](super::MemoryStore) keeps a record: compact JSON,
//! a few hundred bytes less per session than the map of `Value`s it stands
//! for, paid with a parse on load. An update merges the changes into the
//! stored text; values it does not change are copied, never parsed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::StoreError;
use crate::store::record::value_nests_too_deep;
use crate::store::{Changes, Record};

pub(super) enum Data {
    Json(Box<str>),
    /// Data nested deeper than JSON reads back stays a `Record`.
    Deep(Record),
}

impl Data {
    pub(super) fn new(record: &Record) -> Result<Self, StoreError> {
        if record.nests_too_deep() {
            return Ok(Self::Deep(record.clone()));
        }
        serde_json::to_string(record)
            .map(|s| Self::Json(s.into_boxed_str()))
            .map_err(StoreError::encode)
    }

    /// Bytes of JSON (for deep data, of its JSON had it been readable).
    pub(super) fn size(&self) -> usize {
        match self {
            Self::Json(json) => json.len(),
            Self::Deep(record) => serde_json::to_vec(record).map_or(usize::MAX, |v| v.len()),
        }
    }

    /// `true` when the record has no keys.
    pub(super) fn is_empty(&self) -> bool {
        match self {
            Self::Json(json) => &**json == "{}",
            Self::Deep(record) => record.is_empty(),
        }
    }

    /// The user this record is bound to ([`USER_KEY`](crate::users::USER_KEY)),
    /// parsed only when the text may hold one.
    pub(super) fn user(&self) -> Result<Option<String>, StoreError> {
        if let Self::Json(json) = self {
            if !json.contains("\"_user\"") {
                return Ok(None);
            }
        }
        Ok(crate::store::bound_user(&self.record()?).map(str::to_owned))
    }

    pub(super) fn record(&self) -> Result<Record, StoreError> {
        match self {
            Self::Json(json) => serde_json::from_str(json).map_err(StoreError::unreadable),
            Self::Deep(record) => Ok(record.clone()),
        }
    }

    /// This data with `changes` applied, new values taken from `from`: the
    /// result of [`Record::apply`].
    pub(super) fn apply(&self, changes: &Changes, from: &Record) -> Result<Self, StoreError> {
        if let Self::Json(json) = self {
            if let Some(merged) = merge(json, changes, from)? {
                return Ok(Self::Json(merged));
            }
        }
        let mut stored = self.record()?;
        stored.apply(changes, from);
        Self::new(&stored)
    }
}

/// [`Record::apply`] on the JSON text; `None` when a new value nests too deep
/// to stay JSON.
fn merge(json: &str, changes: &Changes, from: &Record) -> Result<Option<Box<str>>, StoreError> {
    let set = || {
        changes
            .set
            .iter()
            .filter_map(|k| from.get(k).map(|v| (k.as_str(), v)))
    };
    if set().any(|(_, v)| value_nests_too_deep(v)) {
        return Ok(None);
    }
    let replaced =
        |k: &str| changes.removed.contains(k) || (changes.set.contains(k) && from.get(k).is_some());
    let mut out = Vec::with_capacity(json.len() + 16 * changes.set.len());
    out.push(b'{');
    if !changes.cleared {
        // The stored entries are copied as they are parsed, straight into
        // the output: no list of them is built.
        let mut de = serde_json::Deserializer::from_str(json);
        Keep {
            out: &mut out,
            replaced: &replaced,
        }
        .deserialize(&mut de)
        .map_err(StoreError::unreadable)?;
        de.end().map_err(StoreError::unreadable)?;
    }
    for (k, v) in set() {
        entry(&mut out, k, Err(v))?;
    }
    out.push(b'}');
    let text =
        String::from_utf8(out).expect("serde_json writes UTF-8 and the rest is copied UTF-8");
    Ok(Some(text.into_boxed_str()))
}

/// Appends `"key":value` to an object being written, with a comma before it
/// unless it is the first: `Ok` is JSON text copied as is, `Err` a value to
/// encode.
fn entry(out: &mut Vec<u8>, key: &str, value: Result<&str, &Value>) -> Result<(), StoreError> {
    if out.len() > 1 {
        out.push(b',');
    }
    serde_json::to_writer(&mut *out, key).map_err(StoreError::encode)?;
    out.push(b':');
    match value {
        Ok(raw) => out.extend_from_slice(raw.as_bytes()),
        Err(v) => serde_json::to_writer(&mut *out, v).map_err(StoreError::encode)?,
    }
    Ok(())
}

/// Parses a stored JSON object and writes each entry that `replaced` does not
/// claim into `out`, its value copied as raw text.
struct Keep<'o, F> {
    out: &'o mut Vec<u8>,
    replaced: &'o F,
}

impl<'de, F: Fn(&str) -> bool> DeserializeSeed<'de> for Keep<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: Fn(&str) -> bool> Visitor<'de> for Keep<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((Key(k), raw)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
            if !(self.replaced)(&k) {
                entry(self.out, &k, Ok(raw.get())).map_err(serde::de::Error::custom)?;
            }
        }
        Ok(())
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Str;
        impl<'de> Visitor<'de> for Str {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(pairs: &[(&str, Value)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    /// Every mix of set, removed and cleared gives what `Record::apply` gives.
    #[test]
    fn merge_is_record_apply() {
        let stored = record(&[
            ("a", json!(1)),
            ("b", json!({"x": [1, 2.5, null]})),
            ("quote\"d \\ é", json!("v\u{1}")),
            ("c", json!(-0.0)),
        ]);
        let from = record(&[
            ("a", json!(2)),
            ("new", json!([true, "é"])),
            ("quote\"d \\ é", json!(1.0559953781465763e232_f64)),
        ]);
        let keys = ["a", "b", "new", "quote\"d \\ é", "c", "missing"];
        for mask in 0..3u32.pow(keys.len() as u32) {
            for cleared in [false, true] {
                let mut changes = Changes::default();
                if cleared {
                    changes.record_clear();
                }
                let mut m = mask;
                for k in keys {
                    match m % 3 {
                        1 => changes.record_set(k),
                        2 => changes.record_remove(k),
                        _ => {}
                    }
                    m /= 3;
                }
                let mut expected = stored.clone();
                expected.apply(&changes, &from);
                let data = Data::new(&stored).unwrap();
                let merged = data.apply(&changes, &from).unwrap();
                assert!(matches!(merged, Data::Json(_)));
                assert_eq!(merged.record().unwrap(), expected, "{changes:?}");
            }
        }
    }

    #[test]
    fn too_deep_a_new_value_stays_a_record_and_comes_back() {
        let mut deep = Value::Null;
        for _ in 0..200 {
            deep = Value::Array(vec![deep]);
        }
        let stored = record(&[("a", json!(1))]);
        let from = record(&[("a", json!(1)), ("deep", deep)]);
        let mut changes = Changes::default();
        changes.record_set("deep");
        let merged = Data::new(&stored).unwrap().apply(&changes, &from).unwrap();
        assert!(matches!(merged, Data::Deep(_)));
        assert_eq!(merged.record().unwrap(), from);
    }
}
