//! The login example's app over HTTP: the flow a person goes through, CSRF,
//! and session fixation; with the `redis` feature, also on Redis and across
//! two instances that share it.

mod common;

#[path = "../examples/login/app.rs"]
mod app;
#[path = "../examples/login/devices.rs"]
mod devices;
#[path = "../examples/login/pages.rs"]
mod pages;
#[path = "../examples/login/users.rs"]
mod users;

use std::path::Path;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use common::{key, send, Reply};
use devices::Devices;
use sessio::users::UserSessions;
use sessio::{CookieStore, MemoryStore};

fn app_with(secure: bool) -> Router {
    let store = MemoryStore::new();
    let devices = Devices::new(UserSessions::new(store.clone()));
    app_on(store, devices, secure)
}

/// On a store without a user index (the cookie store), the sessions page
/// says so.
fn app_unlisted<St: sessio::Store>(store: St) -> Router {
    app_on(store, Devices::unlisted("no index in this test"), false)
}

fn app_on<St: sessio::Store>(store: St, devices: Devices, secure: bool) -> Router {
    let users = users::Users::open(Path::new(":memory:")).unwrap();
    let options = app::Options { key: key(), secure };
    app::router(store, devices, users, options).unwrap()
}

/// A client that keeps one cookie, as a browser would.
/// A browser: its cookie jar, name to value.
struct Client {
    app: Router,
    jar: std::collections::BTreeMap<String, String>,
}

impl Client {
    fn new(app: &Router) -> Self {
        Self {
            app: app.clone(),
            jar: Default::default(),
        }
    }

    /// The session cookie's `name=value`, if the browser holds one.
    fn session(&self) -> Option<String> {
        self.jar.get("id").map(|v| format!("id={v}"))
    }

    /// Puts a session cookie `id=value` in the jar.
    fn set_session(&mut self, pair: String) {
        let (_, v) = pair.split_once('=').unwrap();
        self.jar.insert("id".to_owned(), v.to_owned());
    }

    async fn get(&mut self, path: &str) -> Reply {
        let req = self.request("GET", path).body(Body::empty()).unwrap();
        self.send(req).await
    }

    /// Posts a form; `csrf` is added from the last page's hidden field.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)], csrf: Option<&str>) -> Reply {
        let mut body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if let Some(token) = csrf {
            body.push(format!("csrf={token}"));
        }
        let req = self
            .request("POST", path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.join("&")))
            .unwrap();
        self.send(req).await
    }

    fn request(&self, method: &str, path: &str) -> axum::http::request::Builder {
        let req = Request::builder().method(method).uri(path);
        if self.jar.is_empty() {
            return req;
        }
        let header: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        req.header(header::COOKIE, header.join("; "))
    }

    /// Sends the next requests to `app`, keeping the cookie: the same browser
    /// on another instance of the app.
    #[cfg(feature = "redis")]
    fn switch_to(&mut self, app: &Router) {
        self.app = app.clone();
    }

    async fn send(&mut self, req: Request<Body>) -> Reply {
        let reply = send(&self.app, req).await;
        for set in reply.set_cookies() {
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
        reply
    }

    /// The CSRF token in the form of the page at `path`.
    async fn token(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        token_in(&page.body).unwrap_or_else(|| panic!("no csrf field on {path}: {}", page.body))
    }

    async fn register(&mut self, user: &str, password: &str) -> Reply {
        let token = self.token("/register").await;
        let fields = [("username", user), ("password", password)];
        self.post("/register", &fields, Some(&token)).await
    }

    async fn login(&mut self, user: &str, password: &str) -> Reply {
        let token = self.token("/login").await;
        let fields = [("username", user), ("password", password)];
        self.post("/login", &fields, Some(&token)).await
    }
}

fn token_in(html: &str) -> Option<String> {
    let rest = html.split(r#"name="csrf" value=""#).nth(1)?;
    Some(rest.split('"').next()?.to_owned())
}

fn assert_see_other(reply: &Reply, to: &str) {
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.header("location"), Some(to));
}

