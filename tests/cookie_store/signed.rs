//! Signed-only mode: the client reads the data but cannot change it.

use super::*;

const SECRET: &str = "visible to the client";

/// The decoded bytes of each base64url part of a cookie value.
fn decoded_parts(value: &str) -> Vec<Vec<u8>> {
    value
        .split('.')
        .map(|p| B64.decode(p).expect("base64url part"))
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

// Signed-only is what its docs warn about: the JSON is in the cookie for
// anyone to read. The encrypted default shows none of it.
#[tokio::test]
async fn signed_only_payload_is_readable_base64_json() {
    let clock = ManualClock::new(start());
    let json = format!(r#""data":"{SECRET}""#);

    let signed = layer_on(CookieStore::signed_only(), key(1), &clock);
    let value = send_with(&signed, "/set", None, Some(json!(SECRET)))
        .await
        .value();
    let parts = decoded_parts(&value);
    assert_eq!(parts.len(), 2, "payload.signature");
    assert!(
        contains(&parts[0], &json),
        "JSON not visible: {:?}",
        String::from_utf8_lossy(&parts[0])
    );

    let sealed = layer_on(CookieStore::new(), key(1), &clock);
    let value = send_with(&sealed, "/set", None, Some(json!(SECRET)))
        .await
        .value();
    assert!(!value.contains('.'), "encrypted value has a signature part");
    let raw = B64.decode(&value).expect("base64url");
    assert!(!contains(&raw, SECRET), "encrypted cookie shows the data");
}

// SECURITY C10 / C15: editing the readable JSON (keeping the signature), or
// the signature itself, is rejected: a fresh session, no data.
#[tokio::test]
async fn signed_only_payload_cannot_be_changed() {
    let clock = ManualClock::new(start());
    let layer = layer_on(CookieStore::signed_only(), key(1), &clock);
    let reply = send_with(&layer, "/set", None, Some(json!({"admin": false}))).await;
    let value = reply.value();
    let (payload, signature) = value.split_once('.').expect("payload.signature");
    // Control: the untouched cookie opens.
    let opened = send(&layer, "/read", Some(&reply.pair())).await;
    assert_eq!(opened.data, Some(json!({"admin": false})));

    let plain = B64.decode(payload).expect("base64url");
    let json = r#"{"data":{"admin":false}}"#;
    assert!(
        plain.ends_with(json.as_bytes()),
        "JSON is not the readable tail"
    );
    // The binary envelope (times) before the JSON is kept as it was.
    let head = &plain[..plain.len() - json.len()];
    for edited in [
        r#"{"data":{"admin":true }}"#,
        r#"{"data":{"admin":true}}"#,
        r#"{"data":{"admin":false} }"#,
        "{}",
    ] {
        let mut forged = head.to_vec();
        forged.extend_from_slice(edited.as_bytes());
        let cookie = format!("__Host-id={}.{signature}", B64.encode(&forged));
        send(&layer, "/read", Some(&cookie))
            .await
            .assert_fresh(&format!("edited to {edited}"));
    }

    // SECURITY C13: the times before the JSON are signed too; pushing the
    // expiry (or any other byte of them) breaks the signature.
    for i in 0..head.len() {
        let mut forged = plain.clone();
        forged[i] = forged[i].wrapping_add(1);
        let cookie = format!("__Host-id={}.{signature}", B64.encode(&forged));
        send(&layer, "/read", Some(&cookie))
            .await
            .assert_fresh(&format!("envelope byte {i}"));
    }

    let mut tag = B64.decode(signature).expect("base64url");
    for i in 0..tag.len() {
        tag[i] ^= 0x80;
        let cookie = format!("__Host-id={payload}.{}", B64.encode(&tag));
        send(&layer, "/read", Some(&cookie))
            .await
            .assert_fresh(&format!("signature byte {i}"));
        tag[i] ^= 0x80;
    }
}
