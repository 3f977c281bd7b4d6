//! Scenarios that call the store directly.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::changes;
use crate::error::StoreError;
use crate::store::{Deadline, Record, Store, Updated};

fn expires_in(secs: u64) -> Deadline {
    let ttl = Duration::from_secs(secs);
    Deadline::new(SystemTime::now() + ttl, ttl)
}

fn sample() -> Record {
    [
        ("user".to_owned(), json!("ada")),
        ("n".to_owned(), json!(42)),
        (
            "nested".to_owned(),
            json!({"a": [1, 2, {"b": null}], "ü": "∑"}),
        ),
    ]
    .into_iter()
    .collect()
}

pub(super) async fn must<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> T {
    match f.await {
        Ok(v) => v,
        Err(e) => panic!(
            "{what}: store returned an error: {e} ({:?})",
            std::error::Error::source(&e)
        ),
    }
}

/// The value of a `Written` answer; panics naming the scenario otherwise.
fn written(what: &str, got: Updated) -> String {
    match got {
        Updated::Written(v) => v,
        other => panic!("{what}: expected the record written, the store answered {other:?}"),
    }
}

pub(super) async fn create_then_load_round_trips<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    let got = must("load", s.load(&v)).await;
    assert_eq!(
        got,
        Some(sample()),
        "create_then_load_round_trips: loaded record differs"
    );
}

pub(super) async fn load_of_unknown_values_is_none<St: Store>(s: &St) {
    let unknown = crate::id::Id::generate();
    for v in [
        "",
        "x",
        "AAAAAAAAAAAAAAAAAAAAAA",
        unknown.as_str(),
        "{\"bad\":",
        "\0\u{1}",
        "a b;c",
    ] {
        let got = must("load of an unknown value", s.load(v)).await;
        assert!(
            got.is_none(),
            "load_of_unknown_values_is_none: {v:?} loaded a record"
        );
    }
}

pub(super) async fn update_applies_changes<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    let mut next = sample();
    next.insert("n", json!(43));
    next.remove("user");
    next.insert("new", json!(true));
    let c = changes(&["n", "new"], &["user"], false);
    let v2 = must("update", s.update(&v, &next, &c, expires_in(60))).await;
    let v2 = written("update_applies_changes", v2);
    let got = must("load", s.load(&v2)).await;
    assert_eq!(
        got,
        Some(next),
        "update_applies_changes: loaded record differs"
    );
}

pub(super) async fn update_with_clear_replaces_everything<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    let next: Record = [("only".to_owned(), json!(1))].into_iter().collect();
    let c = changes(&["only"], &[], true);
    let v2 = written(
        "update_with_clear_replaces_everything",
        must("update", s.update(&v, &next, &c, expires_in(60))).await,
    );
    let got = must("load", s.load(&v2)).await;
    assert_eq!(
        got,
        Some(next),
        "update_with_clear_replaces_everything: old keys survived"
    );
}

pub(super) async fn create_never_reuses_a_value<St: Store>(s: &St) {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let v = must("create", s.create(&Record::new(), expires_in(60))).await;
        assert!(
            seen.insert(v),
            "create_never_reuses_a_value: a value was handed out twice"
        );
    }
}

pub(super) async fn delete_removes_and_tolerates_missing<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    must("delete", s.delete(&v)).await;
    assert!(
        must("load", s.load(&v)).await.is_none(),
        "delete_removes: record still loads"
    );
    must("delete of a missing record", s.delete(&v)).await;
}

pub(super) async fn update_never_resurrects_a_deleted_record<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    must("delete", s.delete(&v)).await;
    let c = changes(&["n"], &[], false);
    let got = must("update", s.update(&v, &sample(), &c, expires_in(60))).await;
    assert_eq!(
        got,
        Updated::Gone,
        "update_never_resurrects: update of a deleted record did not answer Gone"
    );
    assert!(
        must("load", s.load(&v)).await.is_none(),
        "update_never_resurrects: record is back"
    );
}

pub(super) async fn touch_of_missing_record_is_false<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    assert!(
        must("touch", s.touch(&v, expires_in(120))).await,
        "touch of a live record answered false"
    );
    must("delete", s.delete(&v)).await;
    assert!(
        !must("touch", s.touch(&v, expires_in(60))).await,
        "touch of a deleted record answered true"
    );
    assert!(
        must("load", s.load(&v)).await.is_none(),
        "touch brought a deleted record back"
    );
}

