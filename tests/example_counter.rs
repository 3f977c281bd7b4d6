//! Runs the `counter` example binary and talks HTTP to it on loopback.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `SESSION_KEY` made with `openssl rand -hex 32`.
const KEY: &str = "8d717f2cb8cf2faef2414c70c6bdfb6c1d2db08b3499da7badd6fc6e74eab66c";

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

/// One HTTP/1.1 request; returns (status line, headers, body).
fn http(port: u16, path: &str, cookie: Option<&str>) -> (String, Vec<String>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines().map(str::to_owned);
    let status = lines.next().unwrap();
    (status, lines.collect(), body.to_owned())
}

fn set_cookie(headers: &[String]) -> Option<String> {
    headers.iter().find_map(|h| {
        let (name, value) = h.split_once(": ")?;
        name.eq_ignore_ascii_case("set-cookie")
            .then(|| value.split(';').next().unwrap().to_owned())
    })
}

fn start(envs: &[(&str, &str)]) -> (Server, u16) {
    let port = free_port();
    let mut cmd = Command::new(common::example_binary("counter"));
    cmd.env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "counter example did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, port)
}

#[test]
fn counter_counts_per_session_and_index_leaves_the_session_alone() {
    counts(&[("SESSION_KEY", KEY)]);
}

#[test]
fn counter_counts_on_the_cookie_store() {
    counts(&[("SESSION_KEY", KEY), ("STORE", "cookie")]);
}

fn counts(envs: &[(&str, &str)]) {
    let (_server, port) = start(envs);
    let (status, headers, _) = http(port, "/", None);
    assert!(status.contains("200"), "{status}");
    assert!(set_cookie(&headers).is_none(), "GET / touched the session");

    let (_, headers, body) = http(port, "/incr", None);
    assert_eq!(body, r#"{"count":0}"#);
    let mut cookie = set_cookie(&headers).expect("a new session sets a cookie");
    for n in 1..=3 {
        let (_, headers, body) = http(port, "/incr", Some(&cookie));
        assert_eq!(body, format!(r#"{{"count":{n}}}"#));
        // Keep what the server sends, as a browser does (the cookie store
        // re-seals on every change).
        cookie = set_cookie(&headers).unwrap_or(cookie);
    }
    // Another client starts from zero.
    let (_, _, body) = http(port, "/incr", None);
    assert_eq!(body, r#"{"count":0}"#);
}

/// The README's recipe: two instances on two ports share one session through
/// Redis, so no sticky sessions are needed.
#[cfg(feature = "redis")]
#[test]
fn two_counters_share_one_session_through_redis() {
    let redis = common::redis::RedisServer::start();
    let url = redis.url();
    let envs = [
        ("SESSION_KEY", KEY),
        ("STORE", "redis"),
        ("REDIS_URL", url.as_str()),
    ];
    let (_a, a) = start(&envs);
    let (_b, b) = start(&envs);
    let (_, headers, body) = http(a, "/incr", None);
    assert_eq!(body, r#"{"count":0}"#);
    let mut cookie = set_cookie(&headers).expect("cookie");
    for (n, port) in [(1, b), (2, a), (3, b)] {
        let (_, headers, body) = http(port, "/incr", Some(&cookie));
        assert_eq!(
            body,
            format!(r#"{{"count":{n}}}"#),
            "instance on port {port}"
        );
        cookie = set_cookie(&headers).unwrap_or(cookie);
    }
    let keys = redis.cli(&["--scan", "--pattern", "session:*"]);
    assert_eq!(keys.lines().count(), 1, "one session record: {keys}");
}
