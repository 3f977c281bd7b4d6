//! The login example in a real browser: headless Chromium from Debian driven
//! through chromedriver. Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`scripts/install-browser`); saves `target/browser/logged-in.png`, and
//! `target/browser/active-sessions.png` from two browser profiles signed in
//! as one user, one signing the other out. With the
//! `redis` feature, also two instances sharing one hermetic redis-server
//! (`redis-server` on the PATH), saving
//! `target/browser/redis-second-instance.png`.

mod harness;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod instances;
mod two_devices;

// For the hermetic servers in `common::redis` and `common::postgres`, and
// the example binary's path.
#[cfg(any(feature = "redis", feature = "postgres"))]
#[path = "../common/mod.rs"]
mod common;

#[allow(dead_code)]
#[path = "../../examples/login/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../../examples/login/devices.rs"]
mod devices;
#[path = "../../examples/login/pages.rs"]
mod pages;
#[path = "../../examples/login/users.rs"]
mod users;

use std::path::Path;
use std::time::{Duration, Instant};

use devices::Devices;
use fantoccini::{Client, Locator};
use harness::{serve, work_dir, Browser};
use sessio::users::UserSessions;
use sessio::{Key, MemoryStore};

/// The login app on the memory store, the sessions page reading that store.
fn login_app() -> axum::Router {
    let users = users::Users::open(Path::new(":memory:")).expect("an in-memory user table");
    let options = app::Options {
        key: Key::generate(),
        secure: false,
    };
    let store = MemoryStore::new();
    let devices = Devices::new(UserSessions::new(store.clone()));
    app::router(store, devices, users, options).expect("the login app")
}

/// The login app on `store`, with the users in the SQLite file at `db`.
#[cfg(feature = "redis")]
fn login_app_on<St: sessio::store::UserIndex + Clone>(
    store: St,
    db: &Path,
    key: Key,
) -> axum::Router {
    let users = users::Users::open(db).expect("the user table");
    let options = app::Options { key, secure: false };
    let devices = Devices::new(UserSessions::new(store.clone()));
    app::router(store, devices, users, options).expect("the login app")
}