pub(super) async fn concurrent_changes_to_different_keys_both_survive<St: Store>(s: &St) {
    let base = sample();
    let v = must("create", s.create(&base, expires_in(60))).await;
    let mut a = base.clone();
    a.insert("a", json!("from A"));
    let mut b = base.clone();
    b.insert("b", json!("from B"));
    let ca = changes(&["a"], &[], false);
    let cb = changes(&["b"], &[], false);
    let (ra, rb) = tokio::join!(
        s.update(&v, &a, &ca, expires_in(60)),
        s.update(&v, &b, &cb, expires_in(60))
    );
    let (ra, rb) = (ra.expect("update A"), rb.expect("update B"));
    written("concurrent changes: update A", ra);
    let v = written("concurrent changes: update B", rb);
    let got = must("load", s.load(&v)).await.expect("record vanished");
    assert_eq!(
        got.get("a"),
        Some(&json!("from A")),
        "concurrent changes: A's key lost"
    );
    assert_eq!(
        got.get("b"),
        Some(&json!("from B")),
        "concurrent changes: B's key lost"
    );
    assert_eq!(
        got.get("user"),
        Some(&json!("ada")),
        "concurrent changes: untouched key lost"
    );
}

pub(super) async fn ttl_is_kept_by_the_store<St: Store>(s: &St) {
    let short = must("create", s.create(&sample(), expires_in(1))).await;
    let touched = must("create", s.create(&sample(), expires_in(1))).await;
    let updated = must("create", s.create(&sample(), expires_in(1))).await;
    assert!(must("touch", s.touch(&touched, expires_in(60))).await);
    let c = changes(&["n"], &[], false);
    must("update", s.update(&updated, &sample(), &c, expires_in(60))).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        must("load", s.load(&short)).await.is_none(),
        "ttl: an expired record still loads"
    );
    let got = must("update", s.update(&short, &sample(), &c, expires_in(60))).await;
    assert_eq!(
        got,
        Updated::Gone,
        "ttl: update resurrected an expired record"
    );
    let rotated = must("rotate", s.rotate(&short, &sample(), &c, expires_in(60))).await;
    assert_eq!(
        rotated,
        Updated::Gone,
        "ttl: rotate revived an expired record"
    );
    // SECURITY I45: an expired record's id is never handed out again.
    for _ in 0..50 {
        let fresh = must("create", s.create(&sample(), expires_in(60))).await;
        assert_ne!(fresh, short, "ttl: create reused an expired record's id");
    }
    assert!(
        !must("touch", s.touch(&short, expires_in(60))).await,
        "ttl: touch revived an expired record"
    );
    assert!(
        must("load", s.load(&touched)).await.is_some(),
        "ttl: touch did not extend the TTL"
    );
    assert!(
        must("load", s.load(&updated)).await.is_some(),
        "ttl: update did not extend the TTL"
    );
}

// SECURITY I38: the record goes only when the store's merged record is empty;
// a concurrent change to another key survives a request that emptied its copy.
pub(super) async fn update_deletes_only_a_merged_empty_record<St: Store>(s: &St) {
    let one: Record = [("a".to_owned(), json!(1))].into_iter().collect();
    let v = must("create", s.create(&one, expires_in(60))).await;
    // B sets `b` while A (which loaded only `a`) deletes `a`.
    let mut b = one.clone();
    b.insert("b", json!(2));
    written(
        "merged-empty: B's update",
        must(
            "update",
            s.update(&v, &b, &changes(&["b"], &[], false), expires_in(60)),
        )
        .await,
    );
    let got = must(
        "update",
        s.update(
            &v,
            &Record::new(),
            &changes(&[], &["a"], false),
            expires_in(60),
        ),
    )
    .await;
    let v = written("merged-empty: A emptied its copy, B's key remains", got);
    let left = must("load", s.load(&v)).await;
    let expected: Record = [("b".to_owned(), json!(2))].into_iter().collect();
    assert_eq!(left, Some(expected), "merged-empty: B's key was lost");
    // Now the last key goes: the record is deleted.
    let got = must(
        "update",
        s.update(
            &v,
            &Record::new(),
            &changes(&[], &["b"], false),
            expires_in(60),
        ),
    )
    .await;
    assert_eq!(
        got,
        Updated::Emptied,
        "merged-empty: an empty record was kept"
    );
    assert!(
        must("load", s.load(&v)).await.is_none(),
        "merged-empty: the emptied record still loads"
    );
}

