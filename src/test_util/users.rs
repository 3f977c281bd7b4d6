//! Scenarios for the per-user index contract ([`UserIndex`]).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::changes;
use super::store::must;
use crate::store::{storage_key, Deadline, Record, Updated, UserIndex};
use crate::users::{UserSessions, USER_KEY};

fn expires_in(secs: u64) -> Deadline {
    let ttl = Duration::from_secs(secs);
    Deadline::new(SystemTime::now() + ttl, ttl)
}

/// A user name no other run of the suite uses, so a shared backend can run
/// the suite in parallel.
fn user(tag: &str) -> String {
    format!("{tag}-{}", crate::id::Id::generate().as_str())
}

fn bound(user: &str) -> Record {
    let mut r = Record::new();
    r.insert(USER_KEY, json!(user));
    r.insert("_user_since", json!(1_700_000_000u64));
    r.insert("cart", json!([1, 2]));
    r
}

fn handle(value: &str) -> String {
    storage_key("", value)
}

async fn listed<St: UserIndex>(s: &St, user: &str) -> BTreeSet<String> {
    let list = must("sessions_of", s.sessions_of(user)).await;
    for l in &list {
        assert_eq!(
            crate::store::bound_user(&l.record),
            Some(user),
            "sessions_of({user:?}) listed a record bound to another user"
        );
    }
    list.into_iter().map(|l| l.handle).collect()
}

fn set(handles: &[&str]) -> BTreeSet<String> {
    handles.iter().map(|v| handle(v)).collect()
}

pub(super) async fn bound_records_are_listed_under_their_user<St: UserIndex>(s: &St) {
    let (u1, u2) = (user("alice"), user("bob"));
    let a = must("create", s.create(&bound(&u1), expires_in(60))).await;
    let b = must("create", s.create(&bound(&u1), expires_in(60))).await;
    let c = must("create", s.create(&bound(&u2), expires_in(60))).await;
    let mut plain = Record::new();
    plain.insert("cart", json!(1));
    must("create", s.create(&plain, expires_in(60))).await;
    assert_eq!(listed(s, &u1).await, set(&[&a, &b]), "u1's sessions");
    assert_eq!(listed(s, &u2).await, set(&[&c]), "u2's sessions");
    assert!(listed(s, &user("nobody")).await.is_empty(), "unknown user");
    let entry = must("sessions_of", s.sessions_of(&u1)).await;
    assert!(
        entry.iter().all(|l| l.expires > SystemTime::now()),
        "listed expiry in the past"
    );
}

// SECURITY K56
pub(super) async fn rotate_keeps_a_bound_record_listed<St: UserIndex>(s: &St) {
    let u = user("carol");
    let old = must("create", s.create(&bound(&u), expires_in(60))).await;
    let mut record = bound(&u);
    record.insert("n", json!(1));
    let got = must(
        "rotate",
        s.rotate(&old, &record, &changes(&["n"], &[], false), expires_in(60)),
    )
    .await;
    let Updated::Written(new) = got else {
        panic!("rotate_keeps_a_bound_record_listed: rotate answered {got:?}");
    };
    assert_eq!(
        listed(s, &u).await,
        set(&[&new]),
        "after cycle_id the session is listed under its new handle only"
    );
}

pub(super) async fn update_moves_the_binding<St: UserIndex>(s: &St) {
    let (u1, u2) = (user("dave"), user("erin"));
    let v = must("create", s.create(&bound(&u1), expires_in(60))).await;
    let rebound = bound(&u2);
    let got = must(
        "update",
        s.update(
            &v,
            &rebound,
            &changes(&[USER_KEY], &[], false),
            expires_in(60),
        ),
    )
    .await;
    assert_eq!(got, Updated::Written(v.clone()), "update to another user");
    assert!(
        listed(s, &u1).await.is_empty(),
        "still listed under the old user"
    );
    assert_eq!(
        listed(s, &u2).await,
        set(&[&v]),
        "not listed under the new user"
    );

    let mut unbound = rebound.clone();
    unbound.remove(USER_KEY);
    must(
        "update",
        s.update(
            &v,
            &unbound,
            &changes(&[], &[USER_KEY], false),
            expires_in(60),
        ),
    )
    .await;
    assert!(
        listed(s, &u2).await.is_empty(),
        "listed after the binding was removed"
    );

    let w = must("create", s.create(&bound(&u1), expires_in(60))).await;
    let mut fresh = Record::new();
    fresh.insert("theme", json!("dark"));
    must(
        "update",
        s.update(&w, &fresh, &changes(&["theme"], &[], true), expires_in(60)),
    )
    .await;
    assert!(listed(s, &u1).await.is_empty(), "listed after a clear");
}

