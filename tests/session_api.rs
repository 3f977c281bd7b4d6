//! The data API beyond get/set: keys, contains_key, remove, update,
//! update_or, and a detached session for a handler's unit tests.

mod common;

use axum::routing::get;
use axum::Router;
use common::*;
use serde_json::json;
use sessio::store::Record;
use sessio::{Error, MemoryStore, Session, SessionLayer, SessionStatus};

#[tokio::test]
async fn keys_remove_and_update_through_a_layer() {
    let app = Router::new()
        .route(
            "/fill",
            get(|s: Session| async move {
                s.set("n", 1).unwrap();
                s.set("name", "ada").unwrap();
            }),
        )
        .route(
            "/work",
            get(|s: Session| async move {
                let mut keys = s.keys().unwrap();
                keys.sort();
                assert_eq!(keys, vec!["n", "name"]);
                assert!(s.contains_key("n").unwrap() && !s.contains_key("x").unwrap());
                // A wrong type is an error and loses nothing.
                assert!(matches!(
                    s.remove::<u64>("name"),
                    Err(Error::Deserialize(_))
                ));
                assert!(s.contains_key("name").unwrap());
                assert_eq!(s.remove::<String>("name").unwrap().as_deref(), Some("ada"));
                assert_eq!(s.remove::<String>("name").unwrap(), None);
                assert_eq!(s.update("n", |n: u64| n + 10).unwrap(), Some(11));
                assert_eq!(s.update("absent", |n: u64| n + 10).unwrap(), None);
                assert_eq!(s.update_or("visits", 1, |n: u64| n + 1).unwrap(), 1);
                assert_eq!(s.update_or("visits", 1, |n: u64| n + 1).unwrap(), 2);
                format!("{:?}", s.status())
            }),
        )
        .route(
            "/read",
            get(|s: Session| async move {
                let mut keys = s.keys().unwrap();
                keys.sort();
                format!(
                    "{keys:?} {:?} {:?}",
                    s.get::<u64>("n"),
                    s.get::<u64>("visits")
                )
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new(), key()));
    let cookie = call(&app, "/fill", None).await.cookie("__Host-id").unwrap();
    let r = call(&app, "/work", Some(&cookie)).await;
    assert_eq!(r.body, "Changed");
    let r = call(&app, "/read", Some(&cookie)).await;
    assert_eq!(r.body, r#"["n", "visits"] Ok(Some(11)) Ok(Some(2))"#);
}

// A handler tested without a router or layer: what it changed is visible.
#[tokio::test]
async fn a_detached_session_shows_what_a_handler_changed() {
    async fn login(s: Session) -> Result<&'static str, Error> {
        s.cycle_id()?;
        s.set("user", "ada")?;
        s.delete("cart")?;
        s.add_flash("welcome")?;
        Ok("in")
    }
    let record: Record = [("cart".to_owned(), json!(["apple"]))]
        .into_iter()
        .collect();
    let s = Session::detached(record);
    assert_eq!(login(s.clone()).await.unwrap(), "in");
    let c = s.changes();
    let mut set: Vec<_> = c.set().collect();
    set.sort();
    assert_eq!(set, vec!["_flash", "user"]);
    assert_eq!(c.removed().collect::<Vec<_>>(), vec!["cart"]);
    assert_eq!(s.status(), SessionStatus::Renewed);
    assert_eq!(s.flashes::<String>().unwrap(), vec!["welcome"]);
    s.save().await.unwrap();
    s.destroy();
    assert_eq!(s.status(), SessionStatus::Ended);
    assert!(s.keys().unwrap().is_empty());
}

// SECURITY J48: each flash category keeps its own newest MAX_FLASHES: a
// flood in one category neither grows past the cap nor pushes another
// category's messages out.
#[tokio::test]
async fn each_flash_category_keeps_its_own_newest_few() {
    let s = Session::detached(Record::new());
    s.add_flash("hello").unwrap();
    for i in 0..(sessio::MAX_FLASHES + 10) {
        s.add_flash_to("errors", i).unwrap();
    }
    let errors: Vec<usize> = s.flashes_from("errors").unwrap();
    assert_eq!(errors.len(), sessio::MAX_FLASHES);
    assert_eq!(errors.first(), Some(&10));
    assert_eq!(errors.last(), Some(&(sessio::MAX_FLASHES + 9)));
    assert_eq!(s.flashes::<String>().unwrap(), vec!["hello"]);
}

// SECURITY J46: the documented default capacity of MemoryStore.
#[test]
fn memory_store_holds_100_000_sessions_by_default() {
    assert_eq!(MemoryStore::new().max_sessions(), 100_000);
    assert_eq!(sessio::store::DEFAULT_MAX_SESSIONS, 100_000);
    assert_eq!(MemoryStore::new().with_max_sessions(64).max_sessions(), 64);
}
