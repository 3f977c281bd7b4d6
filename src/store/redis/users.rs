//! [`UserIndex`] for [`RedisStore`]: a user's sessions, listed and ended.
//!
//! # Layout
//!
//! Each user has one index: a sorted set under `prefix` + `user:` + hex
//! SHA-256 of the user id. Its members are the handles of the user's records
//! (the hex SHA-256 of the cookie value, which is also the record's key
//! without the prefix), scored by when they were indexed. A bound record
//! names its index in the reserved field `\0u`. Neither holds a user id in
//! a key, nor any session id or cookie value anywhere.
//!
//! An entry is dropped when the index is next written or listed, if its
//! record is gone or names another index (deleted, expired, rebound): there
//! is no score-based expiry, so extending a record's TTL never has to touch
//! its index, and a live record is never dropped. Past the per-user cap
//! (`RedisStoreBuilder::with_max_sessions_per_user`) the oldest sessions are
//! ended, with a WARN. Requests that do not change the binding (reads,
//! writes of other keys, TTL refreshes) run exactly the commands they ran
//! before: the index is written only at a bind, a rebind, an unbind or a
//! rotation of a bound session. `delete` (a logout) leaves its entry to be
//! dropped lazily.
//!
//! # A single node
//!
//! Every write of the index runs in the same script as the record's write
//! (`bind_create.lua`, `rebind.lua`, `rotate.lua`, `end.lua`), and a listing
//! is one script (`list.lua`); scripts reach the record keys they derive from
//! the index, which a single node allows. Each step is atomic, so a rotation
//! and the end of its old record are ordered: either the rotation runs first
//! (the new handle is listed, the old one gone) or it finds the record gone.
//!
//! # A cluster
//!
//! A record and its index live in different slots, so no script can touch
//! both. The writes are ordered so that no failure leaves a usable record
//! unlisted: a creation or rotation writes the record first and lists it
//! after, and hands out the new cookie value only once it is listed (a
//! failure in between leaves a record no cookie points at). Ending a
//! session and rotating one use the protocol below.
//!
//! - **End** `(u, h)`: (E1) in `u`'s index, remove `h` and, if it was
//!   listed, leave a tombstone `~h` lasting `T`; (E2) delete the record if
//!   it is bound to `u`.
//! - **Rotate** `o` to `n`: (R1) apply the changes to `o` and take it out;
//!   if it was listed, leave it behind as a *ghost* (its fields without the
//!   version field: nothing loads, updates or rotates it, but listings show
//!   it and E2 deletes it); (R2) create `n`; (R3) in the index, in one
//!   script, refuse if `~o` or `~n` is there, else replace `o` by `n`; (R4)
//!   delete the ghost. Refused: delete `n`, answer `Gone`.
//! - **List**: read the members, read each record not read yet, read the
//!   members again, until two reads agree; drop the members found gone (a
//!   member is dropped only if its score is the one read, so a member listed
//!   again meanwhile stays).
//!
//! Why a rotation racing `end_session(u, o)` either moves the record before
//! it is ended, or answers `Gone`: `o` stays listed from its creation until
//! R3 (a listing never drops it: until R4 it is a live record or a ghost).
//! If R1 runs after E2, `o` is gone and R1 answers `Gone`. Otherwise R1 runs
//! before E2, and E1 and R3 are two scripts on one key, so one runs first.
//! R3 first: `n` is listed before E1, so every listing after E1 shows it (R2
//! came before R3). E1 first: `o` was still listed, so E1 left `~o`, and R3
//! finds it unless it runs `T` or more after E1. Both operations check their
//! own duration: a rotation that took more than `B` from before R1 to R3's
//! reply deletes `n` and fails; an end that took more than `B` from before
//! E1 to E2's reply fails. R3 − E1 ≤ (R3 − R1) + (E2 − E1) < 2B when R1 runs
//! after E1, and < B when it runs before, and `T` = 3B (B is 40 s, or five
//! times the connect plus command timeouts if that is longer), so R3 finds
//! the tombstone; the margin covers the index node's clock being stepped.
//!
//! And why "end all" cannot miss such a rotation: each of its rounds lists,
//! then ends what it listed, until a listing shows nothing new. If R3 runs
//! before the final listing's last read of the members, `n` is in that read
//! and in the one before it (they agree); it was read after it joined, so
//! after R2, and shown: it was ended. If R3 runs after that read, `o` was in
//! it, and in the one before, and was read after it joined and before R3,
//! so before R4: live or a ghost, it was shown and ended, and the argument
//! above applies to that end.
//!
//! A rotation on a cluster therefore costs, when the record is bound, R1–R4
//! (four round trips, the new record listed in the third); a bound creation
//! two. A rotation that rebinds a record to another user checks tombstones
//! in the new user's index only: the new record belongs to that user.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use deadpool_redis::redis::{self, Value};

