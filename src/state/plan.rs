//! The way out of one session: what to write ([`State::plan`]), and what the
//! store's answer means for the cookie ([`State::commit`], [`State::restore`]).

use std::borrow::Cow;
use std::time::Duration;

use super::{Anon, Issued, Place, State};
use crate::clock::from_unix_secs;
use crate::codec::{encoded_len, Codec, Envelope, Protection};
use crate::config::CookieAttrs;
use crate::expiry::{Expiry, Refresh};
use crate::store::{Changes, Deadline, Record};

/// What a plan needs from the layer, for one session and one moment.
pub(crate) struct Cx<'a> {
    /// Now, in unix seconds.
    pub(crate) now: u64,
    /// The layer's cookie attributes for this session.
    pub(crate) attrs: &'a CookieAttrs,
    /// The layer's expiry, for sessions without their own.
    pub(crate) expiry: Expiry,
    /// The absolute timeout, in seconds.
    pub(crate) absolute: Option<u64>,
    pub(crate) refresh: Refresh,
    pub(crate) codec: &'a Codec,
    pub(crate) protection: Protection,
    /// The store keeps the session under its id (a server-side store), so a
    /// write leaves the cookie's value as it is.
    pub(crate) keyed: bool,
}

/// The store operation of a plan.
pub(crate) enum Op {
    /// No write; only the plan's deletions, if any.
    Nothing,
    Create(Record),
    /// Applies the plan's changes to the record under `value`.
    Update {
        value: String,
        record: Record,
    },
    /// Moves the record under `old` to a new id, applying the changes.
    Rotate {
        old: String,
        record: Record,
    },
    /// Extends the record's TTL, re-issues its cookie.
    Touch(String),
    /// Re-issues the cookie under the current key, times unchanged.
    Reissue(String),
}

/// What the store answered to a plan's operation.
pub(crate) enum Outcome {
    /// The record is stored under this value: send its cookie.
    Stored(String),
    /// The merged record was empty and is deleted.
    Emptied,
    /// The record no longer exists (deleted or expired elsewhere).
    Gone,
    /// Only deletions ran.
    Done,
}

/// One save, decided under the session's lock and carried out after it.
pub(crate) struct Plan {
    pub(crate) op: Op,
    /// Records to delete first, whatever the operation.
    pub(crate) ended: Vec<String>,
    pub(crate) changes: Changes,
    pub(crate) envelope: Envelope,
    pub(crate) expires: Deadline,
    /// The moment the plan was made, in unix seconds.
    pub(crate) now: u64,
    max_age: Option<u64>,
    rotate: bool,
    settings_changed: bool,
    /// The record was moved out of the state, not copied.
    moved: bool,
    /// An update that keeps the cookie's sealed times: the cookie the
    /// browser holds stays valid, so none is sent when the id is unchanged.
    quiet: bool,
}

impl Cx<'_> {
    /// The attributes of a cookie issued at `place`.
    fn attrs_at(&self, place: &Place) -> Cow<'_, CookieAttrs> {
        match place.0.as_deref() {
            Some(s) if s.cookie != Default::default() => {
                match self.attrs.with_overrides(&s.cookie) {
                    Ok(a) => Cow::Owned(a),
                    Err(err) => {
                        // Valid when set; the layer's own attributes changed since.
                        tracing::warn!(cookie = %self.attrs.name, error = %err,
                            "a session's cookie options no longer fit the layer; using the layer's");
                        Cow::Borrowed(self.attrs)
                    }
                }
            }
            _ => Cow::Borrowed(self.attrs),
        }
    }

    fn removal(&self, place: &Place) -> String {
        self.attrs_at(place).removal()
    }

    /// Name plus value of the cookie that stores `value` with `plan`.
    pub(crate) fn cookie_len(&self, plan: &Plan, value: &str) -> usize {
        self.attrs.name.len()
            + 1
            + encoded_len(self.protection, plan.envelope.extra_len() + value.len())
    }
}

impl State {
    /// The session's expiry: its own, or the layer's.
    fn expiry(&self, cx: &Cx<'_>) -> Expiry {
        self.own_expiry().unwrap_or(cx.expiry)
    }

    /// When a session that is active now expires, in unix seconds.
    fn deadline(&self, cx: &Cx<'_>, expiry: Expiry, created: u64) -> u64 {
        let at = expiry.deadline(cx.now);
        cx.absolute
            .map_or(at, |abs| at.min(created.saturating_add(abs)))
    }

