use super::*;
use crate::codec::Protection;
use crate::config::CookieAttrs;
use crate::key::Key;
use serde_json::json;
use std::time::Duration;

fn with_cx<T>(f: impl FnOnce(&Cx<'_>) -> T) -> T {
    with_store_cx(true, f)
}

/// `keyed`: a server-side store (false: the cookie store).
fn with_store_cx<T>(keyed: bool, f: impl FnOnce(&Cx<'_>) -> T) -> T {
    let attrs = CookieAttrs::new("id").build().unwrap();
    let codec = crate::codec::Codec::new(&[Key::generate()]);
    let cx = Cx {
        now: 1_000,
        attrs: &attrs,
        expiry: Expiry::default(),
        absolute: None,
        refresh: crate::expiry::Refresh::WhenHalfGone,
        codec: &codec,
        protection: Protection::Signed,
        keyed,
    };
    f(&cx)
}

fn issued(value: &str, settings: Option<Settings>) -> Issued {
    Issued {
        value: value.to_owned(),
        envelope: Envelope {
            created: 900,
            issued: 900,
            expires: 900 + 86_400,
            settings: settings.map(Arc::new),
        },
        reissue: false,
    }
}

// SECURITY I44: a cookie that was sent and rejected gets one removal cookie,
// without any store operation.
#[test]
fn a_rejected_cookie_is_removed_once() {
    with_cx(|cx| {
        let mut st = State::from_cookies(None, Vec::new(), true);
        assert!(!st.idle(false));
        assert!(st.plan(cx, true, false).is_none());
        let out: Vec<_> = st.take_outgoing().collect();
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("id=; Max-Age=0"), "{}", out[0]);
        assert!(st.plan(cx, true, false).is_none());
        assert_eq!(st.take_outgoing().count(), 0);
    });
}

// SECURITY I44: a verified cookie whose record is unknown: fresh session, cookie removed
// when nothing is stored.
#[test]
fn an_unknown_record_removes_its_cookie_at_its_path() {
    with_cx(|cx| {
        let settings = Settings {
            expiry: None,
            cookie: CookieOptions::new().with_path("/app"),
        };
        let mut st = State::from_cookies(Some(issued("dead", Some(settings))), Vec::new(), false);
        assert_eq!(st.next_candidate(), Some("dead"));
        st.reject_candidate();
        assert_eq!(st.next_candidate(), None);
        st.start_fresh(1_000);
        assert!(st.plan(cx, true, false).is_none());
        let out: Vec<_> = st.take_outgoing().collect();
        assert_eq!(out.len(), 1);
        assert!(
            out[0].contains("Max-Age=0") && out[0].contains("Path=/app"),
            "{}",
            out[0]
        );
    });
}

// SECURITY I38: emptying a session is an update (a diff), not a delete
// decided locally.
#[test]
fn emptying_is_sent_as_a_diff() {
    with_cx(|cx| {
        let mut st = State::from_cookies(Some(issued("v", None)), Vec::new(), false);
        st.accept([("a".to_owned(), json!(1))].into_iter().collect());
        st.remove("a");
        let plan = st.plan(cx, false, false).unwrap();
        assert!(
            matches!(&plan.op, Op::Update { value, record } if value == "v" && record.is_empty())
        );
        assert_eq!(plan.changes.removed().collect::<Vec<_>>(), vec!["a"]);
        st.commit(cx, plan, Outcome::Emptied);
        let out: Vec<_> = st.take_outgoing().collect();
        assert!(
            out.len() == 1 && out[0].starts_with("id=; Max-Age=0"),
            "{out:?}"
        );
    });
}

// SECURITY I41: on a 5xx only deletions run: the old record of a cycle_id goes, nothing new
// is written, and the cookie is removed.
#[test]
fn server_error_keeps_deletions_only() {
    with_cx(|cx| {
        let mut st = State::from_cookies(Some(issued("old", None)), Vec::new(), false);
        st.accept([("a".to_owned(), json!(1))].into_iter().collect());
        st.cycle_id();
        st.set("b", json!(2));
        let plan = st.plan(cx, false, true).unwrap();
        assert!(matches!(plan.op, Op::Nothing));
        assert_eq!(plan.ended, vec!["old".to_owned()]);
        st.commit(cx, plan, Outcome::Done);
        let out: Vec<_> = st.take_outgoing().collect();
        assert!(
            out.len() == 1 && out[0].starts_with("id=; Max-Age=0"),
            "{out:?}"
        );
    });
}

// SECURITY I42: a save that failed is not planned again until something changes.
#[test]
fn a_failed_save_is_not_planned_twice() {
    with_cx(|cx| {
        let mut st = State::from_cookies(Some(issued("v", None)), Vec::new(), false);
        st.accept(Record::new());
        st.set("a", json!(1));
        let plan = st.plan(cx, false, false).unwrap();
        st.restore(plan);
        st.save_failed();
        assert!(st.plan(cx, false, false).is_none());
        st.set("b", json!(2));
        let plan = st.plan(cx, false, false).unwrap();
        let set: Vec<_> = plan.changes.set().collect();
        assert_eq!(
            set.len(),
            2,
            "both the failed and the new change go: {set:?}"
        );
    });
}

// SECURITY I37: the session's own expiry decides every later plan.
#[test]
fn own_expiry_comes_from_the_cookie() {
    with_cx(|cx| {
        let settings = Settings {
            expiry: Some(Expiry::OnInactivity(Duration::from_secs(300))),
            cookie: CookieOptions::new(),
        };
        let mut st = State::from_cookies(Some(issued("v", Some(settings))), Vec::new(), false);
        st.accept(Record::new());
        st.set("a", json!(1));
        let plan = st.plan(cx, false, false).unwrap();
        assert_eq!(plan.envelope.expires, 1_300);
        assert_eq!(plan.expires.ttl(), Duration::from_secs(300));
    });
}

/// The state after a write to a loaded session whose cookie expires at
/// `expires` (issued at 900, the layer's 24 h browser-session window, now
/// 1 000), and the plan of that write.
fn write_to(cx: &Cx<'_>, expires: u64, reissue: bool) -> (State, Plan) {
    let mut cookie = issued("v", None);
    cookie.envelope.expires = expires;
    cookie.reissue = reissue;
    let mut st = State::from_cookies(Some(cookie), Vec::new(), false);
    st.accept(Record::new());
    st.set("a", json!(1));
    let plan = st.plan(cx, true, false).unwrap();
    (st, plan)
}

// A write before half the window keeps the cookie's sealed times: the record's
// TTL stays at the moment the browser's cookie carries, and no cookie is sent.
#[test]
fn a_write_before_half_the_window_sends_no_cookie() {
    with_cx(|cx| {
        let (mut st, plan) = write_to(cx, 900 + 86_400, false);
        assert!(matches!(plan.op, Op::Update { .. }));
        assert_eq!(plan.envelope.expires, 900 + 86_400);
        assert_eq!(
            plan.expires.ttl(),
            Duration::from_secs(900 + 86_400 - 1_000)
        );
        st.commit(cx, plan, Outcome::Stored("v".to_owned()));
        assert_eq!(st.take_outgoing().count(), 0);
        assert_eq!(st.expires(), Some(900 + 86_400));
        assert_eq!(st.status(), SessionStatus::Changed);
    });
}

// Past half the window a write extends the session and re-issues its cookie,
// as a read does.
#[test]
fn a_write_past_half_the_window_reissues_the_cookie() {
    with_cx(|cx| {
        let (mut st, plan) = write_to(cx, 1_000 + 40_000, false);
        assert_eq!(plan.envelope.expires, 1_000 + 86_400);
        assert_eq!(plan.expires.ttl(), Duration::from_secs(86_400));
        st.commit(cx, plan, Outcome::Stored("v".to_owned()));
        let out: Vec<_> = st.take_outgoing().collect();
        assert!(
            out.len() == 1 && out[0].starts_with("id=") && !out[0].starts_with("id=;"),
            "{out:?}"
        );
        assert_eq!(st.expires(), Some(1_000 + 86_400));
    });
}

// SECURITY C11: a cookie verified under a fallback key is re-issued by a write
// whatever its age; so is every cookie of a client-side store, whose value
// is the data.
#[test]
fn a_write_reissues_fallback_key_and_cookie_store_cookies() {
    with_cx(|cx| {
        let (mut st, plan) = write_to(cx, 900 + 86_400, true);
        st.commit(cx, plan, Outcome::Stored("v".to_owned()));
        assert_eq!(st.take_outgoing().count(), 1);
    });
    with_store_cx(false, |cx| {
        let (mut st, plan) = write_to(cx, 900 + 86_400, false);
        assert_eq!(plan.envelope.expires, 1_000 + 86_400);
        st.commit(cx, plan, Outcome::Stored("sealed data".to_owned()));
        assert_eq!(st.take_outgoing().count(), 1);
    });
}
