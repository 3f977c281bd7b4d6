//! [`UserIndex`] for [`SqlStore`]: the per-user index is a database index
//! over the `_user` member of each row's `data`, so it is derived from the
//! row itself and cannot disagree with it, holds nothing but the row's
//! digest key, and is bounded by the table (expired rows are swept).

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::{Backend, SqlStore};
use crate::error::StoreError;
use crate::store::{Listed, Record, UserIndex};
use crate::users::{META_KEY, SEEN_KEY, SINCE_KEY, USER_KEY};

/// One row of a user's listing, as both backends read it: the `_user…`
/// values as their stored JSON text, the expiry in unix milliseconds.
pub(super) struct UserRow {
    pub(super) id_hash: String,
    pub(super) since: Option<String>,
    pub(super) seen: Option<String>,
    pub(super) meta: Option<String>,
    pub(super) expires_ms: i64,
}

/// What the `_user` member holds for `user`: the JSON text of the string,
/// as [`format`](super::format) stores every value. The index is on this
/// text, so a listing compares text, never parses a row.
pub(super) fn user_text(user: &str) -> Result<String, StoreError> {
    serde_json::to_string(user).map_err(StoreError::encode)
}

/// `true` for what a handle can be: 64 lowercase hex digits, the form of
/// the table's `id_hash` (the handle of a record *is* its row key, both
/// `storage_key("", value)`). Anything else never reaches the database.
fn is_handle(text: &str) -> bool {
    crate::users::SessionHandle::parse(text).is_some()
}

impl UserRow {
    fn into_listed(self, user: &str) -> Listed {
        let mut record = Record::new();
        record.insert(USER_KEY, Value::String(user.to_owned()));
        // A member that does not parse is left out: the listing shows what
        // it can, and a load of that session reports it unreadable.
        for (key, text) in [
            (SINCE_KEY, self.since),
            (SEEN_KEY, self.seen),
            (META_KEY, self.meta),
        ] {
            if let Some(value) = text.and_then(|t| serde_json::from_str(&t).ok()) {
                record.insert(key, value);
            }
        }
        let ms = u64::try_from(self.expires_ms).unwrap_or(0);
        let expires = UNIX_EPOCH + Duration::from_millis(ms);
        Listed::new(self.id_hash, record, expires)
    }
}

fn since(listed: &Listed) -> Option<u64> {
    listed.record.get(SINCE_KEY).and_then(Value::as_u64)
}

impl UserIndex for SqlStore {
    async fn sessions_of(&self, user: &str) -> Result<Vec<Listed>, StoreError> {
        let text = user_text(user)?;
        let rows = on_backend!(self, b => b.sessions_of(&text).await)?;
        // The statement lists live rows only (on PostgreSQL by the
        // database's clock, on SQLite by the application's).
        let mut listed: Vec<Listed> = rows.into_iter().map(|r| r.into_listed(user)).collect();
        listed.sort_by(|a, b| since(a).cmp(&since(b)).then(a.handle.cmp(&b.handle)));
        Ok(listed)
    }

    async fn end_session(&self, user: &str, handle: &str) -> Result<bool, StoreError> {
        if !is_handle(handle) {
            return Ok(false);
        }
        let text = user_text(user)?;
        // SECURITY K57: one statement that deletes the row only if it is
        // live and bound to this user.
        on_backend!(self, b => b.end_session(handle, &text).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_lowercase_hex_digests() {
        let h = crate::store::storage_key("", "some session id");
        assert!(is_handle(&h));
        assert!(!is_handle(&h.to_uppercase()));
        assert!(!is_handle(&h[1..]));
        assert!(!is_handle(&format!("{h}0")));
        assert!(!is_handle("' OR 1=1 --"));
    }

    #[test]
    fn the_user_text_is_the_stored_value_text() {
        let mut r = Record::new();
        r.insert(USER_KEY, Value::String("a\"l\\ice ∑".to_owned()));
        let data = super::super::format::encode(&r).unwrap();
        let stored: serde_json::Map<String, Value> = serde_json::from_str(&data).unwrap();
        assert_eq!(
            stored[USER_KEY],
            Value::String(user_text("a\"l\\ice ∑").unwrap())
        );
    }

    #[test]
    fn a_row_becomes_a_listing_of_its_user_keys() {
        let row = UserRow {
            id_hash: "ab".repeat(32),
            since: Some("1700000000".to_owned()),
            seen: Some("not json".to_owned()),
            meta: Some(r#"{"device":"Firefox"}"#.to_owned()),
            expires_ms: 1_700_000_060_000,
        };
        let l = row.into_listed("ada");
        assert_eq!(l.handle, "ab".repeat(32));
        assert_eq!(crate::store::bound_user(&l.record), Some("ada"));
        assert_eq!(since(&l), Some(1_700_000_000));
        assert!(l.record.get(SEEN_KEY).is_none());
        assert_eq!(l.record.get(META_KEY).unwrap()["device"], "Firefox");
        assert_eq!(l.expires, UNIX_EPOCH + Duration::from_secs(1_700_000_060));
    }
}
