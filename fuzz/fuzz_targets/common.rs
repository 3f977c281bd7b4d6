//! Drives one request with attacker-chosen `Cookie` header lines through a
//! session layer and checks the promise: never a panic, never a 5xx, never a
//! session that the input did not earn.

use std::convert::Infallible;
use std::sync::OnceLock;

use http::{HeaderValue, Request, Response, StatusCode};
use sessio::store::Store;
use sessio::{Key, Session, SessionLayer};
use tower::ServiceExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap())
}

async fn app(req: Request<String>) -> Result<Response<String>, Infallible> {
    let s = req.extensions().get::<Session>().unwrap().clone();
    s.load().await.unwrap();
    // A forged cookie must never reach data.
    assert!(s.get::<String>("secret").unwrap().is_none(), "forged cookie reached a session");
    Ok(Response::new(String::new()))
}

pub fn drive<St: Store + Clone>(store: &St, lines: &[&[u8]]) {
    let layer = SessionLayer::new(store.clone(), Key::from_bytes(&[3; 32]).unwrap());
    let mut req = Request::new(String::new());
    for line in lines {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            req.headers_mut().append(http::header::COOKIE, v);
        }
    }
    let svc = tower::ServiceBuilder::new().layer(layer).service_fn(app);
    let res = runtime().block_on(svc.oneshot(req)).unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