    /// What saving now would do, taken out of the state; `None` when nothing
    /// goes to the store (a removal cookie may still be queued). `last` says
    /// nothing can read the session after this save, so its data may be moved
    /// instead of copied; `server_error` that the handler answered 5xx.
    pub(crate) fn plan(&mut self, cx: &Cx<'_>, last: bool, server_error: bool) -> Option<Plan> {
        if self.failed == Some(self.generation) {
            return None;
        }
        if !self.loaded {
            let refresh = cx.refresh == Refresh::OnEveryRequest && !server_error;
            // With duplicates the first may be dead and a later one live: a
            // refresh without loading could remove the live one's cookie.
            if let (true, Some(c), true) = (refresh, &self.first, self.more.is_empty()) {
                let plan = self.touch_unloaded(cx, c.clone());
                return Some(plan);
            }
            self.settle(cx);
            return None;
        }
        let expiry = self.expiry(cx);
        let at = self.deadline(cx, expiry, self.created);
        let mut ended = std::mem::take(&mut self.ended);
        let mut quiet = false;
        let take = |data: &mut Record| {
            if last {
                std::mem::take(data)
            } else {
                data.clone()
            }
        };
        let op = if server_error {
            // Only deletions: the old record of a cycle_id goes, its data is
            // not written anywhere.
            if std::mem::take(&mut self.rotate) {
                if let Some(c) = self.current.take() {
                    ended.push(c.value);
                    self.must_remove = self.held.is_some();
                }
            }
            Op::Nothing
        } else if at <= cx.now {
            // Its time is up (a deadline passed, the absolute timeout).
            ended.extend(self.current.take().map(|c| c.value));
            self.data.clear();
            self.changes = Changes::default();
            self.must_remove = self.held.is_some();
            Op::Nothing
        } else {
            // A session bound to a user notes when it was last seen, at the
            // writes that happen anyway (no extra round trip).
            let bound = self.data.get(crate::users::USER_KEY).is_some();
            let seen = || serde_json::Value::from(cx.now);
            if bound && (self.current.is_none() || self.rotate || !self.changes.is_empty()) {
                self.set(crate::users::SEEN_KEY, seen());
            }
            match &self.current {
                None if self.data.is_empty() => Op::Nothing,
                None => {
                    self.adopt_anon();
                    Op::Create(take(&mut self.data))
                }
                Some(c) if self.rotate => Op::Rotate {
                    old: c.value.clone(),
                    record: take(&mut self.data),
                },
                Some(c) if !self.changes.is_empty() => {
                    let old = c.envelope.expires;
                    // A write before half the window keeps the expiry the
                    // cookie carries, as a read does: the record's TTL stays
                    // at that same moment and the cookie need not be sent.
                    quiet = cx.keyed
                        && !c.reissue
                        && !self.settings_changed
                        && cx.refresh == Refresh::WhenHalfGone
                        && !expiry.half_gone(old, cx.now)
                        && old <= at;
                    Op::Update {
                        value: c.value.clone(),
                        record: take(&mut self.data),
                    }
                }
                Some(c) => {
                    let old = c.envelope.expires;
                    let due = self.settings_changed
                        || cx.refresh == Refresh::OnEveryRequest
                        || (expiry.half_gone(old, cx.now) && at > old);
                    if due && bound {
                        // Its expiry moves: so does "last seen", in the
                        // same write (an update of one key, not a touch).
                        let value = c.value.clone();
                        self.set(crate::users::SEEN_KEY, seen());
                        Op::Update {
                            value,
                            record: take(&mut self.data),
                        }
                    } else if due {
                        Op::Touch(c.value.clone())
                    } else if c.reissue {
                        Op::Reissue(c.value.clone())
                    } else {
                        Op::Nothing
                    }
                }
            }
        };
        if matches!(op, Op::Nothing) && ended.is_empty() {
            self.settle(cx);
            return None;
        }
        let envelope = match (&op, &self.current) {
            // A re-issue keeps the old times: only the key changes.
            (Op::Reissue(_), Some(c)) => c.envelope.clone(),
            (Op::Update { .. }, Some(c)) if quiet => c.envelope.clone(),
            _ => Envelope {
                created: self.created,
                issued: cx.now,
                expires: at,
                settings: self.settings.clone(),
            },
        };
        Some(Plan {
            moved: last && matches!(op, Op::Create(_) | Op::Update { .. } | Op::Rotate { .. }),
            op,
            ended,
            changes: std::mem::take(&mut self.changes),
            max_age: expiry.max_age(envelope.expires, cx.now),
            expires: Deadline::new(
                from_unix_secs(envelope.expires),
                Duration::from_secs(envelope.expires.saturating_sub(cx.now)),
            ),
            envelope,
            now: cx.now,
            rotate: std::mem::take(&mut self.rotate),
            settings_changed: std::mem::take(&mut self.settings_changed),
            quiet,
        })
    }