/// Waits until the browser shows `path` (after a redirect or a form post).
async fn wait_for_path(c: &Client, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = c.current_url().await.expect("the current URL");
        if url.path() == path {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected to reach {path}, still at {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts the browser is on the server at `base` (`http://127.0.0.1:port`).
#[cfg(feature = "redis")]
async fn assert_on(c: &Client, base: &str) {
    let url = c.current_url().await.expect("the current URL");
    assert_eq!(url.origin().ascii_serialization(), base, "at {url}");
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
        .text()
        .await
        .expect("element text")
}

async fn flashes(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for el in c
        .find_all(Locator::Css(".flash"))
        .await
        .expect("flash lookup")
    {
        out.push(el.text().await.expect("flash text"));
    }
    out
}

/// Clicks the element at `css` and waits until the browser has left the
/// current document: a form that posts to its own page redirects back to the
/// same path, so the URL alone cannot tell that the new page is there.
async fn click_and_wait(c: &Client, css: &str) {
    let old = c.find(Locator::Css("html")).await.expect("the document");
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    // The old root element goes stale once the new document replaced it.
    while old.tag_name().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "clicking {css} loaded no new page"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn save_screenshot(c: &Client, name: &str) {
    let shot = c.screenshot().await.expect("a screenshot");
    std::fs::write(work_dir().join(name), shot).expect("saving the screenshot");
}

/// Fills the page's form and submits it with its button.
async fn submit(c: &Client, username: &str, password: &str) {
    fill_and_submit(c, &[("username", username), ("password", password)]).await;
}

/// Types each value into the main form's field of that name, then submits.
async fn fill_and_submit(c: &Client, fields: &[(&str, &str)]) {
    for (name, value) in fields {
        let field = c
            .find(Locator::Css(&format!("main input[name={name}]")))
            .await
            .unwrap_or_else(|e| panic!("no {name} field: {e}"));
        field.clear().await.expect("clearing a field");
        field.send_keys(value).await.expect("typing");
    }
    click_and_wait(c, "main button[type=submit]").await;
}

async fn register_login_logout(c: &Client, base: &str) {
    c.goto(&format!("{base}/")).await.expect("opening the app");
    wait_for_path(c, "/login").await;
    click_and_wait(c, "main a[href='/register']").await;
    wait_for_path(c, "/register").await;

    submit(c, "ada", "correct-horse-battery").await;
    wait_for_path(c, "/login").await;
    assert_eq!(flashes(c).await, ["Registered, please log in"]);

    submit(c, "ada", "not-her-password").await;
    wait_for_path(c, "/login").await;
    assert_eq!(flashes(c).await, ["Wrong username or password"]);
    save_screenshot(c, "wrong-password.png").await;
    c.refresh().await.expect("reload");
    assert!(flashes(c).await.is_empty(), "a flash was shown twice");

    submit(c, "ada", "correct-horse-battery").await;
    wait_for_path(c, "/").await;
    assert_eq!(text(c, "h1").await, "Hello, ada!");
    save_screenshot(c, "logged-in.png").await;
    // HttpOnly: page scripts cannot read the session cookie.
    let cookies = c
        .execute("return document.cookie", vec![])
        .await
        .expect("running a script");
    assert_eq!(
        cookies,
        serde_json::json!(""),
        "the session cookie is readable"
    );

    c.refresh().await.expect("reload");
    assert_eq!(text(c, "h1").await, "Hello, ada!", "logged out by a reload");

    click_and_wait(c, "form[action='/logout'] button").await;
    wait_for_path(c, "/login").await;
    assert_eq!(flashes(c).await, ["You have been logged out"]);
    c.find(Locator::Css("main input[name=password]"))
        .await
        .expect("the login form after logout");
    c.goto(&format!("{base}/")).await.expect("opening home");
    wait_for_path(c, "/login").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_registers_logs_in_stays_logged_in_and_logs_out() {
    let base = serve(login_app()).await;
    let browser = Browser::start().await;
    let flow = register_login_logout(browser.client(), &base);
    tokio::time::timeout(Duration::from_secs(90), flow)
        .await
        .expect("the browser flow took over 90 s");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_signs_out_another_on_the_memory_store() {
    let base = serve(login_app()).await;
    let (a, b) = Browser::start_two().await;
    let flow = two_devices::sign_out_the_other_device(a.client(), &base, b.client(), &base);
    tokio::time::timeout(Duration::from_secs(120), flow)
        .await
        .expect("the two-browser flow took over 120 s");
    a.close().await;
    b.close().await;
}

/// Logs in on instance `a`, carries on at instance `b` with the same cookie
/// (cookies for 127.0.0.1 are host-only and ignore the port), logs out there,
/// and finds `a` logged out too.
#[cfg(any(feature = "redis", feature = "postgres"))]
async fn log_in_on_one_instance_continue_on_the_other(c: &Client, a: &str, b: &str) {
    c.goto(&format!("{a}/register"))
        .await
        .expect("opening the app");
    wait_for_path(c, "/register").await;
    submit(c, "ada", "correct-horse-battery").await;
    wait_for_path(c, "/login").await;
    assert_eq!(flashes(c).await, ["Registered, please log in"]);
    submit(c, "ada", "correct-horse-battery").await;
    wait_for_path(c, "/").await;
    assert_on(c, a).await;
    assert_eq!(text(c, "h1").await, "Hello, ada!");

    c.goto(&format!("{b}/"))
        .await
        .expect("opening the other instance");
    wait_for_path(c, "/").await;
    assert_on(c, b).await;
    assert_eq!(text(c, "h1").await, "Hello, ada!", "instance B greets");
    save_screenshot(c, "redis-second-instance.png").await;
    c.refresh().await.expect("reload");
    assert_on(c, b).await;
    assert_eq!(text(c, "h1").await, "Hello, ada!", "logged out by a reload");

    click_and_wait(c, "form[action='/logout'] button").await;
    wait_for_path(c, "/login").await;
    assert_on(c, b).await;
    assert_eq!(flashes(c).await, ["You have been logged out"]);

    c.goto(&format!("{a}/"))
        .await
        .expect("opening the first instance");
    wait_for_path(c, "/login").await;
    assert_on(c, a).await;
    c.find(Locator::Css("main input[name=password]"))
        .await
        .expect("the login form on instance A");
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_one_instance_holds_on_the_other_with_redis() {
    let redis = common::redis::RedisServer::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("users.sqlite3");
    let key = Key::generate();
    let instance = || {
        let store = sessio::RedisStore::connect(&redis.url()).expect("a Redis URL");
        login_app_on(store, &db, key.clone())
    };
    let a = serve(instance()).await;
    let b = serve(instance()).await;
    assert_ne!(a, b);
    let browser = Browser::start().await;
    let flow = log_in_on_one_instance_continue_on_the_other(browser.client(), &a, &b);
    tokio::time::timeout(Duration::from_secs(90), flow)
        .await
        .expect("the browser flow took over 90 s");
    browser.close().await;
}

/// The same with the sessions in PostgreSQL: two instances over one
/// database, each with its own pool.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_one_instance_holds_on_the_other_with_postgres() {
    let pg = common::postgres::PgServer::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("users.sqlite3");
    let key = Key::generate();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let pool = sessio::store::sqlx::PgPool::connect(&pg.url())
            .await
            .expect("a pool");
        let store = sessio::SqlStore::postgres(pool);
        store.migrate().await.expect("migrate");
        instances.push(serve(login_app_on(store, &db, key.clone())).await);
    }
    let browser = Browser::start().await;
    let flow = log_in_on_one_instance_continue_on_the_other(
        browser.client(),
        &instances[0],
        &instances[1],
    );
    tokio::time::timeout(Duration::from_secs(90), flow)
        .await
        .expect("the browser flow took over 90 s");
    browser.close().await;
}

/// The same session key for both instances: either reads the other's cookies.
#[cfg(any(feature = "redis", feature = "postgres"))]
const SHARED_KEY: &str = "3f6c1a9e5b7d2048c1e3a5b7d9f0214365879aabcdef0123456789abcdef0123";

/// Two profiles, each on its own instance of the example (two processes on
/// two loopback ports) sharing one hermetic redis-server: a sign-out or a
/// password change on one instance holds on the other.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_signs_out_another_across_two_instances_sharing_redis() {
    let redis = common::redis::RedisServer::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("users.sqlite3");
    let (url, db) = (redis.url(), db.to_str().expect("a UTF-8 path").to_owned());
    let envs = [
        ("STORE", "redis"),
        ("REDIS_URL", url.as_str()),
        ("DATABASE_URL", db.as_str()),
        ("SESSION_KEY", SHARED_KEY),
    ];
    let a = instances::Instance::start(&envs);
    let b = instances::Instance::start(&envs);
    assert_ne!(a.base, b.base);
    let (pa, pb) = Browser::start_two().await;
    let flow = two_devices::sign_out_the_other_device(pa.client(), &a.base, pb.client(), &b.base);
    tokio::time::timeout(Duration::from_secs(120), flow)
        .await
        .expect("the two-browser flow took over 120 s");
    pa.close().await;
    pb.close().await;
}

/// Two profiles, each on its own instance of the example (two processes),
/// the sessions in one PostgreSQL: a sign-out or a password change on one
/// instance holds on the other.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_signs_out_another_across_two_instances_on_postgres() {
    let pg = common::postgres::PgServer::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = pg.url();
    // Users stay in the default file in the temporary directory: point it here.
    let tmp = dir.path().to_str().expect("a UTF-8 path");
    let envs = [
        ("STORE", "postgres"),
        ("DATABASE_URL", url.as_str()),
        ("TMPDIR", tmp),
        ("SESSION_KEY", SHARED_KEY),
    ];
    let a = instances::Instance::start(&envs);
    let b = instances::Instance::start(&envs);
    let (pa, pb) = Browser::start_two().await;
    let flow = two_devices::sign_out_the_other_device(pa.client(), &a.base, pb.client(), &b.base);
    tokio::time::timeout(Duration::from_secs(120), flow)
        .await
        .expect("the two-browser flow took over 120 s");
    pa.close().await;
    pb.close().await;
}
