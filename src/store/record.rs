//! What a store keeps: the session's data, and what a save changed.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, SystemTime};

// foldhash instead of std's SipHash: records and change sets are looked up by
// short keys several times per request, where SipHash is slow. The keys come from the application's code (or from a record this layer
// stored), never from a client, and foldhash still seeds itself at random per
// process, so hash flooding stays out of a client's reach.
type Hasher = foldhash::fast::RandomState;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The deepest nesting of arrays and objects, the record's own map included,
/// that `serde_json` reads back (its recursion limit). Stores that keep a
/// record as JSON check it: deeper data would encode fine and never decode.
#[cfg(any(
    feature = "memory-store",
    feature = "cookie-store",
    feature = "postgres",
    feature = "sqlite",
    feature = "redis"
))]
pub(crate) const MAX_DEPTH: usize = 127;

/// `true` when `value`, as a value of a record, holds an array or object
/// deeper than [`MAX_DEPTH`]. Scalars, the common case, cost no allocation.
#[cfg(any(
    feature = "memory-store",
    feature = "cookie-store",
    feature = "postgres",
    feature = "sqlite",
    feature = "redis"
))]
pub(crate) fn value_nests_too_deep(value: &Value) -> bool {
    if !matches!(value, Value::Array(_) | Value::Object(_)) {
        return false;
    }
    let mut stack: Vec<(&Value, usize)> = vec![(value, 2)];
    while let Some((value, depth)) = stack.pop() {
        match value {
            Value::Array(_) | Value::Object(_) if depth > MAX_DEPTH => return true,
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    false
}

/// A session's data: string keys to JSON values.
///
/// Flash messages live here too, under keys that start with `_flash`.
///
/// `Debug` prints the keys only, sorted: values may be secrets (a CSRF
/// secret, a user's data), and for the cookie store a record is the whole
/// plaintext of the cookie.
///
/// ```
/// use sessio::store::Record;
///
/// let mut record = Record::new();
/// record.insert("user", "ada@example.com".into());
/// record.insert("_csrf", "s3cret".into());
/// assert_eq!(format!("{record:?}"), r#"Record { keys: ["_csrf", "user"] }"#);
/// ```
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Record {
    data: HashMap<String, Value, Hasher>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.data.get_mut(key)
    }

    /// Sets `key`, returning the value it replaces.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        self.data.insert(key.into(), value)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.data.remove(key)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.data.clear();
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// `true` when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The keys and values, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.data.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// SECURITY J48: `Ok` when the record's JSON is at most `limit` bytes
    /// (or there is no limit), else [`StoreError::TooLarge`]: how the Redis
    /// and SQL stores judge a save against their record size limit.
    #[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
    pub(crate) fn check_size(&self, limit: Option<usize>) -> Result<(), crate::error::StoreError> {
        let Some(limit) = limit else {
            return Ok(());
        };
        let size = serde_json::to_vec(self).map_or(usize::MAX, |v| v.len());
        if size > limit {
            return Err(crate::error::StoreError::TooLarge { size, limit });
        }
        Ok(())
    }

    /// `true` when an array or object sits deeper than [`MAX_DEPTH`].
    /// Iterative, so no nesting can exhaust the stack here.
    #[cfg(any(feature = "memory-store", feature = "cookie-store", feature = "redis"))]
    pub(crate) fn nests_too_deep(&self) -> bool {
        self.data.values().any(value_nests_too_deep)
    }

    /// Applies `changes`, taking new values from `from` (the request's copy of
    /// the record). A store that keeps the record as one blob but wants
    /// concurrent requests that touch different keys to keep both changes reads
    /// the stored copy, calls this, and writes it back.
    pub fn apply(&mut self, changes: &Changes, from: &Record) {
        if changes.cleared {
            self.data.clear();
        }
        for k in &changes.removed {
            self.data.remove(k);
        }
        for k in &changes.set {
            if let Some(v) = from.data.get(k) {
                match self.data.get_mut(k) {
                    Some(old) => old.clone_from(v),
                    None => {
                        self.data.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&str> = self.data.keys().map(String::as_str).collect();
        keys.sort_unstable();
        f.debug_struct("Record").field("keys", &keys).finish()
    }
}

impl FromIterator<(String, Value)> for Record {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Self {
            data: iter.into_iter().collect(),
        }
    }
}

/// What one request changed, handed to [`Store::update`](crate::Store::update)
/// beside the whole record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub(crate) cleared: bool,
    pub(crate) set: HashSet<String, Hasher>,
    pub(crate) removed: HashSet<String, Hasher>,
}

impl Changes {
    /// `true` when the request cleared the session before any `set` listed here.
    pub fn cleared(&self) -> bool {
        self.cleared
    }

    /// Keys set (added or changed) by the request.
    pub fn set(&self) -> impl Iterator<Item = &str> {
        self.set.iter().map(String::as_str)
    }

    /// Keys removed by the request.
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        self.removed.iter().map(String::as_str)
    }

    /// `true` when nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.cleared && self.set.is_empty() && self.removed.is_empty()
    }

    pub(crate) fn record_set(&mut self, key: &str) {
        if !self.removed.is_empty() {
            self.removed.remove(key);
        }
        if !self.set.contains(key) {
            self.set.insert(key.to_owned());
        }
    }

    pub(crate) fn record_remove(&mut self, key: &str) {
        self.set.remove(key);
        if !self.removed.contains(key) {
            self.removed.insert(key.to_owned());
        }
    }

    pub(crate) fn record_clear(&mut self) {
        self.set.clear();
        self.removed.clear();
        self.cleared = true;
    }

    /// Puts back changes taken for a save that failed, under newer ones.
    pub(crate) fn merge_older(&mut self, older: Changes) {
        if self.cleared {
            return;
        }
        self.cleared = older.cleared;
        for k in older.set {
            if !self.removed.contains(&k) {
                self.set.insert(k);
            }
        }
        for k in older.removed {
            if !self.set.contains(&k) {
                self.removed.insert(k);
            }
        }
    }
}

/// When a record expires, as the layer hands it to a store: a moment (for
/// stores that keep deadlines) and a time-to-live from now (for stores with
/// TTLs, such as Redis). The policy that decides it is an
/// [`Expiry`](crate::Expiry); this is one concrete deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    pub(crate) at: SystemTime,
    pub(crate) ttl: Duration,
}

impl Deadline {
    /// An expiry at `at`, which is `ttl` from now.
    pub fn new(at: SystemTime, ttl: Duration) -> Self {
        Self { at, ttl }
    }

    /// The moment the record expires.
    pub fn at(&self) -> SystemTime {
        self.at
    }

    /// The time left until then, as the layer saw it.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}
