//! Runs the `login` example binary on the SQL stores: a login survives a
//! restart of the example (`STORE=sqlite` with its SQLite file,
//! `STORE=postgres` with `DATABASE_URL`), and the "Active sessions" page
//! lists a user's sessions and signs one out.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(port: u16, envs: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(common::example_binary("login"));
    cmd.env("PORT", port.to_string())
        // Fixed, so the restarted example reads the cookies it issued.
        .env(
            "SESSION_KEY",
            "5b0e9c1f7a3d28e4c6b1f09d8a7e3c5b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c",
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut server = Server(cmd.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("login example exited: {status}");
        }
        assert!(Instant::now() < deadline, "login example did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// A browser of sorts: keeps the cookies it is given.
struct Client {
    port: u16,
    jar: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Client {
    fn request(&mut self, method: &str, path: &str, form: Option<&str>) -> Page {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if !cookies.is_empty() {
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
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
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
            status,
            location,
            body: body.to_owned(),
        }
    }

    fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_from(path, path, fields)
    }

    /// Posts to `action` with the token of the form on the page at `page`.
    fn post_from(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = {
            let page = self.request("GET", page, None);
            let rest = page
                .body
                .split(r#"name="csrf" value=""#)
                .nth(1)
                .expect("a csrf field");
            rest.split('"').next().unwrap().to_owned()
        };
        let mut form: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", escape(v)))
            .collect();
        form.push(format!("csrf={}", escape(&token)));
        self.request("POST", action, Some(&form.join("&")))
    }
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => char::from(b).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Registers and logs in, restarts the example, and is still logged in.
fn login_survives_a_restart(envs: &[(&str, &str)]) {
    let port = free_port();
    let server = start(port, envs);
    let mut c = Client {
        port,
        jar: BTreeMap::new(),
    };
    let fields = [("username", "ada"), ("password", "correct-horse")];
    let r = c.post("/register", &fields);
    assert_eq!(
        (r.status, r.location.as_deref()),
        (303, Some("/login")),
        "{}",
        r.body
    );
    let r = c.post("/login", &fields);
    assert_eq!(
        (r.status, r.location.as_deref()),
        (303, Some("/")),
        "{}",
        r.body
    );
    let home = c.request("GET", "/", None);
    assert!(home.body.contains("Hello, ada!"), "{}", home.body);

    drop(server);
    let _server = start(port, envs);
    let home = c.request("GET", "/", None);
    assert_eq!(
        home.status, 200,
        "logged out by the restart: {:?}",
        home.location
    );
    assert!(home.body.contains("Hello, ada!"), "{}", home.body);
}

/// Two clients log in as one user; the first lists both sessions, signs the
/// other out, and the other's next request is logged out.
fn the_sessions_page_signs_out_another_device(envs: &[(&str, &str)]) {
    let port = free_port();
    let _server = start(port, envs);
    let mut a = Client {
        port,
        jar: BTreeMap::new(),
    };
    let mut b = Client {
        port,
        jar: BTreeMap::new(),
    };
    let fields = [("username", "bob"), ("password", "correct-horse")];
    a.post("/register", &fields);
    for c in [&mut a, &mut b] {
        let r = c.post("/login", &fields);
        assert_eq!(r.location.as_deref(), Some("/"), "{}", r.body);
    }
    let page = a.request("GET", "/sessions", None);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.body.matches(r#"<li class="device">"#).count(),
        2,
        "{}",
        page.body
    );
    assert_eq!(page.body.matches("this device").count(), 1);
    let handle = page
        .body
        .split(r#"name="handle" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a sign-out button")
        .to_owned();
    let r = a.post_from("/sessions", "/sessions/end", &[("handle", &handle)]);
    assert_eq!(r.location.as_deref(), Some("/sessions"), "{}", r.body);
    let page = a.request("GET", "/sessions", None);
    assert!(page.body.contains("Signed out 1 session"), "{}", page.body);
    assert_eq!(page.body.matches(r#"<li class="device">"#).count(), 1);
    let home = b.request("GET", "/", None);
    assert_eq!(
        (home.status, home.location.as_deref()),
        (303, Some("/login"))
    );
}

#[test]
fn the_sessions_page_on_sqlite_signs_out_another_device() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("login.sqlite3");
    the_sessions_page_signs_out_another_device(&[
        ("STORE", "sqlite"),
        ("DATABASE_URL", db.to_str().unwrap()),
    ]);
}

#[cfg(feature = "postgres")]
#[test]
fn the_sessions_page_on_postgres_signs_out_another_device() {
    let server = common::postgres::PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    the_sessions_page_signs_out_another_device(&[
        ("STORE", "postgres"),
        ("DATABASE_URL", &server.url()),
        ("TMPDIR", dir.path().to_str().unwrap()),
    ]);
}

#[test]
fn login_on_sqlite_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("login.sqlite3");
    login_survives_a_restart(&[("STORE", "sqlite"), ("DATABASE_URL", db.to_str().unwrap())]);
}

#[cfg(feature = "postgres")]
#[test]
fn login_on_postgres_survives_a_restart() {
    let server = common::postgres::PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    // The users' SQLite file is the default one in the temporary directory:
    // point TMPDIR elsewhere so runs do not share it.
    login_survives_a_restart(&[
        ("STORE", "postgres"),
        ("DATABASE_URL", &server.url()),
        ("TMPDIR", dir.path().to_str().unwrap()),
    ]);
}
