//! A user's sessions through the layer, on either SqlStore backend: two
//! logins of one user, listing, ending one, ending the others while the
//! other session cycles its id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use sessio::users::{SessionHandle, UserSessions};
use sessio::{Session, SessionLayer, SqlStore};

use crate::common::{call, key, Reply};

type Users = UserSessions<SqlStore>;
type Q = Query<HashMap<String, String>>;

/// The session cookie's name (the layer's default).
pub const COOKIE: &str = "__Host-id";

/// A login app over `store`:
/// - `/login?user=&device=` cycles the id and binds the session;
/// - `/whoami` answers the bound user or `anonymous`;
/// - `/list` answers one line per session of the user: `handle current device`;
/// - `/end?h=` ends that session of the current user (`true`/`false`);
/// - `/end-others` ends every other session of the user (how many);
/// - `/cycle` cycles the id and answers the user (a login on a session);
/// - `/note?v=` sets the key `note` (a write that leaves the binding alone).
pub fn app(store: SqlStore) -> Router {
    let users = UserSessions::new(store.clone());
    Router::new()
        .route(
            "/login",
            get(|s: Session, Query(q): Q| async move {
                s.cycle_id()?;
                s.set_user(&q["user"])?;
                s.set_meta("device", &q["device"])?;
                Ok::<_, sessio::Error>("logged in")
            }),
        )
        .route("/whoami", get(whoami))
        .route(
            "/list",
            get(|State(users): State<Users>, s: Session| async move {
                let lines: Vec<String> = users
                    .list_for(&s)
                    .await?
                    .iter()
                    .map(|e| {
                        let device = e.meta().get("device").cloned().unwrap_or_default();
                        format!("{} {} {device}", e.handle(), e.is_current())
                    })
                    .collect();
                Ok::<_, sessio::Error>(lines.join("\n"))
            }),
        )
        .route(
            "/end",
            get(
                |State(users): State<Users>, s: Session, Query(q): Q| async move {
                    let Some(user) = s.user()? else {
                        return Ok("false".to_owned());
                    };
                    let handle = SessionHandle::parse(&q["h"]).expect("a handle");
                    Ok::<_, sessio::Error>(users.end(&user, &handle).await?.to_string())
                },
            ),
        )
        .route(
            "/end-others",
            get(|State(users): State<Users>, s: Session| async move {
                Ok::<_, sessio::Error>(users.end_others(&s).await?.to_string())
            }),
        )
        .route(
            "/cycle",
            get(|s: Session| async move {
                s.cycle_id()?;
                whoami(s).await
            }),
        )
        .route(
            "/note",
            get(|s: Session, Query(q): Q| async move {
                s.set("note", &q["v"])?;
                Ok::<_, sessio::Error>("noted")
            }),
        )
        .with_state(users)
        .layer(SessionLayer::new(store, key()))
}

async fn whoami(s: Session) -> Result<String, sessio::Error> {
    Ok(s.user()?.unwrap_or_else(|| "anonymous".to_owned()))
}

/// Logs in `user` from `device` on a fresh browser; its cookie.
pub async fn login(app: &Router, user: &str, device: &str) -> String {
    let r = call(app, &format!("/login?user={user}&device={device}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "login: {}", r.body);
    r.cookie(COOKIE).expect("login sets the cookie")
}

/// `(handle, current, device)` of each listed session.
pub fn entries(r: &Reply) -> Vec<(String, bool, String)> {
    assert_eq!(r.status, StatusCode::OK, "list: {}", r.body);
    r.body
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let handle = parts.next().unwrap().to_owned();
            let current = parts.next().unwrap() == "true";
            (handle, current, parts.next().unwrap_or_default().to_owned())
        })
        .collect()
}

pub async fn who(app: &Router, cookie: &str) -> String {
    let r = call(app, "/whoami", Some(cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "whoami: {}", r.body);
    r.body
}

/// The handle of the session logged in from `device`, from a listing.
pub fn handle_of(list: &[(String, bool, String)], device: &str) -> String {
    list.iter()
        .find(|(_, _, d)| d == device)
        .unwrap_or_else(|| panic!("no session from {device} in {list:?}"))
        .0
        .clone()
}

/// SECURITY K56 / K57: two logins of one user: each lists both, its own
/// marked; ending the other logs it out on its next request and the one
/// after; another user's handle ends nothing.
pub async fn two_logins_list_and_end_the_other(store: SqlStore) {
    let app = app(store);
    let a = login(&app, "alice", "laptop").await;
    let b = login(&app, "alice", "phone").await;
    let c = login(&app, "bob", "desktop").await;

    let list = entries(&call(&app, "/list", Some(&a)).await);
    assert_eq!(list.len(), 2, "{list:?}");
    let current: Vec<_> = list.iter().filter(|e| e.1).collect();
    assert_eq!(current.len(), 1, "one current session: {list:?}");
    assert_eq!(current[0].2, "laptop");
    let (ha, hb) = (handle_of(&list, "laptop"), handle_of(&list, "phone"));
    let seen_by_b = entries(&call(&app, "/list", Some(&b)).await);
    assert_eq!(
        handle_of(&seen_by_b, "phone"),
        hb,
        "a handle differs between listings"
    );
    assert!(seen_by_b.iter().any(|e| e.1 && e.0 == hb));

    // Bob cannot end, nor see, Alice's sessions.
    let r = call(&app, &format!("/end?h={ha}"), Some(&c)).await;
    assert_eq!(r.body, "false", "bob ended alice's session");
    assert_eq!(who(&app, &a).await, "alice");
    let bobs = entries(&call(&app, "/list", Some(&c)).await);
    assert_eq!(bobs.len(), 1, "{bobs:?}");
    assert_eq!(bobs[0].2, "desktop");

    let r = call(&app, &format!("/end?h={hb}"), Some(&a)).await;
    assert_eq!(r.body, "true");
    assert_eq!(
        who(&app, &b).await,
        "anonymous",
        "ended session still logged in"
    );
    assert_eq!(who(&app, &b).await, "anonymous", "and on the request after");
    assert_eq!(who(&app, &a).await, "alice");
    let list = entries(&call(&app, "/list", Some(&a)).await);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].0, ha);
    let r = call(&app, &format!("/end?h={hb}"), Some(&a)).await;
    assert_eq!(r.body, "false", "ended twice");
}