pub(super) async fn deleted_and_expired_records_are_not_listed<St: UserIndex>(s: &St) {
    let u = user("frank");
    let keep = must("create", s.create(&bound(&u), expires_in(60))).await;
    let gone = must("create", s.create(&bound(&u), expires_in(60))).await;
    let brief = must("create", s.create(&bound(&u), expires_in(1))).await;
    must("delete", s.delete(&gone)).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        listed(s, &u).await,
        set(&[&keep]),
        "a deleted or expired session is listed"
    );
    let _ = brief;
}

// SECURITY K57
pub(super) async fn end_session_ends_only_the_named_users_session<St: UserIndex>(s: &St) {
    let (u1, u2) = (user("grace"), user("heidi"));
    let a = must("create", s.create(&bound(&u1), expires_in(60))).await;
    let b = must("create", s.create(&bound(&u2), expires_in(60))).await;
    assert!(
        !must("end_session", s.end_session(&u2, &handle(&a))).await,
        "ended another user's session"
    );
    assert!(
        must("load", s.load(&a)).await.is_some(),
        "another user's end_session removed the record"
    );
    for bad in ["", "zz", &"0".repeat(64), &a] {
        assert!(
            !must("end_session", s.end_session(&u1, bad)).await,
            "end_session({bad:?}) ended something"
        );
    }
    assert!(
        must("end_session", s.end_session(&u1, &handle(&a))).await,
        "end_session of a live bound session answered false"
    );
    assert!(
        must("load", s.load(&a)).await.is_none(),
        "ended session loads"
    );
    assert!(listed(s, &u1).await.is_empty(), "ended session listed");
    assert!(
        !must("end_session", s.end_session(&u1, &handle(&a))).await,
        "ending twice answered true"
    );
    assert_eq!(
        listed(s, &u2).await,
        set(&[&b]),
        "other user's list changed"
    );
}

// SECURITY K57
pub(super) async fn end_all_racing_cycle_id_leaves_no_session<St: UserIndex + Clone>(s: &St) {
    let users = UserSessions::new(s.clone());
    for round in 0..20 {
        let u = user("ivan");
        let kept = must("create", s.create(&bound(&u), expires_in(60))).await;
        let old = must("create", s.create(&bound(&u), expires_in(60))).await;
        let record = bound(&u);
        let keep = crate::users::SessionHandle::of(&kept);
        let cart = changes(&["cart"], &[], false);
        let (rotated, ended) = tokio::join!(
            s.rotate(&old, &record, &cart, expires_in(60)),
            users.end_all_except(&u, &keep),
        );
        let rotated = rotated.unwrap_or_else(|e| panic!("rotate failed: {e}"));
        let ended = ended.unwrap_or_else(|e| panic!("end_all_except failed: {e}"));
        if let Updated::Written(new) = &rotated {
            assert!(
                must("load", s.load(new)).await.is_none(),
                "round {round}: a session cycled while its user's sessions were ended survived"
            );
        }
        assert!(
            must("load", s.load(&old)).await.is_none(),
            "round {round}: old survived"
        );
        assert!(
            must("load", s.load(&kept)).await.is_some(),
            "round {round}: kept one ended"
        );
        assert_eq!(listed(s, &u).await, set(&[&kept]), "round {round}: listing");
        assert!(ended >= 1, "round {round}: nothing ended");
    }
}
