//! The `many` example: two named sessions with their own stores and expiry.

mod common;

#[allow(dead_code)]
#[path = "../examples/many.rs"]
mod many;

use axum::body::Body;
use axum::http::{header, Request};
use common::send;

fn request(method: &str, path: &str, cookies: &[&String]) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    let joined: Vec<&str> = cookies.iter().map(|c| c.as_str()).collect();
    if !joined.is_empty() {
        req = req.header(header::COOKIE, joined.join("; "));
    }
    req.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn cart_and_auth_live_side_by_side_and_logout_keeps_the_cart() {
    let app = many::app().unwrap();
    let reply = send(&app, request("POST", "/cart?item=apple", &[])).await;
    let cart = reply.cookie("cart").expect("a cart cookie");
    let set = reply.set_cookie("cart").unwrap();
    assert!(
        set.contains("Max-Age="),
        "the cart outlives the browser: {set}"
    );
    assert!(
        reply.cookie("auth").is_none(),
        "the auth session was not touched"
    );

    let reply = send(&app, request("POST", "/login?user=ada", &[&cart])).await;
    let auth = reply.cookie("auth").expect("an auth cookie");
    let set = reply.set_cookie("auth").unwrap();
    assert!(
        !set.contains("Max-Age="),
        "auth is a browser-session cookie: {set}"
    );

    let reply = send(&app, request("GET", "/", &[&cart, &auth])).await;
    assert_eq!(reply.body, r#"{"cart":["apple"],"user":"ada"}"#);

    let reply = send(&app, request("POST", "/logout", &[&cart, &auth])).await;
    assert!(reply.set_cookie("auth").unwrap().contains("Max-Age=0"));
    let reply = send(&app, request("GET", "/", &[&cart, &auth])).await;
    assert_eq!(reply.body, r#"{"cart":["apple"],"user":null}"#);
}
