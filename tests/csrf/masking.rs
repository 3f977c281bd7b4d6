//! Masked tokens: a fresh mask per render, checked after unmasking.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::Router;

use crate::common::{send, Reply};
use crate::{app, assert_refused, form, request, session};

/// A rendered token of the session behind `cookie`.
pub(crate) async fn render(app: &Router, cookie: &str) -> Reply {
    let req = request(Method::GET, "/token", cookie)
        .body(Body::empty())
        .unwrap();
    send(app, req).await
}

/// `token` sent to `/echo` in the header and in a form.
pub(crate) async fn both_ways(app: &Router, cookie: &str, token: &str) -> [Reply; 2] {
    let req = request(Method::POST, "/echo", cookie)
        .header("x-csrf-token", token)
        .body(Body::from("payload"))
        .unwrap();
    let header = send(app, req).await;
    let form = send(app, form("/echo", cookie, format!("csrf={token}"))).await;
    [header, form]
}

// SECURITY J51: each render masks the secret afresh (BREACH): no two pages of
// a session carry the same token, every one of them verifies, and rendering
// again writes nothing.
#[tokio::test]
async fn two_renders_in_one_session_differ_and_both_verify() {
    let app = app();
    let (cookie, first) = session(&app).await;
    let mut seen = vec![first.clone()];
    for _ in 0..3 {
        let reply = render(&app, &cookie).await;
        assert!(reply.set_cookies().is_empty(), "rendering again wrote");
        assert_eq!(reply.body.len(), 86);
        assert!(!seen.contains(&reply.body), "a token was rendered twice");
        seen.push(reply.body);
    }
    for token in &seen {
        for reply in both_ways(&app, &cookie, token).await {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        }
    }
    // No rendered token holds the secret as it is stored.
    let secret = send(
        &app,
        request(Method::GET, "/secret", &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .body;
    assert_eq!(secret.len(), 43);
    assert!(seen.iter().all(|t| !t.contains(&secret)));
}

// SECURITY J51: the bare secret kept in the session is not a token; only
// masked tokens are accepted, in the header as in the form.
#[tokio::test]
async fn the_stored_secret_itself_is_refused() {
    let app = app();
    let (cookie, _) = session(&app).await;
    let req = request(Method::GET, "/secret", &cookie)
        .body(Body::empty())
        .unwrap();
    let secret = send(&app, req).await.body;
    assert_eq!(secret.len(), 43);
    for reply in both_ways(&app, &cookie, &secret).await {
        assert_refused(&reply, StatusCode::FORBIDDEN, "invalid CSRF token");
    }
}

// SECURITY J51: changing any bit of a token, in the masked secret or in the
// pad, makes it a token of no secret this session holds.
#[tokio::test]
async fn a_token_with_a_flipped_bit_is_refused() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let app = app();
    let (cookie, token) = session(&app).await;
    let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
    assert_eq!(bytes.len(), 64);
    for bit in [0, 7, 100, 255, 256, 300, 511] {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let flipped = URL_SAFE_NO_PAD.encode(flipped);
        for reply in both_ways(&app, &cookie, &flipped).await {
            assert_refused(&reply, StatusCode::FORBIDDEN, "invalid CSRF token");
        }
    }
    for reply in both_ways(&app, &cookie, &token).await {
        assert_eq!(reply.status, StatusCode::OK);
    }
}