use super::format::{self, field, INDEX_FIELD};
use super::scripts::{push_changes, push_record, scripts};
use super::{Failure, RedisStore, CREATE_ATTEMPTS};
use crate::error::StoreError;
use crate::store::{
    bound_user, storage_key, Changes, Deadline, Listed, Record, Updated, UserIndex,
};
use crate::users::{META_KEY, SEEN_KEY, SINCE_KEY, USER_KEY};

/// How many sessions one user may have before the oldest are ended.
pub(super) const DEFAULT_MAX_PER_USER: usize = 1000;

/// The record keys a listing reads, in the order the scripts answer them.
const LISTED: [&str; 4] = [USER_KEY, SINCE_KEY, SEEN_KEY, META_KEY];

/// The most reads of a cluster index one listing makes while the members
/// keep changing.
const MAX_READS: usize = 8;

/// How many records a cluster listing reads at once.
const READS_AT_ONCE: usize = 64;

/// What a request's changes do to the record's binding, mirroring
/// [`Record::apply`]: it clears, then removes, then sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Binding<'a> {
    /// The stored binding stays as it is.
    Unchanged,
    /// Bound to no user afterwards.
    Unbound,
    /// Bound to this user afterwards.
    To(&'a str),
}

/// How `changes` leave the binding of the stored record.
pub(super) fn binding<'a>(record: &'a Record, changes: &Changes) -> Binding<'a> {
    if changes.set.contains(USER_KEY) {
        match record.get(USER_KEY) {
            Some(v) => return v.as_str().map_or(Binding::Unbound, Binding::To),
            // Listed as set but gone from the record: `apply` skips it.
            None if !changes.cleared() => return Binding::Unchanged,
            None => return Binding::Unbound,
        }
    }
    if changes.cleared() || changes.removed.contains(USER_KEY) {
        return Binding::Unbound;
    }
    Binding::Unchanged
}