/// SECURITY K56 / K57: "end all others" while the other session cycles its
/// id in a loop: no session of the other browser survives, whichever of its
/// cookies it presents.
pub async fn end_others_racing_a_cycling_session_leaves_none(store: SqlStore, rounds: usize) {
    let app = app(store);
    let mut cycles = Vec::new();
    for round in 0..rounds {
        let user = format!("carol{round}");
        let kept = login(&app, &user, "laptop").await;
        let other = login(&app, &user, "phone").await;
        let stop = Arc::new(AtomicBool::new(false));
        let cycler = {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let mut held = vec![other];
                while !stop.load(Ordering::SeqCst) {
                    let r = call(&app, "/cycle", Some(held.last().unwrap())).await;
                    assert_eq!(r.status, StatusCode::OK, "cycle: {}", r.body);
                    // Logged out, or its rotation found the session ended.
                    match r.cookie(COOKIE) {
                        Some(c) if r.body != "anonymous" => held.push(c),
                        _ => break,
                    }
                }
                held
            })
        };
        // Let the cycling start before ending it.
        tokio::task::yield_now().await;
        let r = call(&app, "/end-others", Some(&kept)).await;
        assert_eq!(r.status, StatusCode::OK, "end-others: {}", r.body);
        let ended: usize = r.body.parse().unwrap();
        stop.store(true, Ordering::SeqCst);
        let held = cycler.await.unwrap();
        assert!(ended >= 1, "round {round}: nothing ended");
        cycles.push(held.len() - 1);
        for cookie in &held {
            assert_eq!(
                who(&app, cookie).await,
                "anonymous",
                "round {round}: a session of the other browser survived ({} cycles)",
                held.len() - 1
            );
        }
        assert_eq!(
            who(&app, &kept).await,
            user,
            "round {round}: kept one ended"
        );
        let list = entries(&call(&app, "/list", Some(&kept)).await);
        assert_eq!(list.len(), 1, "round {round}: {list:?}");
        assert!(list[0].1);
    }
    eprintln!("cycles of the other session per round before it was ended: {cycles:?}");
}

/// SECURITY K56: two app instances (two stores, two pools, two layers) on
/// one database: each lists the other's logins, and an end from one logs
/// the session out on the other.
pub async fn two_instances_see_each_others_ends(one: SqlStore, two: SqlStore) {
    let (one, two) = (app(one), app(two));
    let a = login(&one, "dora", "laptop").await;
    let b = login(&two, "dora", "phone").await;
    let list = entries(&call(&one, "/list", Some(&a)).await);
    assert_eq!(list.len(), 2, "{list:?}");
    let hb = handle_of(&list, "phone");
    assert_eq!(who(&two, &b).await, "dora");
    assert_eq!(
        call(&one, &format!("/end?h={hb}"), Some(&a)).await.body,
        "true"
    );
    assert_eq!(
        who(&two, &b).await,
        "anonymous",
        "ended on one, alive on two"
    );
    assert_eq!(who(&one, &b).await, "anonymous");
    let c = login(&one, "dora", "tablet").await;
    assert_eq!(call(&two, "/end-others", Some(&a)).await.body, "1");
    assert_eq!(who(&one, &c).await, "anonymous");
    assert_eq!(who(&two, &a).await, "dora");
}

/// SECURITY K57: a listing holds the `_user…` keys of each session of that
/// user only, oldest binding first, never the rest of the data; handles are
/// the rows' hashed keys; junk handles end nothing.
pub async fn listing_holds_user_keys_only_oldest_first(store: SqlStore) {
    use serde_json::json;
    use sessio::store::{storage_key, Store, UserIndex};

    let bound = |since: u64| {
        super::record(&[
            ("_user", json!("fay")),
            ("_user_since", json!(since)),
            ("_user_meta", json!({"device": "phone"})),
            ("cart", json!([1, 2, 3])),
        ])
    };
    let newer = store
        .create(&bound(20), super::expires_in(60))
        .await
        .unwrap();
    let older = store
        .create(&bound(10), super::expires_in(60))
        .await
        .unwrap();
    let listed = store.sessions_of("fay").await.unwrap();
    let handles: Vec<&str> = listed.iter().map(|l| l.handle.as_str()).collect();
    assert_eq!(handles, [storage_key("", &older), storage_key("", &newer)]);
    for l in &listed {
        assert_eq!(l.record.get("_user"), Some(&json!("fay")));
        assert_eq!(
            l.record.get("_user_meta"),
            Some(&json!({"device": "phone"}))
        );
        assert_eq!(
            l.record.get("cart"),
            None,
            "a listing read the session's data"
        );
    }
    assert!(store.sessions_of("fa").await.unwrap().is_empty());
    assert!(store.sessions_of("\"fay\"").await.unwrap().is_empty());
    for junk in ["", "' OR 1=1 --", &storage_key("", &older).to_uppercase()] {
        assert!(!store.end_session("fay", junk).await.unwrap(), "{junk:?}");
    }
    assert!(store.load(&older).await.unwrap().is_some());
}
