//! The Lua scripts that save a session in one round trip each.
//!
//! `create`, `update` and `take` touch only `KEYS[1]`, the session's own
//! hash, so they run on a Redis Cluster too (one session, one slot); so do
//! the cluster halves of the user index (`adopt`, `unlist`, `peek`,
//! `prune`, one key each). The single-node scripts of the user index
//! (`bind_create`, `rotate`, `list`, and `rebind` and `end` given a prefix)
//! touch a record and its index in one step. They are sent with `EVALSHA`;
//! a server that has not seen a script yet answers `NOSCRIPT` and the
//! script is loaded once.

use std::sync::OnceLock;
use std::time::Duration;

use deadpool_redis::redis::{Script, ScriptInvocation};

use super::format::{field, INDEX_FIELD, VERSION, VERSION_FIELD};
use crate::error::StoreError;
use crate::store::{Changes, Record};

/// Creates the hash only if the key does not exist; answers 1 or 0.
const CREATE: &str = include_str!("create.lua");
/// Applies changes only if the record exists; answers 1, 2 (emptied) or 0.
const UPDATE: &str = include_str!("update.lua");
/// Applies changes and takes the record out, only if it exists.
const TAKE: &str = include_str!("take.lua");
/// The functions the user-index scripts share, prepended to each.
const USERS: &str = include_str!("users.lua");

/// The longest TTL sent to Redis (about 285,000 years): beyond any session,
/// far below where `PEXPIRE` overflows.
const MAX_TTL_MS: u64 = 1 << 53;

pub(super) struct Scripts {
    create: Script,
    update: Script,
    take: Script,
    pub(super) users: UserScripts,
}

/// The scripts of the user index, each with `users.lua` in front.
pub(super) struct UserScripts {
    pub(super) bind_create: Script,
    pub(super) rebind: Script,
    pub(super) rotate: Script,
    pub(super) end: Script,
    pub(super) unlist: Script,
    pub(super) adopt: Script,
    pub(super) list: Script,
    pub(super) peek: Script,
    pub(super) prune: Script,
}

fn with_users(body: &str) -> Script {
    Script::new(&format!("{USERS}\n{body}"))
}

pub(super) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        create: Script::new(CREATE),
        update: Script::new(UPDATE),
        take: Script::new(TAKE),
        users: UserScripts {
            bind_create: with_users(include_str!("bind_create.lua")),
            rebind: with_users(include_str!("rebind.lua")),
            rotate: with_users(include_str!("rotate.lua")),
            end: with_users(include_str!("end.lua")),
            unlist: with_users(include_str!("unlist.lua")),
            adopt: with_users(include_str!("adopt.lua")),
            list: with_users(include_str!("list.lua")),
            peek: with_users(include_str!("peek.lua")),
            prune: Script::new(include_str!("prune.lua")),
        },
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
        push_record(&mut call, record, ttl)?;
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

    /// `take.lua`: the same changes, the record taken out; a record listed
    /// in a user's index stays behind as a ghost for `ghost` (see `users.rs`).
    pub(super) fn take(
        &self,
        key: &str,
        record: &Record,
        changes: &Changes,
        ghost: Duration,
    ) -> Result<ScriptInvocation<'_>, StoreError> {
        self.changes(&self.take, key, record, changes, ghost)
    }

    /// `create.lua` for `record` under `key`, naming the user index that
    /// lists it (a cluster's first step of a bound creation).
    pub(super) fn create_listed(
        &self,
        key: &str,
        record: &Record,
        ttl: Duration,
        index: &str,
    ) -> Result<ScriptInvocation<'_>, StoreError> {
        let mut call = self.create(key, record, ttl)?;
        call.arg(INDEX_FIELD).arg(index);
        Ok(call)
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
        push_changes(&mut call, record, changes, ttl)?;
        Ok(call)
    }
}

/// Appends `changes` in `update.lua`'s layout: the TTL, the version field
/// and its value, the clear flag, the removed fields, the fields set.
pub(super) fn push_changes(
    call: &mut ScriptInvocation<'_>,
    record: &Record,
    changes: &Changes,
    ttl: Duration,
) -> Result<(), StoreError> {
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
    Ok(())
}

/// `create.lua`'s record arguments (version field, then field, value, ...)
/// for `record`, after the arguments already on `call`.
pub(super) fn push_record(
    call: &mut ScriptInvocation<'_>,
    record: &Record,
    ttl: Duration,
) -> Result<(), StoreError> {
    call.arg(ttl_ms(ttl)).arg(VERSION_FIELD).arg(VERSION);
    for (k, v) in record.iter() {
        call.arg(field(k).as_ref()).arg(json(v)?);
    }
    Ok(())
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