/// `true` for 64 lowercase hex digits: a handle this store hands out.
fn is_handle(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One record as a listing read it.
struct Entry {
    handle: String,
    /// Its score in the index: when it was indexed.
    score: f64,
    pttl: i64,
    /// The values of [`LISTED`], raw JSON.
    values: Vec<Option<Vec<u8>>>,
}

impl Entry {
    fn listed(&self, now: SystemTime) -> Listed {
        let mut record = Record::new();
        for (key, raw) in LISTED.iter().zip(&self.values) {
            if let Some(v) = raw.as_deref().and_then(|b| serde_json::from_slice(b).ok()) {
                record.insert(*key, v);
            }
        }
        // No TTL (-1) does not happen to a session; read it as far away.
        let ttl = u64::try_from(self.pttl).unwrap_or(u64::from(u32::MAX) * 1000);
        let expires = now
            .checked_add(Duration::from_millis(ttl))
            .unwrap_or(now + Duration::from_secs(u64::from(u32::MAX)));
        Listed::new(self.handle.clone(), record, expires)
    }
}

/// Time limits of the cluster protocol (see the module docs).
struct Limits {
    /// How long an end or a rotation may take (B).
    budget: Duration,
    /// How long a tombstone lasts (T = 3B).
    tombstone: Duration,
    /// How long a ghost lasts if the rotation never deletes it (2B).
    ghost: Duration,
}

impl RedisStore {
    /// `true` unless the store runs on a Redis Cluster.
    pub(super) fn single_node(&self) -> bool {
        #[cfg(feature = "redis-cluster")]
        if matches!(self.inner.backend, super::conn::Backend::Cluster(_)) {
            return false;
        }
        true
    }

    fn index_key(&self, user: &str) -> String {
        let mut prefix = String::with_capacity(self.inner.prefix.len() + 5);
        prefix.push_str(&self.inner.prefix);
        prefix.push_str("user:");
        storage_key(&prefix, user)
    }

    /// The handle of the record under `key`.
    fn handle_of<'k>(&self, key: &'k str) -> &'k str {
        &key[self.inner.prefix.len()..]
    }

    fn limits(&self) -> Limits {
        let t = self.inner.timeouts;
        let budget = ((t.connect + t.command) * 5).max(Duration::from_secs(40));
        Limits {
            budget,
            tombstone: budget * 3,
            ghost: budget * 2,
        }
    }

    fn cap(&self) -> usize {
        self.inner.max_per_user
    }

    fn warn_ended(&self, ended: i64) {
        if ended > 0 {
            // SECURITY K56: bounded, and it says so.
            tracing::warn!(
                ended,
                max_sessions_per_user = self.cap(),
                "a user passed the most sessions a user may have in redis; ended the oldest"
            );
        }
    }

    /// Deletes `key`, for a record no cookie will point at; a failure only
    /// leaves it to its TTL.
    async fn discard(&self, key: &str) {
        let mut del = redis::cmd("DEL");
        del.arg(key);
        if let Err(err) = self.run::<i64>(del).await {
            tracing::debug!(error = %err, "could not delete an unused session record");
        }
    }

    /// `create` of a record bound to `user`.
    pub(super) async fn create_bound(
        &self,
        record: &Record,
        expires: Deadline,
        user: &str,
    ) -> Result<String, StoreError> {
        let index = self.index_key(user);
        for _ in 0..CREATE_ATTEMPTS {
            let id = (self.inner.ids)();
            let key = self.key(id.as_str());
            let handle = self.handle_of(&key);
            if self.single_node() {
                let mut call = scripts().users.bind_create.key(&key);
                call.key(&index)
                    .arg(handle)
                    .arg(self.cap())
                    .arg(&self.inner.prefix);
                push_record(&mut call, record, expires.ttl())?;
                let reply: Vec<i64> = self.run(call).await?;
                match reply[..] {
                    [1, ended] => {
                        self.warn_ended(ended);
                        if ended > 0 {
                            // Sessions the cap ended: fenced as a logout is.
                            self.after_write(None, true).await;
                        }
                        return Ok(id.as_str().to_owned());
                    }
                    [0, _] => {}
                    _ => return Err(StoreError::backend(Failure::UnexpectedReply)),
                }
            } else {
                let call = scripts().create_listed(&key, record, expires.ttl(), &index)?;
                match self.run::<i64>(call).await? {
                    1 => {
                        return match self.adopt(&index, "", handle).await {
                            Ok(true) => Ok(id.as_str().to_owned()),
                            Ok(false) => {
                                self.discard(&key).await;
                                Err(StoreError::backend(Failure::UnexpectedReply))
                            }
                            Err(err) => {
                                self.discard(&key).await;
                                Err(err)
                            }
                        };
                    }
                    0 => {}
                    _ => return Err(StoreError::backend(Failure::UnexpectedReply)),
                }
            }
            // SECURITY A2: never overwrite; mint another id.
            tracing::warn!("session id collision in redis store; minting another id");
        }
        Err(StoreError::backend(Failure::NoFreeId))
    }

    /// `update` whose changes bind, rebind or unbind the record.
    pub(super) async fn update_binding(
        &self,
        value: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
        to: Option<&str>,
    ) -> Result<Updated, StoreError> {
        let key = self.key(value);
        let handle = self.handle_of(&key);
        let dest = to.map(|u| self.index_key(u));
        let single = self.single_node();
        let mut call = scripts().users.rebind.key(&key);
        if let (true, Some(dest)) = (single, &dest) {
            call.key(dest);
        }
        call.arg(dest.as_deref().unwrap_or(""))
            .arg(handle)
            .arg(self.cap())
            .arg(if single { "1" } else { "0" })
            .arg(&self.inner.prefix);
        push_changes(&mut call, record, changes, expires.ttl())?;
        let reply: (i64, String, i64) = self.run(call).await?;
        match reply {
            // SECURITY F28: deleted or expired; nothing was written.
            (0, ..) => Ok(Updated::Gone),
            (2, ..) => Ok(Updated::Emptied),
            (1, _, ended) if single => {
                self.warn_ended(ended);
                Ok(Updated::Written(value.to_owned()))
            }
            (1, was, _) => {
                // The record is bound before it is listed: a failure here
                // logs the session out rather than leave it unlisted. The
                // old index drops its entry when next read.
                if let Some(dest) = dest.filter(|d| *d != was) {
                    match self.adopt(&dest, "", handle).await {
                        Ok(true) => {}
                        Ok(false) => {
                            self.discard(&key).await;
                            return Ok(Updated::Gone);
                        }
                        Err(err) => {
                            self.discard(&key).await;
                            return Err(err);
                        }
                    }
                }
                Ok(Updated::Written(value.to_owned()))
            }
            _ => Err(StoreError::backend(Failure::UnexpectedReply)),
        }
    }

    /// `rotate` on a single node: one script.
    pub(super) async fn rotate_single(
        &self,
        old: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
    ) -> Result<Updated, StoreError> {
        let old_key = self.key(old);
        let (mode, dest) = match binding(record, changes) {
            Binding::Unchanged => ("keep", None),
            Binding::Unbound => ("none", None),
            Binding::To(user) => ("to", Some(self.index_key(user))),
        };
        for _ in 0..CREATE_ATTEMPTS {
            let id = (self.inner.ids)();
            let key = self.key(id.as_str());
            let mut call = scripts().users.rotate.key(&old_key);
            call.key(&key);
            if let Some(dest) = &dest {
                call.key(dest);
            }
            call.arg(mode)
                .arg(self.handle_of(&old_key))
                .arg(self.handle_of(&key))
                .arg(self.cap())
                .arg(&self.inner.prefix);
            push_changes(&mut call, record, changes, expires.ttl())?;
            let reply: Vec<i64> = self.run(call).await?;
            match reply[..] {
                [-1] => {
                    tracing::warn!("session id collision in redis store; minting another id");
                }
                // SECURITY I39: the old record is gone; nothing comes back.
                [0] => return Ok(Updated::Gone),
                [2] => return Ok(Updated::Emptied),
                [1, ended] => {
                    self.warn_ended(ended);
                    return Ok(Updated::Written(id.as_str().to_owned()));
                }
                _ => return Err(StoreError::backend(Failure::UnexpectedReply)),
            }
        }
        Err(StoreError::backend(Failure::NoFreeId))
    }

    /// `rotate` on a cluster: R1–R4 of the module docs.
    pub(super) async fn rotate_cluster(
        &self,
        old: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
    ) -> Result<Updated, StoreError> {
        let limits = self.limits();
        let started = Instant::now();
        let old_key = self.key(old);
        let call = scripts().take(&old_key, record, changes, limits.ghost)?;
        let (was, fields) = match self.run::<Value>(call).await? {
            Value::Int(0) => return Ok(Updated::Gone),
            Value::Int(2) => return Ok(Updated::Emptied),
            Value::Array(mut items) if !items.is_empty() => {
                let fields = items.split_off(1);
                let was = items.pop().map(text).unwrap_or_default();
                let fields = format::raw_fields(fields).map_err(StoreError::backend)?;
                (was, fields)
            }
            _ => return Err(StoreError::backend(Failure::UnexpectedReply)),
        };
        let dest = match binding(record, changes) {
            Binding::Unchanged => (!was.is_empty()).then(|| was.clone()),
            Binding::Unbound => None,
            Binding::To(user) => Some(self.index_key(user)),
        };
        let mut created = None;
        for _ in 0..CREATE_ATTEMPTS {
            let id = (self.inner.ids)();
            let key = self.key(id.as_str());
            let mut call = scripts().create_raw(&key, &fields, expires.ttl());
            if let Some(dest) = &dest {
                call.arg(INDEX_FIELD).arg(dest);
            }
            match self.run::<i64>(call).await? {
                1 => {
                    created = Some((id, key));
                    break;
                }
                0 => tracing::warn!("session id collision in redis store; minting another id"),
                _ => return Err(StoreError::backend(Failure::UnexpectedReply)),
            }
        }
        let Some((id, key)) = created else {
            return Err(StoreError::backend(Failure::NoFreeId));
        };
        if let Some(dest) = dest {
            let from = if dest == was {
                self.handle_of(&old_key)
            } else {
                ""
            };
            let listed = self.adopt(&dest, from, self.handle_of(&key)).await;
            match listed {
                Ok(true) if started.elapsed() <= limits.budget => {}
                Ok(listed) => {
                    self.discard(&key).await;
                    self.discard(&old_key).await;
                    if listed {
                        // SECURITY K57: too slow to rely on the tombstone.
                        return Err(StoreError::unavailable(Failure::CommandTimeout));
                    }
                    // SECURITY K57: its old record was ended meanwhile.
                    return Ok(Updated::Gone);
                }
                Err(err) => {
                    self.discard(&key).await;
                    return Err(err);
                }
            }
        }
        if !was.is_empty() {
            self.discard(&old_key).await;
        }
        Ok(Updated::Written(id.as_str().to_owned()))
    }

    /// Cluster R3 (`adopt.lua`): lists `new` in `index` in place of `old`;
    /// `false` when a tombstone refused it. Past the cap, ends the oldest.
    async fn adopt(&self, index: &str, old: &str, new: &str) -> Result<bool, StoreError> {
        let mut call = scripts().users.adopt.key(index);
        call.arg(old).arg(new).arg(self.cap());
        let over: i64 = self.run(call).await?;
        if over < 0 {
            return Ok(false);
        }
        if over > 0 {
            // The login itself succeeded; ending the oldest may wait for
            // the next one if it fails now.
            if let Err(err) = self.end_beyond_cap(index, new).await {
                tracing::warn!(error = %err, "could not end the oldest sessions of a user past the cap");
            }
        }
        Ok(true)
    }

    /// Cluster: drops the index's dead entries and ends the oldest live
    /// sessions beyond the cap, never `keep`.
    async fn end_beyond_cap(&self, index: &str, keep: &str) -> Result<(), StoreError> {
        let mut live = self.read_cluster(index).await?;
        live.sort_by(|a, b| a.score.total_cmp(&b.score));
        let over = live.len().saturating_sub(self.cap());
        let mut ended = 0;
        for e in live.iter().filter(|e| e.handle != keep).take(over) {
            let Some(user) = e.values[0].as_deref() else {
                continue;
            };
            if self.end_cluster(index, &e.handle, user).await? {
                ended += 1;
            }
        }
        self.warn_ended(ended);
        Ok(())
    }

    /// Cluster E1 and E2.
    async fn end_cluster(
        &self,
        index: &str,
        handle: &str,
        user: &[u8],
    ) -> Result<bool, StoreError> {
        let limits = self.limits();
        let started = Instant::now();
        let mut unlist = scripts().users.unlist.key(index);
        unlist
            .arg(handle)
            .arg(u64::try_from(limits.tombstone.as_micros()).unwrap_or(u64::MAX));
        let _listed: i64 = self.run(unlist).await?;
        let key = format!("{}{handle}", self.inner.prefix);
        let mut end = scripts().users.end.key(&key);
        end.arg(field(USER_KEY).as_ref())
            .arg(user)
            .arg("0")
            .arg(handle);
        let ended: i64 = self.run(end).await?;
        if started.elapsed() > limits.budget {
            // SECURITY K57: too slow to rely on the tombstone; the caller
            // lists and ends again.
            return Err(StoreError::unavailable(Failure::CommandTimeout));
        }
        Ok(ended == 1)
    }

    /// Single node: one script reads the index and its records.
    async fn read_single(&self, index: &str) -> Result<Vec<Entry>, StoreError> {
        let mut call = scripts().users.list.key(index);
        call.arg(&self.inner.prefix);
        for key in LISTED {
            call.arg(field(key).as_ref());
        }
        let Value::Array(items) = self.run::<Value>(call).await? else {
            return Err(StoreError::backend(Failure::UnexpectedReply));
        };
        let width = 2 + LISTED.len();
        if items.len() % width != 0 {
            return Err(StoreError::backend(Failure::UnexpectedReply));
        }
        let mut out = Vec::with_capacity(items.len() / width);
        let mut items = items.into_iter();
        while let Some(handle) = items.next() {
            let pttl = items.next().and_then(int).unwrap_or(-2);
            let values = items.by_ref().take(LISTED.len()).map(bulk).collect();
            out.push(Entry {
                handle: text(handle),
                score: out.len() as f64,
                pttl,
                values,
            });
        }
        Ok(out)
    }

    /// Cluster: reads the members and their records until two reads of the
    /// members agree, drops the dead, answers the records listed here.
    async fn read_cluster(&self, index: &str) -> Result<Vec<Entry>, StoreError> {
        let mut seen: Vec<Entry> = Vec::new();
        let mut last: Option<Vec<(String, f64)>> = None;
        for _ in 0..MAX_READS {
            let members = self.members(index).await?;
            let fresh: Vec<&(String, f64)> = members
                .iter()
                .filter(|(h, _)| !seen.iter().any(|e| e.handle == *h))
                .collect();
            for chunk in fresh.chunks(READS_AT_ONCE) {
                let reads = chunk.iter().map(|(h, _)| self.peek(h));
                for (read, (handle, score)) in join_all(reads).await.into_iter().zip(chunk) {
                    let (pttl, names, values) = read?;
                    seen.push(Entry {
                        handle: handle.clone(),
                        score: *score,
                        // Gone, or listed in another index: dropped below.
                        pttl: if names.as_deref() == Some(index.as_bytes()) {
                            pttl
                        } else {
                            -2
                        },
                        values,
                    });
                }
            }
            let agree = last.as_ref() == Some(&members);
            last = Some(members);
            if agree {
                break;
            }
        }
        let members = last.unwrap_or_default();
        seen.retain(|e| members.iter().any(|(h, _)| *h == e.handle));
        let (live, dead): (Vec<Entry>, Vec<Entry>) = seen.into_iter().partition(|e| e.pttl != -2);
        if !dead.is_empty() {
            let mut prune = scripts().users.prune.key(index);
            for e in &dead {
                prune.arg(&e.handle).arg(e.score.to_string());
            }
            let _dropped: i64 = self.run(prune).await?;
        }
        Ok(live)
    }

    /// The handles in a cluster index with their scores, tombstones left out.
    async fn members(&self, index: &str) -> Result<Vec<(String, f64)>, StoreError> {
        let mut zrange = redis::cmd("ZRANGE");
        zrange.arg(index).arg(0).arg(-1).arg("WITHSCORES");
        let reply: Value = self.run(zrange).await?;
        let mut flat = Vec::new();
        match reply {
            Value::Array(items) => {
                for item in items {
                    match item {
                        // RESP3: [member, score] pairs.
                        Value::Array(pair) => flat.extend(pair),
                        other => flat.push(other),
                    }
                }
            }
            Value::Nil => {}
            _ => return Err(StoreError::backend(Failure::UnexpectedReply)),
        }
        if flat.len() % 2 != 0 {
            return Err(StoreError::backend(Failure::UnexpectedReply));
        }
        let mut out = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(m), Some(s)) = (flat.next(), flat.next()) {
            let handle = text(m);
            let score = match s {
                Value::Double(d) => d,
                other => text(other).parse().unwrap_or(f64::NAN),
            };
            if is_handle(&handle) {
                out.push((handle, score));
            }
        }
        Ok(out)
    }

    /// Cluster: one record's TTL, the index it names, the listed values.
    async fn peek(
        &self,
        handle: &str,
    ) -> Result<(i64, Option<Vec<u8>>, Vec<Option<Vec<u8>>>), StoreError> {
        let key = format!("{}{handle}", self.inner.prefix);
        let mut call = scripts().users.peek.key(&key);
        for k in LISTED {
            call.arg(field(k).as_ref());
        }
        let Value::Array(items) = self.run::<Value>(call).await? else {
            return Err(StoreError::backend(Failure::UnexpectedReply));
        };
        if items.len() != 2 + LISTED.len() {
            return Err(StoreError::backend(Failure::UnexpectedReply));
        }
        let mut items = items.into_iter();
        let pttl = items.next().and_then(int).unwrap_or(-2);
        let names = items.next().and_then(bulk);
        Ok((pttl, names, items.map(bulk).collect()))
    }
}

