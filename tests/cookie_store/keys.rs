//! Key rotation: fallback keys open old cookies, which are re-sealed under the
//! current key; a key taken off the list revokes its cookies at once.

use super::*;

fn rotated(store: CookieStore, clock: &ManualClock) -> SessionLayer<CookieStore> {
    SessionLayer::builder(store, key(2))
        .with_fallback_keys([key(1)])
        .with_expiry(Expiry::OnInactivity(Duration::from_secs(100)))
        .with_clock(clock.clone())
        .build()
        .expect("layer")
}

// SECURITY C11: a cookie under a fallback key opens, and the response re-seals
// it under the current key: the new cookie opens with a layer that holds only
// the new key, and no longer with one that holds only the old key. Both a
// read-only request and a change re-seal.
#[tokio::test]
async fn cookie_under_fallback_key_opens_and_is_resealed_under_current_key() {
    for store in [CookieStore::new(), CookieStore::signed_only()] {
        for path in ["/read", "/incr"] {
            let (old_only, clock, old_cookie) = counted(store).await;
            clock.advance(Duration::from_secs(10));
            let reply = send(&rotated(store, &clock), path, Some(&old_cookie)).await;
            let expected = if path == "/incr" { 2 } else { 1 };
            assert_eq!(reply.n(), Some(expected), "{store:?} {path}: data lost");
            let new_cookie = reply.pair();
            assert_ne!(new_cookie, old_cookie, "{store:?} {path}: not re-sealed");
            if path == "/read" {
                // Only the key changes on a re-seal: the expiry sealed at
                // creation (100 s, 10 s ago) is kept, not extended.
                assert_eq!(reply.max_age(), Some(90), "{store:?}: expiry moved");
            }

            let new_only = layer_on(store, key(2), &clock);
            let reopened = send(&new_only, "/read", Some(&new_cookie)).await;
            assert_eq!(reopened.n(), Some(expected), "{store:?} {path}");
            assert!(reopened.set_cookie.is_none(), "{store:?}: re-sealed twice");
            send(&old_only, "/read", Some(&new_cookie))
                .await
                .assert_fresh(&format!("{store:?} {path}: still under the old key"));
        }
    }
}

// SECURITY E26: once the old key is off the list, its cookies are rejected at
// once, long before the expiry sealed in them.
#[tokio::test]
async fn key_removed_from_the_list_rejects_its_cookies_at_once() {
    for store in [CookieStore::new(), CookieStore::signed_only()] {
        let (_old_only, clock, old_cookie) = counted(store).await;
        let with_fallback = rotated(store, &clock);
        assert_eq!(
            send(&with_fallback, "/read", Some(&old_cookie)).await.n(),
            Some(1),
            "{store:?}: fallback did not open"
        );
        let removed = layer_on(store, key(2), &clock);
        send(&removed, "/read", Some(&old_cookie))
            .await
            .assert_fresh(&format!("{store:?}: removed key still opens"));
    }
}

// An untouched session is not re-sealed: no store work, no cookie, even under
// a fallback key (the cookie is re-sealed by the next request that loads it).
#[tokio::test]
async fn untouched_session_under_fallback_key_writes_nothing() {
    let (_old_only, clock, old_cookie) = counted(CookieStore::new()).await;
    let reply = send(
        &rotated(CookieStore::new(), &clock),
        "/untouched",
        Some(&old_cookie),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.set_cookie.is_none(), "{reply:?}");
}
