//! The Lua scripts that save a session in one round trip each.
//!
//! Each script touches only `KEYS[1]`, the session's own hash, so it runs on
//! a Redis Cluster too (one session, one slot). They are sent with `EVALSHA`;
//! a server that has not seen a script yet answers `NOSCRIPT` and the script
//! is loaded once.

use std::sync::OnceLock;
use std::time::Duration;

use deadpool_redis::redis::{Script, ScriptInvocation};

use super::format::{field, VERSION, VERSION_FIELD};
use crate::error::StoreError;
use crate::store::{Changes, Record};

/// Creates the hash only if the key does not exist; answers 1 or 0.
const CREATE: &str = include_str!("create.lua");
/// Applies changes only if the record exists; answers 1, 2 (emptied) or 0.
const UPDATE: &str = include_str!("update.lua");
/// Applies changes and takes the record out, only if it exists.
const TAKE: &str = include_str!("take.lua");

/// The longest TTL sent to Redis (about 285,000 years): beyond any session,
/// far below where `PEXPIRE` overflows.
const MAX_TTL_MS: u64 = 1 << 53;

pub(super) struct Scripts {
    create: Script,
    update: Script,
    take: Script,
}

pub(super) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        create: Script::new(CREATE),
        update: Script::new(UPDATE),
        take: Script::new(TAKE),
    })
}

/// The TTL in milliseconds, at least 1 (a zero `PEXPIRE` would delete the
/// record the script just wrote) and at most [`MAX_TTL_MS`].
pub(super) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TTL_MS)
}

fn json(value: &serde_json::Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::encode)
}

impl Scripts {
    /// `create.lua` for `record` under `key`.
    pub(super) fn create(
        &self,
        key: &str,
        record: &Record,
        ttl: Duration,
    ) -> Result<ScriptInvocation<'_>, StoreError> {
        let mut call = self.create.key(key);
        call.arg(ttl_ms(ttl)).arg(VERSION_FIELD).arg(VERSION);
        for (k, v) in record.iter() {
            call.arg(field(k).as_ref()).arg(json(v)?);
        }
        Ok(call)
    }

    /// `create.lua` for fields and values already in the hash's layout
    /// (what `take.lua` answered).
    pub(super) fn create_raw(
        &self,
        key: &str,
        fields: &[Vec<u8>],
        ttl: Duration,
    ) -> ScriptInvocation<'_> {
        let mut call = self.create.key(key);
        call.arg(ttl_ms(ttl)).arg(VERSION_FIELD).arg(VERSION);
        for f in fields {
            call.arg(f.as_slice());
        }
        call
    }

    /// `update.lua` applying `changes` to the record under `key`, with the
    /// values of the keys set taken from `record`.
    pub(super) fn update(
        &self,
        key: &str,
        record: &Record,
        changes: &Changes,
        ttl: Duration,
    ) -> Result<ScriptInvocation<'_>, StoreError> {
        self.changes(&self.update, key, record, changes, ttl)
    }

    /// `take.lua`: the same changes, the record taken out.
    pub(super) fn take(
        &self,
        key: &str,
        record: &Record,
        changes: &Changes,
    ) -> Result<ScriptInvocation<'_>, StoreError> {
        self.changes(&self.take, key, record, changes, Duration::ZERO)
    }

    fn changes<'a>(
        &self,
        script: &'a Script,
        key: &str,
        record: &Record,
        changes: &Changes,
        ttl: Duration,
    ) -> Result<ScriptInvocation<'a>, StoreError> {
        let mut call = script.key(key);
        let removed: Vec<&str> = changes.removed().collect();
        call.arg(ttl_ms(ttl))
            .arg(VERSION_FIELD)
            .arg(VERSION)
            .arg(if changes.cleared() { "1" } else { "0" })
            .arg(removed.len());
        for k in removed {
            call.arg(field(k).as_ref());
        }
        for k in changes.set() {
            // A key listed as set but missing from the record was removed
            // later in the request; `Record::apply` skips it the same way.
            if let Some(v) = record.get(k) {
                call.arg(field(k).as_ref()).arg(json(v)?);
            }
        }
        Ok(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_clamped_not_wrapped() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_secs(2)), 2000);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS);
    }
}
