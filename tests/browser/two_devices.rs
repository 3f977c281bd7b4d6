//! One user signed in from two browser profiles (two devices, each with its
//! own cookies): the "Active sessions" page, signing the other one out, and
//! a password change that signs out the other one.

use fantoccini::{Client, Locator};

use super::{
    click_and_wait, fill_and_submit, flashes, save_screenshot, submit, text, wait_for_path,
};

const USER: &str = "grace";
const FIRST: &str = "first-password-1";
const SECOND: &str = "second-password-2";

async fn log_in(c: &Client, base: &str, password: &str) {
    c.goto(&format!("{base}/login"))
        .await
        .expect("opening login");
    wait_for_path(c, "/login").await;
    submit(c, USER, password).await;
    wait_for_path(c, "/").await;
    assert_eq!(text(c, "h1").await, format!("Hello, {USER}!"));
}

/// Opens the "Active sessions" page from home; its rows: (device, marked
/// "this device").
async fn open_sessions(c: &Client, base: &str) -> Vec<(String, bool)> {
    c.goto(&format!("{base}/")).await.expect("opening home");
    wait_for_path(c, "/").await;
    click_and_wait(c, "main a[href='/sessions']").await;
    wait_for_path(c, "/sessions").await;
    rows(c).await
}

async fn rows(c: &Client) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for row in c.find_all(Locator::Css("li.device")).await.expect("rows") {
        let name = row
            .find(Locator::Css(".name"))
            .await
            .expect("a device name")
            .text()
            .await
            .expect("its text");
        let current = !row
            .find_all(Locator::Css(".tag"))
            .await
            .expect("tag lookup")
            .is_empty();
        out.push((name, current));
    }
    out
}

/// Loads `path` on `base` and expects to be sent to the login form.
async fn assert_logged_out(c: &Client, base: &str, path: &str) {
    c.goto(&format!("{base}{path}"))
        .await
        .expect("loading a page");
    wait_for_path(c, "/login").await;
    c.find(Locator::Css("main input[name=password]"))
        .await
        .unwrap_or_else(|e| panic!("no login form after {path}: {e}"));
}

/// Profile `a` talks to `base_a`, profile `b` to `base_b` (the same server,
/// or two instances sharing one store).
pub(crate) async fn sign_out_the_other_device(a: &Client, base_a: &str, b: &Client, base_b: &str) {
    a.goto(&format!("{base_a}/register"))
        .await
        .expect("opening register");
    wait_for_path(a, "/register").await;
    submit(a, USER, FIRST).await;
    wait_for_path(a, "/login").await;
    log_in(a, base_a, FIRST).await;
    log_in(b, base_b, FIRST).await;

    let list = open_sessions(a, base_a).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(
        list.iter().filter(|(_, current)| *current).count(),
        1,
        "{list:?}"
    );
    for (device, _) in &list {
        assert_eq!(device, "Headless Chrome on Linux");
    }
    save_screenshot(a, "active-sessions.png").await;

    // The one sign-out button is the other session's.
    click_and_wait(a, "form[action='/sessions/end'] button").await;
    wait_for_path(a, "/sessions").await;
    assert_eq!(flashes(a).await, ["Signed out 1 session"]);
    assert_eq!(
        rows(a).await,
        [("Headless Chrome on Linux".to_owned(), true)]
    );

    // B's next page load, and the one after, find B signed out.
    assert_logged_out(b, base_b, "/").await;
    assert_logged_out(b, base_b, "/sessions").await;

    // "Sign out everywhere else".
    log_in(b, base_b, FIRST).await;
    assert_eq!(open_sessions(a, base_a).await.len(), 2);
    click_and_wait(a, "form[action='/sessions/end-others'] button").await;
    wait_for_path(a, "/sessions").await;
    assert_eq!(flashes(a).await, ["Signed out 1 other session"]);
    assert_logged_out(b, base_b, "/").await;

    // A password change on B signs A out.
    log_in(b, base_b, FIRST).await;
    click_and_wait(b, "main a[href='/password']").await;
    wait_for_path(b, "/password").await;
    fill_and_submit(b, &[("current_password", FIRST), ("new_password", SECOND)]).await;
    wait_for_path(b, "/").await;
    assert_eq!(
        flashes(b).await,
        ["Password changed. Signed out 1 other session."]
    );
    assert_logged_out(a, base_a, "/").await;
    assert_logged_out(a, base_a, "/").await;
    submit(a, USER, FIRST).await;
    wait_for_path(a, "/login").await;
    assert_eq!(flashes(a).await, ["Wrong username or password"]);
    log_in(a, base_a, SECOND).await;
    // B kept its session through its own password change.
    b.refresh().await.expect("reload");
    assert_eq!(text(b, "h1").await, format!("Hello, {USER}!"));
}
