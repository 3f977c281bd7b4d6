//! Session values stay out of `Debug` output and error messages.

mod common;

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use axum::routing::get;
use axum::Router;
use common::{call, key};
use sessio::store::{Deadline, Record, Store};
use sessio::{CookieStore, Error, MemoryStore, Session, SessionLayer, ValueErrorKind};

const SECRET: &str = "hunter2-s3cret";

/// `Display`, `Debug` and every `source()` of `err`, in one string.
fn everything_said_about(err: &Error) -> String {
    let mut text = format!("{err} {err:?}");
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(&format!(" | {s} {s:?}"));
        source = s.source();
    }
    text
}

// SECURITY J54: a value read back as the wrong type fails with an error whose
// Display, Debug and source chain never quote the value (serde's own message
// would: `invalid type: string "...", expected u64`).
#[tokio::test]
async fn a_wrong_type_error_does_not_quote_the_value() {
    let app = Router::new()
        .route(
            "/",
            get(|s: Session| async move {
                s.set("token", SECRET).unwrap();
                s.set("nested", serde_json::json!({ "a": [SECRET] }))
                    .unwrap();
                let mut said = Vec::new();
                let err = s.get::<u64>("token").unwrap_err();
                assert!(matches!(err, Error::Deserialize(_)), "{err:?}");
                said.push(everything_said_about(&err));
                let err = s.get::<Vec<u64>>("nested").unwrap_err();
                said.push(everything_said_about(&err));
                said.join("\n")
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new(), key()));
    let said = call(&app, "/", None).await.body;
    assert!(
        said.contains("could not deserialize a session value"),
        "{said}"
    );
    assert!(said.contains("expected type or shape"), "{said}");
    assert!(
        !said.contains("hunter2") && !said.contains("s3cret"),
        "{said}"
    );
}

/// Serializes to an error that quotes its secret, as a hand-written
/// `Serialize` impl can.
struct Refuses;

impl serde::Serialize for Refuses {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(format!("cannot encode {SECRET}")))
    }
}

// SECURITY J54: the same for a value that cannot be serialized.
#[tokio::test]
async fn a_serialize_error_does_not_quote_the_value() {
    let app = Router::new()
        .route(
            "/",
            get(|s: Session| async move {
                let err = s.set("token", Refuses).unwrap_err();
                let Error::Serialize(source) = &err else {
                    panic!("{err:?}");
                };
                assert_eq!(source.kind(), ValueErrorKind::Data);
                everything_said_about(&err)
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new(), key()));
    let said = call(&app, "/", None).await.body;
    assert!(
        said.contains("could not serialize a session value"),
        "{said}"
    );
    assert!(!said.contains("hunter2"), "{said}");
}

// SECURITY J54: Debug of a record lists its keys, never its values; for the
// cookie store the record is the whole plaintext of the cookie.
#[tokio::test]
async fn debug_of_a_record_shows_keys_only() {
    let mut record = Record::new();
    record.insert("_csrf", SECRET.into());
    record.insert("user", serde_json::json!({ "email": "ada@example.com" }));
    let expires = Deadline::new(
        SystemTime::now() + Duration::from_secs(60),
        Duration::from_secs(60),
    );
    let store = CookieStore::new();
    let value = store.create(&record, expires).await.unwrap();
    let loaded = store.load(&value).await.unwrap().unwrap();
    assert_eq!(loaded, record);
    let dbg = format!("{loaded:?} {loaded:#?}");
    assert!(!dbg.contains("hunter2") && !dbg.contains("ada@"), "{dbg}");
    assert_eq!(
        format!("{loaded:?}"),
        r#"Record { keys: ["_csrf", "user"] }"#
    );
}
