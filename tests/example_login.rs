//! Runs the `login` example binary: a bad configuration, and over HTTP with
//! a cookie jar per client, the "Active sessions" page, signing out another
//! session, and a password change that signs out the others.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "dd1f8828ab7031ae4ff59b87c164280cc83cd3828673633e515092a8e72b917d";
const FIREFOX: &str =
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
    (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) \
    AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/// A wrong `STORE` is refused before the example touches its database: it
/// exits with an error naming the variable, and no SQLite file appears.
#[test]
fn unknown_store_is_refused_before_the_database_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.sqlite3");
    let mut child = Command::new(common::example_binary("login"))
        .env("STORE", "bogus")
        .env("DATABASE_URL", &db)
        .env("SESSION_KEY", KEY)
        .env("PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("login example did not exit on STORE=bogus");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "exit status {status}");
    assert!(stderr.contains("STORE=bogus"), "stderr: {stderr}");
    assert!(
        !db.exists(),
        "the database was created before STORE was checked"
    );
}

/// The example running on a loopback port, its users in a file of its own.
struct Example {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Example {
    fn start(store: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut child = Command::new(common::example_binary("login"))
            .env("STORE", store)
            .env("DATABASE_URL", dir.path().join("users.sqlite3"))
            .env("SESSION_KEY", KEY)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("login example exited: {status}");
            }
            assert!(Instant::now() < deadline, "login example did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// A browser on its own device: its own cookie jar and User-Agent.
    fn client(&self, agent: &str) -> Client {
        Client {
            port: self.port,
            agent: agent.to_owned(),
            jar: BTreeMap::new(),
        }
    }
}

struct Client {
    port: u16,
    agent: String,
    jar: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Page {
    /// Asserts a 303 to `to`.
    fn assert_see_other(&self, to: &str) {
        assert_eq!(
            (self.status, self.location.as_deref()),
            (303, Some(to)),
            "{}",
            self.body
        );
    }
}

impl Client {
    fn request(&mut self, method: &str, path: &str, form: Option<&str>) -> Page {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             User-Agent: {}\r\n",
            self.agent
        );
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            head += &format!("Cookie: {}\r\n", cookies.join("; "));
        }
        let body = form.unwrap_or("");
        if form.is_some() {
            head += &format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        write!(s, "{head}\r\n{body}").unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let mut location = None;
        for line in lines {
            let Some((name, value)) = line.split_once(": ") else {
                continue;
            };
            if name.eq_ignore_ascii_case("set-cookie") {
                let pair = value.split(';').next().unwrap();
                let (k, v) = pair.split_once('=').unwrap();
                if v.is_empty() || value.contains("Max-Age=0") {
                    self.jar.remove(k);
                } else {
                    self.jar.insert(k.to_owned(), v.to_owned());
                }
            } else if name.eq_ignore_ascii_case("location") {
                location = Some(value.to_owned());
            }
        }
        Page {
            status: status.parse().unwrap(),
            location,
            body: body.to_owned(),
        }
    }

    fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, None)
    }

    /// Posts `fields` and, when given, the CSRF token.
    fn post(&mut self, path: &str, fields: &[(&str, &str)], csrf: Option<&str>) -> Page {
        let mut form: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", url_escape(v)))
            .collect();
        if let Some(token) = csrf {
            form.push(format!("csrf={}", url_escape(token)));
        }
        self.request("POST", path, Some(&form.join("&")))
    }

    /// The CSRF token of the page at `path`.
    fn token(&mut self, path: &str) -> String {
        let page = self.get(path);
        attribute_after(&page.body, r#"name="csrf" value=""#)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no csrf field on {path}: {page:?}"))
    }

    /// Posts the form on the page at `page` to `action`, with its token.
    fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.token(page);
        self.post(action, fields, Some(&token))
    }

    fn register(&mut self, user: &str, password: &str) {
        let fields = [("username", user), ("password", password)];
        self.submit("/register", "/register", &fields)
            .assert_see_other("/login");
    }

    fn log_in(&mut self, user: &str, password: &str) -> Page {
        let fields = [("username", user), ("password", password)];
        self.submit("/login", "/login", &fields)
    }

    fn change_password(&mut self, current: &str, new: &str) -> Page {
        let fields = [("current_password", current), ("new_password", new)];
        self.submit("/password", "/password", &fields)
    }

    /// Home is the logged-in check: a page, or a redirect to the login form.
    fn assert_logged_in(&mut self, user: &str) {
        let home = self.get("/");
        assert_eq!(home.status, 200, "{home:?}");
        assert!(
            home.body.contains(&format!("Hello, {user}!")),
            "{}",
            home.body
        );
    }