#[tokio::test]
async fn register_login_greet_logout() {
    flow(&app_with(false)).await;
}

#[tokio::test]
async fn register_login_greet_logout_on_the_cookie_store() {
    flow(&app_unlisted(CookieStore::new())).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn register_login_greet_logout_on_redis() {
    let redis = common::redis::RedisServer::start();
    let store = sessio::RedisStore::connect(&redis.url()).unwrap();
    let devices = Devices::new(UserSessions::new(store.clone()));
    flow(&app_on(store, devices, false)).await;
}

async fn flow(app: &Router) {
    let mut c = Client::new(app);
    assert_see_other(&c.get("/").await, "/login");

    assert_see_other(&c.register("ada", "correct-horse").await, "/login");
    let page = c.get("/login").await;
    assert!(
        page.body.contains("Registered, please log in"),
        "{}",
        page.body
    );
    let page = c.get("/login").await;
    assert!(!page.body.contains("Registered"), "flash shown twice");

    assert_see_other(&c.login("ada", "wrong-password").await, "/login");
    let page = c.get("/login").await;
    assert!(page.body.contains("Wrong username or password"));
    let page = c.get("/login").await;
    assert!(!page.body.contains("Wrong username"), "flash shown twice");

    assert_see_other(&c.login("ada", "correct-horse").await, "/");
    let home = c.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Hello, ada!"), "{}", home.body);
    // Logged in, the login page sends you home.
    assert_see_other(&c.get("/login").await, "/");

    let token = token_in(&home.body).expect("the logout form has a token");
    assert_see_other(&c.post("/logout", &[], Some(&token)).await, "/login");
    assert!(c
        .get("/login")
        .await
        .body
        .contains("You have been logged out"));
    assert_see_other(&c.get("/").await, "/login");
}

#[tokio::test]
async fn posts_without_a_token_get_403() {
    let app = app_with(false);
    let mut c = Client::new(&app);
    c.register("bob", "hunter2hunter2").await;
    c.login("bob", "hunter2hunter2").await;
    let fields = [("username", "bob"), ("password", "hunter2hunter2")];
    for path in ["/login", "/register", "/logout"] {
        let reply = c.post(path, &fields, None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert!(reply.body.contains("CSRF"), "{path}: {}", reply.body);
        let reply = c.post(path, &fields, Some("forged-token")).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Still logged in: the forged logout did nothing.
    assert!(c.get("/").await.body.contains("Hello, bob!"));
}

// SECURITY E23: the id changes at login; the pre-login cookie stays anonymous.
#[tokio::test]
async fn the_pre_login_cookie_does_not_authenticate_after_login() {
    let app = app_with(false);
    let mut c = Client::new(&app);
    c.register("carol", "s3cret-pass").await;
    let token = c.token("/login").await;
    let before = c.session().expect("registering left a flash in a session");
    let fields = [("username", "carol"), ("password", "s3cret-pass")];
    assert_see_other(&c.post("/login", &fields, Some(&token)).await, "/");
    let after = c.session().unwrap();
    assert_ne!(before, after, "login kept the session id");
    assert!(c.get("/").await.body.contains("Hello, carol!"));

    // An attacker who planted or saw `before` gets nothing.
    let mut attacker = Client::new(&app);
    attacker.set_session(before);
    assert_see_other(&attacker.get("/").await, "/login");
}

// SECURITY E24: logout deletes the record; the old cookie, replayed, is anonymous.
#[tokio::test]
async fn a_cookie_replayed_after_logout_is_anonymous() {
    let app = app_with(false);
    let mut c = Client::new(&app);
    c.register("dave", "long-enough").await;
    c.login("dave", "long-enough").await;
    let logged_in = c.session().unwrap();
    let token = token_in(&c.get("/").await.body).unwrap();
    c.post("/logout", &[], Some(&token)).await;
    let mut replay = Client::new(&app);
    replay.set_session(logged_in);
    assert_see_other(&replay.get("/").await, "/login");
}

#[tokio::test]
async fn registration_refusals_are_flashed() {
    let app = app_with(false);
    let mut c = Client::new(&app);
    assert_see_other(&c.register("erin", "password-1").await, "/login");
    for (user, password, message) in [
        ("ERIN", "password-2", "That username is taken"),
        ("x", "password-3", "Usernames are 3 to 32"),
        ("frank", "short", "at least 8 characters"),
        ("<script>", "password-4", "Usernames are 3 to 32"),
    ] {
        assert_see_other(&c.register(user, password).await, "/register");
        let page = c.get("/register").await;
        assert!(page.body.contains(message), "{user}: {}", page.body);
    }
}

#[tokio::test]
async fn an_unknown_user_gets_the_same_answer_as_a_wrong_password() {
    let app = app_with(false);
    let mut c = Client::new(&app);
    assert_see_other(&c.login("nobody", "whatever-1").await, "/login");
    assert!(c
        .get("/login")
        .await
        .body
        .contains("Wrong username or password"));
}

#[tokio::test]
async fn the_cookie_is_http_only_and_host_bound_when_secure() {
    let mut plain = Client::new(&app_with(false));
    let page = plain.get("/login").await;
    // An anonymous visitor gets only the CSRF companion cookie (SECURITY J46).
    assert!(
        page.set_cookie("id").is_none(),
        "the login page stored a session"
    );
    let cookie = page
        .set_cookie("id-csrf")
        .expect("the login page sets a cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");

    let mut secure = Client::new(&app_with(true));
    let page = secure.get("/login").await;
    let cookie = page.set_cookie("__Host-id-csrf").expect("a __Host- cookie");
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(page.header("content-security-policy").is_some());
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
}

/// Two instances of the app, A and B, each with its own `RedisStore` on one
/// hermetic redis-server, the same key and one users file: what
/// `STORE=redis` with two `PORT`s runs.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_login_on_one_instance_holds_on_the_other_with_redis() {
    let redis = common::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.sqlite3");
    let instance = || {
        let store = sessio::RedisStore::connect(&redis.url()).unwrap();
        let users = users::Users::open(&db).unwrap();
        let options = app::Options {
            key: key(),
            secure: false,
        };
        let devices = Devices::new(UserSessions::new(store.clone()));
        app::router(store, devices, users, options).unwrap()
    };
    let (a, b) = (instance(), instance());

    let mut c = Client::new(&a);
    assert_see_other(&c.register("ada", "correct-horse").await, "/login");
    assert_see_other(&c.login("ada", "correct-horse").await, "/");
    let logged_in = c.session().unwrap();

    c.switch_to(&b);
    let home = c.get("/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("Hello, ada!"), "{}", home.body);
    let token = token_in(&home.body).expect("the logout form has a token");
    assert_see_other(&c.post("/logout", &[], Some(&token)).await, "/login");

    c.switch_to(&a);
    assert_see_other(&c.get("/").await, "/login");
    // The notice B stored after the logout shows on A.
    let page = c.get("/login").await;
    assert!(
        page.body.contains("You have been logged out"),
        "{}",
        page.body
    );
    // B's logout deleted the record: the logged-in cookie, replayed on A,
    // is anonymous.
    let mut replay = Client::new(&a);
    replay.set_session(logged_in);
    assert_see_other(&replay.get("/").await, "/login");
}

// SECURITY J51: the example's pages never render the same token twice, and a
// token from an earlier page of the session still works.
#[tokio::test]
async fn every_page_renders_a_fresh_token_and_older_ones_still_work() {
    let app = app_with(false);
    let mut c = Client::new(&app);
    c.register("dora", "s3cret-pass").await;
    let older = c.token("/login").await;
    let newer = c.token("/login").await;
    let register = c.token("/register").await;
    assert_ne!(older, newer);
    assert_ne!(newer, register);
    let fields = [("username", "dora"), ("password", "s3cret-pass")];
    assert_see_other(&c.post("/login", &fields, Some(&older)).await, "/");
    assert!(c.get("/").await.body.contains("Hello, dora!"));
}