    /// A TTL refresh of the cookie's record, without loading it.
    fn touch_unloaded(&self, cx: &Cx<'_>, c: Issued) -> Plan {
        let expiry = c
            .envelope
            .settings
            .as_ref()
            .and_then(|s| s.expiry)
            .unwrap_or(cx.expiry);
        let at = self.deadline(cx, expiry, c.envelope.created);
        let envelope = Envelope {
            created: c.envelope.created,
            issued: cx.now,
            expires: at,
            settings: c.envelope.settings.clone(),
        };
        Plan {
            op: Op::Touch(c.value),
            ended: Vec::new(),
            changes: Changes::default(),
            max_age: expiry.max_age(at, cx.now),
            expires: Deadline::new(
                from_unix_secs(at),
                Duration::from_secs(at.saturating_sub(cx.now)),
            ),
            envelope,
            now: cx.now,
            rotate: false,
            settings_changed: false,
            moved: false,
            quiet: false,
        }
    }

    /// Records what the store did with `plan` and queues the cookies that
    /// tell the browser.
    pub(crate) fn commit(&mut self, cx: &Cx<'_>, plan: Plan, outcome: Outcome) {
        match outcome {
            Outcome::Stored(value)
                if plan.quiet && self.current.as_ref().is_some_and(|c| c.value == value) =>
            {
                // The browser's cookie still holds: same id, same sealed times.
                self.stored = true;
            }
            Outcome::Stored(value) => {
                self.stored = !matches!(plan.op, Op::Touch(_) | Op::Reissue(_));
                let place = Place(plan.envelope.settings.clone());
                if let Some(held) = self.held.take() {
                    if !held.same(&place) {
                        self.moved.push(cx.removal(&held));
                    }
                }
                let attrs = cx.attrs_at(&place);
                let len = encoded_len(cx.protection, plan.envelope.extra_len() + value.len());
                let envelope = &plan.envelope;
                self.cookie = Some(attrs.set_cookie_with(len, plan.max_age, |out| {
                    cx.codec.encode_into(
                        cx.protection,
                        &attrs.name,
                        envelope,
                        value.as_bytes(),
                        out,
                    );
                }));
                self.held = Some(place);
                self.must_remove = false;
                self.current = Some(Issued {
                    value,
                    envelope: plan.envelope,
                    reissue: false,
                });
            }
            Outcome::Emptied => {
                self.current = None;
                self.must_remove = self.held.is_some();
            }
            Outcome::Gone => {
                // Ended elsewhere: what this request holds is no session.
                self.current = None;
                self.data.clear();
                self.changes = Changes::default();
                self.must_remove = self.held.is_some();
            }
            Outcome::Done => {}
        }
        self.settle(cx);
    }

    /// Puts back what a plan took, under anything newer, after a save that
    /// failed or never ran.
    pub(crate) fn restore(&mut self, plan: Plan) {
        let mut changes = std::mem::take(&mut self.changes);
        changes.merge_older(plan.changes);
        self.changes = changes;
        let later = std::mem::take(&mut self.ended);
        self.ended = plan.ended;
        self.ended.extend(later);
        self.rotate |= plan.rotate;
        self.settings_changed |= plan.settings_changed;
        if plan.moved {
            if let Op::Create(r) | Op::Update { record: r, .. } | Op::Rotate { record: r, .. } =
                plan.op
            {
                self.data = r;
            }
        }
    }

    /// A session stored for the first time takes over an anonymous CSRF
    /// secret it may trust, so forms rendered before still work.
    fn adopt_anon(&mut self) {
        use base64::Engine as _;
        // Never at a login (`cycle_id`): a token from before must not work after.
        if self.rotate {
            return;
        }
        if let Some(a) = self.anon.filter(|a| a.adoptable) {
            if self.data.get(super::CSRF_KEY).is_none() {
                let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(a.secret);
                self.set(super::CSRF_KEY, serde_json::Value::String(text));
            }
        }
    }

    /// Queues the companion cookie of an anonymous CSRF secret: issued when
    /// made here and the session is still not stored, removed once the
    /// session is stored (its own secret takes over).
    pub(crate) fn settle_companion(&mut self, cx: &Cx<'_>) {
        let stored = self.current.is_some();
        let attrs = || cx.attrs.renamed(cx.attrs.companion_name());
        match self.anon {
            Some(a) if a.fresh && !stored => {
                let attrs = attrs();
                let envelope = Envelope {
                    created: cx.now,
                    issued: cx.now,
                    expires: cx.expiry.deadline(cx.now),
                    settings: None,
                };
                let len = encoded_len(Protection::Signed, a.secret.len());
                self.moved.push(attrs.set_cookie_with(len, None, |out| {
                    cx.codec.encode_into(
                        Protection::Signed,
                        &attrs.name,
                        &envelope,
                        &a.secret,
                        out,
                    );
                }));
                self.anon = Some(Anon { fresh: false, ..a });
            }
            _ if self.anon_sent && stored => {
                self.moved.push(attrs().removal());
                self.anon_sent = false;
            }
            _ => {}
        }
    }

    /// Queues the removal of the held cookie when it points at no session.
    fn settle(&mut self, cx: &Cx<'_>) {
        if self.must_remove {
            if let Some(held) = self.held.take() {
                self.cookie = Some(cx.removal(&held));
            }
            self.must_remove = false;
        }
    }
}