// SECURITY I39: rotation moves the record to a new id, applying the changes,
// and the old id is dead.
pub(super) async fn rotate_moves_the_record<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    let mut next = sample();
    next.insert("role", json!("admin"));
    let got = must(
        "rotate",
        s.rotate(&v, &next, &changes(&["role"], &[], false), expires_in(60)),
    )
    .await;
    let moved = written("rotate_moves_the_record", got);
    assert_ne!(moved, v, "rotate_moves_the_record: the id did not change");
    assert!(
        must("load", s.load(&v)).await.is_none(),
        "rotate_moves_the_record: the old id still loads"
    );
    assert_eq!(
        must("load", s.load(&moved)).await,
        Some(next),
        "rotate_moves_the_record: the moved record differs"
    );
    let emptied = must(
        "rotate",
        s.rotate(
            &moved,
            &Record::new(),
            &changes(&[], &[], true),
            expires_in(60),
        ),
    )
    .await;
    assert_eq!(
        emptied,
        Updated::Emptied,
        "rotate of an emptied record kept it"
    );
    assert!(must("load", s.load(&moved)).await.is_none());
}

// SECURITY I39: a rotation of a deleted record, or racing its deletion,
// brings nothing back.
pub(super) async fn rotate_never_resurrects<St: Store>(s: &St) {
    let v = must("create", s.create(&sample(), expires_in(60))).await;
    must("delete", s.delete(&v)).await;
    let c = changes(&["n"], &[], false);
    let got = must("rotate", s.rotate(&v, &sample(), &c, expires_in(60))).await;
    assert_eq!(
        got,
        Updated::Gone,
        "rotate of a deleted record did not answer Gone"
    );
    for _ in 0..20 {
        let v = must("create", s.create(&sample(), expires_in(60))).await;
        let record = sample();
        let (rotated, deleted) =
            tokio::join!(s.rotate(&v, &record, &c, expires_in(60)), s.delete(&v));
        deleted.expect("delete");
        assert!(
            must("load", s.load(&v)).await.is_none(),
            "old id survived a logout"
        );
        match rotated.expect("rotate") {
            // The rotation ran first: the new id is a live session.
            Updated::Written(new) => assert!(must("load", s.load(&new)).await.is_some()),
            Updated::Gone => {}
            other => panic!("rotate racing a delete answered {other:?}"),
        }
    }
}

// SECURITY I45: a deleted record's id is never handed to a new session.
pub(super) async fn deleted_ids_are_not_reused<St: Store>(s: &St) {
    for _ in 0..20 {
        let v = must("create", s.create(&sample(), expires_in(60))).await;
        must("delete", s.delete(&v)).await;
        let next = must("create", s.create(&sample(), expires_in(60))).await;
        assert_ne!(
            next, v,
            "deleted_ids_are_not_reused: a deleted id was handed out again"
        );
    }
}

// SECURITY I45: values and keys come back exactly: several KB, empty keys,
// a leading NUL, Unicode.
pub(super) async fn values_and_odd_keys_round_trip<St: Store>(s: &St) {
    let long: String = (0..6000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let record: Record = [
        (String::new(), json!("empty key")),
        ("\0lead".to_owned(), json!(1)),
        ("\0".to_owned(), json!(2)),
        ("ключ ∑ 🎉".to_owned(), json!("значение ✓")),
        ("a\u{0}b".to_owned(), json!(["x", {"y": null}])),
        ("long".to_owned(), json!(long)),
    ]
    .into_iter()
    .collect();
    let v = must("create", s.create(&record, expires_in(60))).await;
    assert_eq!(
        must("load", s.load(&v)).await,
        Some(record.clone()),
        "values_and_odd_keys_round_trip: created record came back different"
    );
    let mut next = record.clone();
    next.insert("\0lead", json!(format!("{long}!")));
    next.remove("");
    let c = changes(&["\0lead"], &[""], false);
    let v = written(
        "values_and_odd_keys_round_trip",
        must("update", s.update(&v, &next, &c, expires_in(60))).await,
    );
    assert_eq!(
        must("load", s.load(&v)).await,
        Some(next),
        "values_and_odd_keys_round_trip: updated record came back different"
    );
}
