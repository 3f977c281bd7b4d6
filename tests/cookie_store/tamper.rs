//! Cookies changed, cut, moved or sealed under another key never open.

use super::*;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

// SECURITY C10: every single-bit flip in the nonce, the ciphertext and the
// tag of a real cookie gives a fresh session (200, no data, nothing written).
#[tokio::test]
async fn bit_flips_in_nonce_ciphertext_and_tag_start_fresh_sessions() {
    let (layer, _clock, pair) = counted(CookieStore::new()).await;
    let (name, value) = pair.split_once('=').expect("pair");
    let raw = B64.decode(value).expect("base64url");
    let tag_at = raw.len() - TAG_LEN;
    assert!(tag_at > NONCE_LEN, "no ciphertext between nonce and tag");
    let mut flipped = [0usize; 3];
    for i in 0..raw.len() {
        let region = match i {
            _ if i < NONCE_LEN => 0,
            _ if i < tag_at => 1,
            _ => 2,
        };
        for bit in 0..8 {
            let mut bytes = raw.clone();
            bytes[i] ^= 1 << bit;
            let cookie = format!("{name}={}", B64.encode(&bytes));
            send(&layer, "/read", Some(&cookie))
                .await
                .assert_fresh(&format!("byte {i} bit {bit}"));
            flipped[region] += 1;
        }
    }
    let ciphertext_bits = (tag_at - NONCE_LEN) * 8;
    assert_eq!(flipped, [NONCE_LEN * 8, ciphertext_bits, TAG_LEN * 8]);
}

// SECURITY C10: every truncation of the value, the empty one included.
#[tokio::test]
async fn truncated_cookie_starts_fresh_session() {
    for store in [CookieStore::new(), CookieStore::signed_only()] {
        let (layer, _clock, pair) = counted(store).await;
        let (name, value) = pair.split_once('=').expect("pair");
        for cut in 0..value.len() {
            let cookie = format!("{name}={}", &value[..cut]);
            send(&layer, "/read", Some(&cookie))
                .await
                .assert_fresh(&format!("{store:?} cut at {cut}"));
        }
    }
}

// SECURITY C12: the cookie name is bound into the seal, so a value moved to
// another session cookie under the same key does not open there.
#[tokio::test]
async fn value_moved_to_another_cookie_name_is_rejected() {
    for store in [CookieStore::new(), CookieStore::signed_only()] {
        let (_layer, clock, pair) = counted(store).await;
        let value = pair
            .strip_prefix("__Host-id=")
            .expect("cookie named __Host-id");
        for other in ["sid", "i", "idd", "id", "__Host-idd"] {
            let layer = SessionLayer::builder(store, key(1))
                .with_cookie_name(other)
                .with_clock(clock.clone())
                .build()
                .expect("layer");
            let moved = format!("{other}={value}");
            send(&layer, "/read", Some(&moved))
                .await
                .assert_fresh(&format!("{store:?} moved to {other}"));
        }
    }
}

// SECURITY C10: a cookie sealed under a key the layer does not hold.
#[tokio::test]
async fn wrong_key_is_rejected() {
    for store in [CookieStore::new(), CookieStore::signed_only()] {
        let (_layer, clock, pair) = counted(store).await;
        let stranger = layer_on(store, key(2), &clock);
        send(&stranger, "/read", Some(&pair))
            .await
            .assert_fresh(&format!("{store:?} under another key"));
    }
}

// SECURITY C10 / D22: garbage, non-base64 and empty values next to nothing
// else, and a tampered cookie next to a good one: the good one still wins.
#[tokio::test]
async fn garbage_is_rejected_and_does_not_hide_a_good_cookie() {
    let (layer, _clock, pair) = counted(CookieStore::new()).await;
    for junk in [
        "__Host-id=",
        "__Host-id=%%%",
        "__Host-id=....",
        "__Host-id=\"\"",
        "__Host-id=AAAA.AAAA",
        "__Host-id=é",
    ] {
        send(&layer, "/read", Some(junk)).await.assert_fresh(junk);
        let both = format!("{junk}; {pair}");
        assert_eq!(
            send(&layer, "/read", Some(&both)).await.n(),
            Some(1),
            "{junk}"
        );
    }
}

// SECURITY C18: an incoming session cookie over 4096 bytes (name + value) is
// dropped before any crypto. The proof is the reason logged: a real cookie
// grown (with well-formed base64) to exactly the limit gets as far as the tag
// check and fails there; one byte more and it is refused for its size alone.
#[tokio::test]
async fn oversized_incoming_cookie_is_dropped_before_any_crypto() {
    let (layer, _clock, pair) = counted(CookieStore::new()).await;
    let (name, value) = pair.split_once('=').expect("pair");
    for (len, too_large) in [(4096, false), (4097, true), (20_000, true)] {
        let mut raw = B64.decode(value).expect("base64url");
        let chars = len - name.len();
        raw.resize(chars * 3 / 4, 0);
        let grown = B64.encode(&raw);
        assert_eq!(name.len() + grown.len(), len);
        let cookie = format!("{name}={grown}");
        let (logs, guard) = Logs::capture();
        let reply = send(&layer, "/read", Some(&cookie)).await;
        drop(guard);
        reply.assert_fresh(&format!("{len} bytes"));
        let text = logs.text();
        let reason = if too_large {
            "cookie over 4096 bytes"
        } else {
            "signature or authentication tag did not verify"
        };
        assert!(text.contains(reason), "{len}: {text}");
        assert_eq!(text.matches("rejected session cookie").count(), 1, "{text}");
        // SECURITY H36: the log names the cookie, never its value.
        assert!(!text.contains(value), "{len}: cookie value logged");
    }
}