impl UserIndex for RedisStore {
    async fn sessions_of(&self, user: &str) -> Result<Vec<Listed>, StoreError> {
        let index = self.index_key(user);
        let entries = if self.single_node() {
            self.read_single(&index).await?
        } else {
            self.read_cluster(&index).await?
        };
        let now = SystemTime::now();
        let mut listed: Vec<(u64, f64, Listed)> = entries
            .into_iter()
            .map(|e| (e.score, e.listed(now)))
            // SECURITY K57: only records bound to this very user.
            .filter(|(_, l)| bound_user(&l.record) == Some(user))
            .map(|(score, l)| {
                let since = l.record.get(SINCE_KEY).and_then(serde_json::Value::as_u64);
                (since.unwrap_or(u64::MAX), score, l)
            })
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        Ok(listed.into_iter().map(|(_, _, l)| l).collect())
    }

    async fn end_session(&self, user: &str, handle: &str) -> Result<bool, StoreError> {
        if !is_handle(handle) {
            return Ok(false);
        }
        let index = self.index_key(user);
        let user = serde_json::to_string(user).map_err(StoreError::encode)?;
        let key = format!("{}{handle}", self.inner.prefix);
        if !self.single_node() {
            let done = self.end_cluster(&index, handle, user.as_bytes()).await;
            self.after_write(Some(&key), done.is_ok()).await;
            return done;
        }
        let mut call = scripts().users.end.key(&key);
        call.key(&index)
            .arg(field(USER_KEY).as_ref())
            .arg(&user)
            .arg("1")
            .arg(handle);
        // SECURITY K57: the script deletes only a record bound to `user`.
        let done = self.run::<i64>(call).await;
        // The client cache (if on) must not answer for an ended session.
        self.after_write(Some(&key), done.is_ok()).await;
        Ok(done? == 1)
    }
}

