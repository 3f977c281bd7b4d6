//! Scenarios that call the store directly.

use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::error::Error;
use crate::store::{Changes, Expires, Record, Store};

fn expires_in(secs: u64) -> Expires {
    let ttl = Duration::from_secs(secs);
    Expires::new(SystemTime::now() + ttl, ttl)
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

pub(super) async fn must<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, Error>>,
) -> T {
    match f.await {
        Ok(v) => v,
        Err(e) => panic!(
            "{what}: store returned an error: {e} ({:?})",
            std::error::Error::source(&e)
        ),
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
    let v2 = v2.expect("update_applies_changes: update of a live record answered None");
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
    let v2 = must("update", s.update(&v, &next, &c, expires_in(60)))
        .await
        .expect("update_with_clear_replaces_everything: update answered None");
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
    assert!(
        got.is_none(),
        "update_never_resurrects: update of a deleted record wrote it"
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
    let v = rb.or(ra).expect("concurrent updates answered None");
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
    assert!(got.is_none(), "ttl: update resurrected an expired record");
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
