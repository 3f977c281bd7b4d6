//! `SqlStore::with_max_record_size`, on the store directly and through the
//! layer.

use std::future::Future;

use axum::http::StatusCode;
use serde_json::json;
use sessio::store::{Record, Store, StoreError, Updated};
use sessio::test_util::changes;
use sessio::SqlStore;

use super::{app, expires_in, get_value, record, session, set_path};
use crate::common::call;

const LIMIT: usize = 200;

fn json_len(r: &Record) -> usize {
    serde_json::to_vec(r).unwrap().len()
}

fn assert_too_large<T: std::fmt::Debug>(got: Result<T, StoreError>, size: usize, what: &str) {
    match got {
        Err(StoreError::TooLarge { size: s, limit }) => {
            assert_eq!((s, limit), (size, LIMIT), "{what}");
        }
        other => panic!("{what}: {other:?}"),
    }
}

/// SECURITY J48: with `with_max_record_size(200)`, a create, update or
/// rotation whose copy of the record is over 200 bytes of JSON is refused
/// with `StoreError::TooLarge` and writes nothing; a record of exactly the
/// limit is stored. Through the layer the refusal is a 500 without
/// `Set-Cookie`, the table is as it was (`rows` reads every row back raw:
/// hash, data, expiry), and the next request on the same cookie reads the
/// session, stores a save under the limit and cycles its id.
pub async fn records_over_the_size_limit_are_refused<F, Fut>(store: &SqlStore, rows: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let store = store.clone().with_max_record_size(LIMIT);
    assert_eq!(store.max_record_size(), Some(LIMIT));
    let set_k = changes(&["k"], &[], false);

    // `{"k":"…"}` is 8 bytes around the value.
    let exact = record(&[("k", json!("x".repeat(LIMIT - 8)))]);
    assert_eq!(json_len(&exact), LIMIT);
    let v = store
        .create(&exact, expires_in(60))
        .await
        .expect("at the limit");
    assert_eq!(store.load(&v).await.unwrap(), Some(exact.clone()));
    let over = record(&[("k", json!("x".repeat(LIMIT - 7)))]);
    let before = rows().await;
    assert_too_large(
        store.create(&over, expires_in(60)).await,
        LIMIT + 1,
        "create",
    );
    let got = store.update(&v, &over, &set_k, expires_in(60)).await;
    assert_too_large(got, LIMIT + 1, "update");
    let got = store.rotate(&v, &over, &set_k, expires_in(60)).await;
    assert_too_large(got, LIMIT + 1, "rotate");
    // The request's copy is judged, as by the other stores, not the patch.
    let mut grown = exact.clone();
    grown.insert("n", json!(1));
    let set_n = changes(&["n"], &[], false);
    let got = store.update(&v, &grown, &set_n, expires_in(60)).await;
    assert_too_large(got, json_len(&grown), "update of a small key");
    assert_eq!(rows().await, before, "a refused save wrote");
    assert_eq!(store.load(&v).await.unwrap(), Some(exact));
    let small = record(&[("k", json!("small"))]);
    let got = store.update(&v, &small, &set_k, expires_in(60)).await;
    assert_eq!(got.unwrap(), Updated::Written(v.clone()));
    assert_eq!(store.load(&v).await.unwrap(), Some(small));

    let app = app(store);
    let big = json!("y".repeat(300));
    let before = rows().await;
    let r = call(&app, &set_path("big", &big), None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    assert_eq!(rows().await, before, "an oversized new session was stored");

    let cookie = session(&app).await;
    let before = rows().await;
    let r = call(&app, &set_path("big", &big), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    let cycle_set = set_path("big", &big).replacen("/set", "/cycle-set", 1);
    let r = call(&app, &cycle_set, Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    assert_eq!(rows().await, before, "a refused save changed the table");

    assert_eq!(get_value(&app, &cookie, "user").await, "\"ada\"");
    assert_eq!(get_value(&app, &cookie, "big").await, "none");
    let r = call(&app, &set_path("note", &json!("small")), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(get_value(&app, &cookie, "note").await, "\"small\"");
    let after = rows().await;
    assert_eq!(after.len(), before.len());
    assert_ne!(after, before, "the save under the limit was not stored");
    let r = call(&app, "/cycle", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    let cycled = r.cookie("__Host-id").expect("a new cookie");
    assert_eq!(get_value(&app, &cycled, "note").await, "\"small\"");
    assert_eq!(get_value(&app, &cookie, "note").await, "none");
}