fn int(v: Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(n),
        _ => None,
    }
}

fn bulk(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::Nil => None,
        v => format::bytes(v).ok(),
    }
}

fn text(v: Value) -> String {
    bulk(v)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// Runs `futures` concurrently (commands multiplexed on the held
/// connection); their outputs in order.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn changes(set: &[&str], removed: &[&str], cleared: bool) -> Changes {
        let mut c = Changes::default();
        if cleared {
            c.record_clear();
        }
        for k in set {
            c.record_set(k);
        }
        for k in removed {
            c.record_remove(k);
        }
        c
    }

    #[test]
    fn binding_agrees_with_changes_binding() {
        let mut r = Record::new();
        r.insert(USER_KEY, json!("ada"));
        r.insert("cart", json!(1));
        for (set, removed, cleared) in [
            (&[USER_KEY][..], &[][..], false),
            (&["cart"], &[], false),
            (&[], &[USER_KEY], false),
            (&["cart"], &[], true),
            (&[], &["cart"], false),
        ] {
            let c = changes(set, removed, cleared);
            let moved = binding(&r, &c) != Binding::Unchanged;
            assert_eq!(moved, crate::store::changes_binding(&c), "{c:?}");
        }
    }

    #[test]
    fn binding_mirrors_record_apply() {
        let mut r = Record::new();
        r.insert(USER_KEY, json!("ada"));
        assert_eq!(
            binding(&r, &changes(&[USER_KEY], &[], false)),
            Binding::To("ada")
        );
        assert_eq!(
            binding(&r, &changes(&["cart"], &[], false)),
            Binding::Unchanged
        );
        assert_eq!(
            binding(&r, &changes(&[], &[USER_KEY], false)),
            Binding::Unbound
        );
        assert_eq!(
            binding(&r, &changes(&["cart"], &[], true)),
            Binding::Unbound
        );
        assert_eq!(
            binding(&r, &changes(&[USER_KEY], &[], true)),
            Binding::To("ada")
        );
        let mut odd = Record::new();
        odd.insert(USER_KEY, json!(7));
        assert_eq!(
            binding(&odd, &changes(&[USER_KEY], &[], false)),
            Binding::Unbound
        );
        let empty = Record::new();
        assert_eq!(
            binding(&empty, &changes(&[USER_KEY], &[], false)),
            Binding::Unchanged
        );
        assert_eq!(
            binding(&empty, &changes(&[USER_KEY], &[], true)),
            Binding::Unbound
        );
    }

    #[test]
    fn handles_are_64_lowercase_hex_digits() {
        assert!(is_handle(&storage_key("", "abc")));
        assert!(!is_handle(&"A".repeat(64)));
        assert!(!is_handle("abc"));
        assert!(!is_handle(&format!("~{}", &storage_key("", "abc")[1..])));
    }
}
