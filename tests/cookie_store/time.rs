//! Times sealed in the cookie decide, never the browser; cookies are written
//! only when something changed or the expiry needs extending.

use super::*;

// SECURITY C13 / E26: a replayed cookie opens until the expiry sealed inside
// it and not a second longer, whatever the browser did with Max-Age (the test
// simply keeps sending it).
#[tokio::test]
async fn expired_payload_replayed_starts_fresh_session() {
    for store in [CookieStore::new(), CookieStore::signed_only()] {
        let clock = ManualClock::new(start());
        let layer = layer_on(store, key(1), &clock);
        let first = send(&layer, "/incr", None).await;
        assert_eq!(first.max_age(), Some(100));
        let pair = first.pair();

        clock.advance(Duration::from_secs(99));
        assert_eq!(send(&layer, "/read", Some(&pair)).await.n(), Some(1));
        clock.advance(Duration::from_secs(1));
        send(&layer, "/read", Some(&pair))
            .await
            .assert_fresh(&format!("{store:?}: replayed at its expiry"));
        clock.advance(Duration::from_secs(3600));
        send(&layer, "/read", Some(&pair))
            .await
            .assert_fresh(&format!("{store:?}: replayed an hour late"));
    }
}

// SECURITY C13: a browser-session cookie has no Max-Age at all (the browser
// would keep it until it closes); the idle window sealed inside still ends it.
#[tokio::test]
async fn browser_session_cookie_expires_on_the_server() {
    let clock = ManualClock::new(start());
    let layer = SessionLayer::builder(CookieStore::new(), key(1))
        .with_expiry(Expiry::BrowserSession {
            idle: Duration::from_secs(60),
        })
        .with_clock(clock.clone())
        .build()
        .expect("layer");
    let first = send(&layer, "/incr", None).await;
    assert_eq!(first.max_age(), None, "browser-session cookie has Max-Age");
    let pair = first.pair();
    clock.advance(Duration::from_secs(59));
    assert_eq!(send(&layer, "/read", Some(&pair)).await.n(), Some(1));
    clock.advance(Duration::from_secs(1));
    send(&layer, "/read", Some(&pair))
        .await
        .assert_fresh("browser-session cookie past its idle window");
}

// SECURITY C13: a cookie whose sealed issue time lies in the future is
// refused. Servers' clocks may differ by a few minutes, which is allowed.
#[tokio::test]
async fn issued_in_the_future_is_rejected() {
    for store in [CookieStore::new(), CookieStore::signed_only()] {
        let now = ManualClock::new(start());
        let here = layer_on(store, key(1), &now);
        for (ahead, accepted) in [(60, true), (3600, false), (86_400, false)] {
            let later = ManualClock::new(start() + Duration::from_secs(ahead));
            let there = layer_on(store, key(1), &later);
            let pair = send(&there, "/incr", None).await.pair();
            let reply = send(&here, "/read", Some(&pair)).await;
            if accepted {
                assert_eq!(reply.n(), Some(1), "{store:?}: {ahead}s ahead refused");
            } else {
                reply.assert_fresh(&format!("{store:?}: issued {ahead}s ahead"));
            }
        }
    }
}

// SECURITY B8: only changes write. A request that never loads the session and
// one that only reads it (before half the window has passed) send nothing.
#[tokio::test]
async fn read_only_and_untouched_requests_send_no_cookie() {
    for store in [CookieStore::new(), CookieStore::signed_only()] {
        let (layer, clock, pair) = counted(store).await;
        assert!(send(&layer, "/untouched", None).await.set_cookie.is_none());
        assert!(send(&layer, "/read", None).await.set_cookie.is_none());
        clock.advance(Duration::from_secs(50));
        for path in ["/untouched", "/read"] {
            let reply = send(&layer, path, Some(&pair)).await;
            assert!(reply.set_cookie.is_none(), "{store:?} {path}: {reply:?}");
        }
        let changed = send(&layer, "/incr", Some(&pair)).await;
        assert_eq!(changed.n(), Some(2));
        assert!(
            changed.set_cookie.is_some(),
            "{store:?}: change not written"
        );
    }
}

// SECURITY E25: a read after more than half the rolling window re-seals the
// same data with a new expiry; the new cookie outlives the old one.
#[tokio::test]
async fn rolling_expiry_past_half_window_reseals() {
    for store in [CookieStore::new(), CookieStore::signed_only()] {
        let (layer, clock, old) = counted(store).await;
        clock.advance(Duration::from_secs(51));
        let reply = send(&layer, "/read", Some(&old)).await;
        assert_eq!(reply.n(), Some(1));
        assert_eq!(reply.max_age(), Some(100), "{store:?}: not extended");
        let new = reply.pair();

        clock.advance(Duration::from_secs(60)); // 111 s after creation
        send(&layer, "/read", Some(&old))
            .await
            .assert_fresh(&format!("{store:?}: old cookie outlived its expiry"));
        assert_eq!(send(&layer, "/read", Some(&new)).await.n(), Some(1));
    }
}

// SECURITY J50: a cookie-store session renewed again and again (a copied
// cookie in use) still ends at the default absolute timeout.
#[tokio::test]
async fn renewals_end_at_the_default_absolute_timeout() {
    let clock = ManualClock::new(start());
    let layer = SessionLayer::builder(CookieStore::new(), key(1))
        .with_expiry(Expiry::OnInactivity(Duration::from_secs(86_400)))
        .with_clock(clock.clone())
        .build()
        .expect("valid layer");
    let mut pair = send(&layer, "/incr", None).await.pair();
    let step = Duration::from_secs(13 * 3600);
    let mut renewed = 0;
    for _ in 0..12 {
        clock.advance(step);
        let r = send(&layer, "/read", Some(&pair)).await;
        if r.n() != Some(1) {
            break;
        }
        renewed += 1;
        if r.set_cookie.is_some() {
            pair = r.pair();
        }
    }
    // 12 x 13 h = 156 h, within 7 days; the next, at 169 h, is past them.
    assert_eq!(renewed, 12, "the chain broke early");
    clock.advance(step);
    send(&layer, "/read", Some(&pair))
        .await
        .assert_fresh("a renewal chain outlived the absolute timeout");
}