    fn assert_logged_out(&mut self) {
        self.get("/").assert_see_other("/login");
    }
}

/// Every quoted value that follows `marker` in `html`.
fn attribute_after(html: &str, marker: &str) -> Vec<String> {
    html.split(marker)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// The sign-out buttons' handles on an "Active sessions" page.
fn handles(page: &Page) -> Vec<String> {
    attribute_after(&page.body, r#"name="handle" value=""#)
}

fn rows(page: &Page) -> usize {
    page.body.matches(r#"<li class="device">"#).count()
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => char::from(b).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

const PASSWORD: &str = "correct-horse";
const NEW_PASSWORD: &str = "battery-staple";

#[test]
fn the_sessions_page_lists_each_device_and_signs_one_out() {
    let app = Example::start("memory");
    let mut laptop = app.client(FIREFOX);
    let mut desktop = app.client(CHROME);
    laptop.register("ada", PASSWORD);
    laptop.log_in("ada", PASSWORD).assert_see_other("/");
    desktop.log_in("ada", PASSWORD).assert_see_other("/");

    let home = laptop.get("/");
    assert!(home
        .body
        .contains(r#"<a href="/sessions">Active sessions</a>"#));
    let page = laptop.get("/sessions");
    assert_eq!(page.status, 200);
    assert_eq!(rows(&page), 2, "{}", page.body);
    assert_eq!(page.body.matches("this device").count(), 1);
    assert!(page.body.contains("Firefox on Linux"), "{}", page.body);
    assert!(page.body.contains("Chrome on Windows"), "{}", page.body);
    assert!(page
        .body
        .contains("Signed in just now · last seen just now"));
    // One button: the other device's; this one signs out with "Log out".
    let others = handles(&page);
    assert_eq!(others.len(), 1);
    assert!(page.body.contains("Sign out everywhere else"));

    let token = laptop.token("/sessions");
    let fields = [("handle", others[0].as_str())];
    laptop
        .post("/sessions/end", &fields, Some(&token))
        .assert_see_other("/sessions");
    let page = laptop.get("/sessions");
    assert!(page.body.contains("Signed out 1 session"), "{}", page.body);
    assert_eq!(rows(&page), 1);
    assert!(!page.body.contains("Chrome on Windows"));
    assert!(!page.body.contains("Sign out everywhere else"));

    // Its next request, and the one after, are logged out.
    desktop.assert_logged_out();
    desktop.get("/sessions").assert_see_other("/login");
    desktop.assert_logged_out();
    laptop.assert_logged_in("ada");
}

#[test]
fn sign_out_everywhere_else_keeps_only_this_session() {
    let app = Example::start("memory");
    let mut laptop = app.client(FIREFOX);
    let mut desktop = app.client(CHROME);
    let mut phone = app.client(SAFARI);
    laptop.register("bea", PASSWORD);
    for client in [&mut laptop, &mut desktop, &mut phone] {
        client.log_in("bea", PASSWORD).assert_see_other("/");
    }
    let page = phone.get("/sessions");
    assert_eq!(rows(&page), 3);
    assert!(page.body.contains("Safari on iOS"), "{}", page.body);
    phone
        .submit("/sessions", "/sessions/end-others", &[])
        .assert_see_other("/sessions");
    let page = phone.get("/sessions");
    assert!(
        page.body.contains("Signed out 2 other sessions"),
        "{}",
        page.body
    );
    assert_eq!(rows(&page), 1);
    laptop.assert_logged_out();
    desktop.assert_logged_out();
    phone.assert_logged_in("bea");
}

#[test]
fn a_password_change_signs_out_the_other_sessions() {
    let app = Example::start("memory");
    let mut a = app.client(FIREFOX);
    let mut b = app.client(CHROME);
    let mut c = app.client(SAFARI);
    a.register("cleo", PASSWORD);
    for client in [&mut a, &mut b, &mut c] {
        client.log_in("cleo", PASSWORD).assert_see_other("/");
    }

    a.change_password("not-the-password", NEW_PASSWORD)
        .assert_see_other("/password");
    assert!(a
        .get("/password")
        .body
        .contains("Your current password is wrong"));
    a.change_password(PASSWORD, "short")
        .assert_see_other("/password");
    assert!(a.get("/password").body.contains("at least 8 characters"));
    b.assert_logged_in("cleo");

    let before = a.jar.get("id").cloned();
    a.change_password(PASSWORD, NEW_PASSWORD)
        .assert_see_other("/");
    assert_ne!(a.jar.get("id").cloned(), before, "the id was not renewed");
    let home = a.get("/");
    assert!(
        home.body
            .contains("Password changed. Signed out 2 other sessions."),
        "{}",
        home.body
    );
    b.assert_logged_out();
    c.assert_logged_out();
    a.assert_logged_in("cleo");

    b.log_in("cleo", PASSWORD).assert_see_other("/login");
    b.log_in("cleo", NEW_PASSWORD).assert_see_other("/");
}

#[test]
fn the_new_forms_need_a_csrf_token() {
    let app = Example::start("memory");
    let mut a = app.client(FIREFOX);
    let mut b = app.client(CHROME);
    a.register("dora", PASSWORD);
    a.log_in("dora", PASSWORD).assert_see_other("/");
    b.log_in("dora", PASSWORD).assert_see_other("/");
    let other = handles(&a.get("/sessions")).pop().unwrap();
    let attempts: [(&str, Vec<(&str, &str)>); 3] = [
        ("/sessions/end", vec![("handle", &other)]),
        ("/sessions/end-others", vec![]),
        (
            "/password",
            vec![
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        ),
    ];
    for (path, fields) in &attempts {
        for token in [None, Some("forged-token")] {
            let reply = a.post(path, fields, token);
            assert_eq!(reply.status, 403, "{path} with {token:?}: {reply:?}");
        }
    }
    // Nothing happened: B is signed in, the old password still works.
    b.assert_logged_in("dora");
    assert_eq!(rows(&a.get("/sessions")), 2);
    app.client(SAFARI)
        .log_in("dora", PASSWORD)
        .assert_see_other("/");
}

#[test]
fn another_users_handle_ends_nothing() {
    let app = Example::start("memory");
    let mut eve = app.client(FIREFOX);
    let mut fay = app.client(CHROME);
    let mut fay_phone = app.client(SAFARI);
    eve.register("eve", PASSWORD);
    fay.register("fay", PASSWORD);
    eve.log_in("eve", PASSWORD).assert_see_other("/");
    fay.log_in("fay", PASSWORD).assert_see_other("/");
    fay_phone.log_in("fay", PASSWORD).assert_see_other("/");
    let fays = handles(&fay.get("/sessions")).pop().unwrap();

    // Eve's list shows only Eve.
    let page = eve.get("/sessions");
    assert_eq!(rows(&page), 1);
    assert!(!page.body.contains(&fays));
    for handle in [fays.as_str(), "not-a-handle"] {
        eve.submit("/sessions", "/sessions/end", &[("handle", handle)])
            .assert_see_other("/sessions");
        let page = eve.get("/sessions");
        assert!(page.body.contains("No such session"), "{}", page.body);
    }
    fay_phone.assert_logged_in("fay");
    assert_eq!(rows(&fay.get("/sessions")), 2);
}

#[test]
fn the_device_string_is_html_escaped() {
    let app = Example::start("memory");
    let mut c = app.client(r#"<script>alert("owned")</script>"#);
    c.register("gus", PASSWORD);
    c.log_in("gus", PASSWORD).assert_see_other("/");
    let page = c.get("/sessions");
    assert_eq!(rows(&page), 1, "{}", page.body);
    assert!(
        page.body
            .contains("&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script"), "{}", page.body);
}

#[test]
fn logged_out_visitors_are_sent_to_the_login_form() {
    let app = Example::start("memory");
    let mut c = app.client(FIREFOX);
    c.get("/sessions").assert_see_other("/login");
    c.get("/password").assert_see_other("/login");
}

#[test]
fn the_cookie_store_says_listing_sessions_needs_a_server_side_store() {
    let app = Example::start("cookie");
    let mut a = app.client(FIREFOX);
    a.register("hal", PASSWORD);
    a.log_in("hal", PASSWORD).assert_see_other("/");
    let page = a.get("/sessions");
    assert_eq!(page.status, 200);
    let message = "Listing sessions needs a server-side store";
    assert!(page.body.contains(message), "{}", page.body);
    assert!(page.body.contains("cookie store"), "{}", page.body);
    assert_eq!(rows(&page), 0);

    a.submit("/sessions", "/sessions/end-others", &[])
        .assert_see_other("/sessions");
    let page = a.get("/sessions");
    assert!(
        page.body.contains(r#"class="flash error""#),
        "{}",
        page.body
    );

    // The password still changes, and the page says the others stay.
    a.change_password(PASSWORD, NEW_PASSWORD)
        .assert_see_other("/");
    let home = a.get("/");
    assert!(
        home.body
            .contains("Password changed. Your other sessions could not be signed out"),
        "{}",
        home.body
    );
    a.assert_logged_in("hal");
}
