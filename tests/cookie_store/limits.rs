//! The 4 KiB cookie limit on the way out, and a fresh nonce for every seal.

use std::collections::HashSet;

use super::*;

/// Error-handler status for an oversized cookie, so the test can tell the
/// handler's response from any other 500.
const TOO_LARGE: StatusCode = StatusCode::INSUFFICIENT_STORAGE;

fn strict_layer(store: CookieStore, clock: &ManualClock) -> SessionLayer<CookieStore> {
    SessionLayer::builder(store, key(1))
        .with_clock(clock.clone())
        .with_error_handler(|err| {
            let mut res = http::Response::new(());
            *res.status_mut() = match err {
                sessio::Error::CookieTooLarge { .. } => TOO_LARGE,
                other => other.status(),
            };
            res
        })
        .build()
        .expect("layer")
}

/// The number after `field=` in a log line.
fn logged_number(text: &str, field: &str) -> usize {
    let at = text.find(&format!("{field}=")).expect(field) + field.len() + 1;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a number")
}

// SECURITY C18: data that would seal to more than 4096 bytes is not saved:
// the response is the error handler's 5xx, with no Set-Cookie (neither for a
// new session nor for one that had a cookie), and a tracing ERROR gives the
// size and the limit. A payload just under the limit still saves.
#[tokio::test]
async fn oversized_payload_is_the_error_handlers_5xx_without_set_cookie() {
    for store in [CookieStore::new(), CookieStore::signed_only()] {
        let clock = ManualClock::new(start());
        let layer = strict_layer(store, &clock);
        let fits = send_with(&layer, "/set", None, Some(json!("x".repeat(2900)))).await;
        assert_eq!(fits.status, StatusCode::OK, "{store:?}: 2.9 KB refused");
        let cookie = fits.pair();
        assert!(
            cookie.len() <= 4096,
            "{store:?}: {} bytes sent",
            cookie.len()
        );

        for existing in [None, Some(cookie.as_str())] {
            let (logs, guard) = Logs::capture();
            let big = json!("y".repeat(5000));
            let reply = send_with(&layer, "/set", existing, Some(big)).await;
            drop(guard);
            assert_eq!(reply.status, TOO_LARGE, "{store:?}: {reply:?}");
            assert!(reply.set_cookie.is_none(), "{store:?}: {reply:?}");
            let text = logs.text();
            let line = text
                .lines()
                .find(|l| l.contains("ERROR") && l.contains("too large"))
                .unwrap_or_else(|| panic!("{store:?}: no ERROR event in {text}"));
            assert!(logged_number(line, "size") > 5000, "{line}");
            assert_eq!(logged_number(line, "limit"), 4096, "{line}");
        }
        // The old cookie was not replaced, and still holds the old data.
        let kept = send(&layer, "/read", Some(&cookie)).await;
        assert_eq!(kept.data, Some(json!("x".repeat(2900))), "{store:?}");
    }
}

// SECURITY C16: every seal through the store and the layer draws a fresh
// nonce. The same record is sealed again and again under one key with the
// clock frozen, so the plaintext, the associated data and the key never
// change: a nonce derived from any of them, or a counter restarting per
// request or per session, would repeat at the second seal, and a repeat
// would also make two ciphertexts equal. Beyond that, more seals only test
// the random generator: with 96-bit random nonces a repeat among n seals has
// probability about n²/2⁹⁷ (6e-20 at 1e5, 6e-18 at 1e6), so any repeat means
// a broken generator. 1e5 requests through the whole layer take a few seconds
// in a debug build; the 1e6 run (about a minute) is ignored by default.
#[tokio::test]
async fn every_seal_draws_a_fresh_nonce() {
    nonces_never_repeat(100_000).await;
}

#[tokio::test]
#[ignore = "long: run with --ignored"]
async fn a_million_seals_draw_a_million_nonces() {
    nonces_never_repeat(1_000_000).await;
}

async fn nonces_never_repeat(seals: usize) {
    let clock = ManualClock::new(start());
    let layer = layer_on(CookieStore::new(), key(1), &clock);
    let mut nonces = HashSet::with_capacity(seals);
    let mut sealed = HashSet::with_capacity(seals);
    for i in 0..seals {
        let reply = send_with(&layer, "/set", None, Some(json!("same"))).await;
        let raw = B64.decode(reply.value()).expect("base64url");
        assert!(
            nonces.insert(raw[..12].to_vec()),
            "nonce repeated at seal {i}"
        );
        assert!(sealed.insert(raw), "ciphertext repeated at seal {i}");
    }
    assert_eq!(nonces.len(), seals);
}
