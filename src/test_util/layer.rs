//! Scenarios that go through a `SessionLayer`, as an application would.

use std::convert::Infallible;

use http::header::{COOKIE, SET_COOKIE};
use http::{Request, Response, StatusCode};
use tower::ServiceExt;

use crate::key::Key;
use crate::layer::SessionLayer;
use crate::session::Session;
use crate::store::Store;

type Body = String;

async fn app(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let session = req
        .extensions()
        .get::<Session>()
        .cloned()
        .expect("layer installed");
    let path = req.uri().path().to_owned();
    let mut body = String::new();
    if path != "/untouched" {
        session.load().await.expect("load");
    }
    match path.as_str() {
        "/incr" => {
            let n: u64 = session.get("n").expect("get").unwrap_or(0);
            session.set("n", n + 1).expect("set");
            body = n.to_string();
        }
        "/read" => body = format!("{:?}", session.get::<u64>("n").expect("get")),
        "/flash" => session.add_flash("hello").expect("flash"),
        "/flashes" => body = session.flashes::<String>().expect("flashes").join(","),
        "/clear" => session.clear().expect("clear"),
        "/destroy" => session.destroy(),
        "/cycle" => session.cycle_id().expect("cycle"),
        _ => {}
    }
    Ok(Response::new(body))
}

struct Client<St> {
    layer: SessionLayer<St>,
}

impl<St: Store + Clone> Client<St> {
    fn new(store: &St) -> Self {
        Self {
            layer: SessionLayer::new(store.clone(), Key::from_bytes(&[42; 32]).expect("key")),
        }
    }

    /// Sends a request with `cookie`; returns status, body and the new cookie
    /// pair (`Some("")` for a removal).
    async fn get(&self, path: &str, cookie: Option<&str>) -> (StatusCode, String, Option<String>) {
        let svc = tower::ServiceBuilder::new()
            .layer(self.layer.clone())
            .service_fn(app);
        let mut req = Request::builder().uri(path);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        let res = svc
            .oneshot(req.body(String::new()).expect("request"))
            .await
            .expect("infallible");
        let set = res.headers().get(SET_COOKIE).map(|v| {
            let s = v.to_str().expect("ascii");
            s.split(';').next().unwrap_or("").to_owned()
        });
        let status = res.status();
        (status, res.into_body(), set)
    }
}

fn is_removal(pair: &Option<String>) -> bool {
    pair.as_deref().is_some_and(|p| p.ends_with('='))
}

pub(super) async fn layer_counter_counts<St: Store + Clone>(s: &St) {
    let c = Client::new(s);
    let (st, body, cookie) = c.get("/incr", None).await;
    assert_eq!(
        (st, body.as_str()),
        (StatusCode::OK, "0"),
        "layer_counter: first answer"
    );
    let mut cookie = cookie.expect("layer_counter: a new session with data sets a cookie");
    for expected in 1..4 {
        let (_, body, next) = c.get("/incr", Some(&cookie)).await;
        assert_eq!(
            body,
            expected.to_string(),
            "layer_counter: count did not advance"
        );
        // A write early in the rolling window keeps the browser's cookie when
        // the store keeps the value (an id); a client-side store's value is
        // the data, so its cookie changes with every write.
        match next {
            Some(next) => {
                assert!(
                    !is_removal(&Some(next.clone())),
                    "layer_counter: a changed session removed its cookie"
                );
                cookie = next;
            }
            None => assert!(
                !s.is_client_side(),
                "layer_counter: a changed client-side session sets no cookie"
            ),
        }
    }
}

pub(super) async fn layer_untouched_and_read_only_write_nothing<St: Store + Clone>(s: &St) {
    let c = Client::new(s);
    let (_, _, none) = c.get("/untouched", None).await;
    assert!(none.is_none(), "untouched: Set-Cookie without a session");
    let (_, _, cookie) = c.get("/incr", None).await;
    let cookie = cookie.expect("cookie");
    let (_, _, none) = c.get("/untouched", Some(&cookie)).await;
    assert!(
        none.is_none(),
        "untouched: Set-Cookie for an untouched session"
    );
    let (_, body, none) = c.get("/read", Some(&cookie)).await;
    assert_eq!(body, "Some(1)", "read-only: wrong data");
    assert!(
        none.is_none(),
        "read-only: Set-Cookie for a read-only session"
    );
}

pub(super) async fn layer_flashes_are_delivered_once<St: Store + Clone>(s: &St, server_side: bool) {
    let c = Client::new(s);
    let (_, _, cookie) = c.get("/flash", None).await;
    let cookie = cookie.expect("flash sets a cookie");
    let (_, body, after) = c.get("/flashes", Some(&cookie)).await;
    assert_eq!(body, "hello", "flashes: not delivered");
    // Reading the only data empties the session: it is removed.
    assert!(
        is_removal(&after),
        "flashes: emptied session not removed: {after:?}"
    );
    // A replay of the old cookie must not show the flash again, unless the
    // store is client-side: then the flash is inside that cookie, which
    // cannot be revoked (such stores document it).
    let (_, body, _) = c.get("/flashes", Some(&cookie)).await;
    if server_side {
        assert_eq!(body, "", "flashes: delivered twice by a server-side store");
    }
}

pub(super) async fn layer_clear_removes_cookie<St: Store + Clone>(s: &St) {
    let c = Client::new(s);
    let (_, _, cookie) = c.get("/incr", None).await;
    let cookie = cookie.expect("cookie");
    let (_, _, removal) = c.get("/clear", Some(&cookie)).await;
    assert!(
        is_removal(&removal),
        "clear: no removal cookie: {removal:?}"
    );
}

pub(super) async fn layer_destroy_revokes_old_cookie<St: Store + Clone>(s: &St) {
    let c = Client::new(s);
    let (_, _, cookie) = c.get("/incr", None).await;
    let cookie = cookie.expect("cookie");
    let (_, _, removal) = c.get("/destroy", Some(&cookie)).await;
    assert!(
        is_removal(&removal),
        "destroy: no removal cookie: {removal:?}"
    );
    let (_, body, _) = c.get("/read", Some(&cookie)).await;
    assert_eq!(
        body, "None",
        "destroy: the old cookie still reaches the data"
    );
}

pub(super) async fn layer_cycle_id_keeps_data_and_revokes_old_cookie<St: Store + Clone>(s: &St) {
    let c = Client::new(s);
    let (_, _, old) = c.get("/incr", None).await;
    let old = old.expect("cookie");
    let (_, _, new) = c.get("/cycle", Some(&old)).await;
    let new = new.expect("cycle_id: no new cookie");
    assert_ne!(new, old, "cycle_id: same cookie");
    let (_, body, _) = c.get("/read", Some(&new)).await;
    assert_eq!(body, "Some(1)", "cycle_id: data lost");
    let (_, body, _) = c.get("/read", Some(&old)).await;
    assert_eq!(
        body, "None",
        "cycle_id: the old cookie still reaches the data"
    );
}
