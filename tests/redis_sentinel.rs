//! RedisStore behind Redis Sentinel: a real master, a replica and three
//! sentinels on loopback; the master is killed and the store follows the
//! replica that the sentinels promote, or is demoted under the store's held
//! connection and the store drops that connection.

mod common;

use std::io::ErrorKind;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::call;
use common::redis::{app, free_port, read_skips_the_refresh, RedisServer};
use http::StatusCode;
use sessio::clock::ManualClock;
use sessio::{Expiry, RedisStore, SessionLayer};
use tokio::sync::Barrier;

const SERVICE: &str = "sessio";
/// How long the sentinels wait before they call the master down.
const DOWN_AFTER_MS: u64 = 500;
/// Also how long a sentinel waits before it tries again after an election
/// that failed (twice this): small, so a split vote costs seconds, not minutes.
const FAILOVER_TIMEOUT_MS: u64 = 2000;
const SETUP: Duration = Duration::from_secs(30);

/// One `redis-sentinel` process, killed on drop.
struct Sentinel {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    fn start(master_port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "bind 127.0.0.1\nport {port}\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n\
                 sentinel parallel-syncs {SERVICE} 1\n",
                dir = dir.path().display()
            ),
        )
        .expect("sentinel.conf");
        let child = match Command::new("redis-sentinel")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "redis-sentinel not found on PATH: install it with \
                 `apt-get install -y redis-sentinel` (Debian/Ubuntu)"
            ),
            Err(e) => panic!("could not run redis-sentinel: {e}"),
        };
        let sentinel = Self {
            child,
            port,
            _dir: dir,
        };
        wait_for(
            || sentinel.try_cli(&["PING"]).as_deref() == Some("PONG"),
            || sentinel.log(),
        );
        sentinel
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("sentinel.log")).unwrap_or_default()
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        cli(self.port, args)
    }

    /// A field of `SENTINEL MASTER`, e.g. `num-other-sentinels`.
    fn master_field(&self, field: &str) -> Option<String> {
        let out = self.try_cli(&["SENTINEL", "MASTER", SERVICE])?;
        let lines: Vec<&str> = out.lines().collect();
        let at = lines.iter().position(|l| *l == field)?;
        lines.get(at + 1).map(|v| (*v).to_owned())
    }

    /// The port of the master this sentinel names now.
    fn master_port(&self) -> Option<u16> {
        let out = self.try_cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE])?;
        out.lines().nth(1)?.parse().ok()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis-cli` against a port; `None` when it fails (the node is down).
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli (apt-get install -y redis-tools)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Polls `ok` every 50 ms for at most [`SETUP`]; panics with `log()` after.
fn wait_for(ok: impl Fn() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + SETUP;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "not ready after {SETUP:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn info_field(server: &RedisServer, field: &str) -> Option<String> {
    let info = cli(server.port(), &["INFO", "replication"])?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

/// How requests fared from the master's death to the first success.
#[derive(Debug, Default)]
struct Outage {
    unavailable: u32,
    until_first_success: Duration,
    first_to_last_503: Duration,
}

/// One master, one replica in sync with it, and three sentinels that know
/// both and each other.
fn topology() -> (RedisServer, RedisServer, Vec<Sentinel>) {
    let master = RedisServer::start();
    let replica = RedisServer::start_with(|_| {
        vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port().to_string(),
        ]
    });
    wait_for(
        || info_field(&replica, "master_link_status").as_deref() == Some("up"),
        || "replica never synced".into(),
    );
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(master.port())).collect();
    for s in &sentinels {
        wait_for(
            || {
                s.master_field("num-other-sentinels").as_deref() == Some("2")
                    && s.master_field("num-slaves").as_deref() == Some("1")
            },
            || s.log(),
        );
    }
    (master, replica, sentinels)
}

fn sentinel_store(sentinels: &[Sentinel]) -> RedisStore {
    RedisStore::builder()
        .with_connect_timeout(Duration::from_millis(300))
        .with_command_timeout(Duration::from_millis(300))
        .connect_sentinel(sentinels.iter().map(Sentinel::url), SERVICE)
        .expect("store")
}

fn sentinel_app(sentinels: &[Sentinel]) -> axum::Router {
    app(
        SessionLayer::new(sentinel_store(sentinels), common::key()),
        Arc::new(Barrier::new(1)),
    )
}

/// [`sentinel_app`] with a 60 s inactivity expiry on `clock`: moved on by
/// 40 s, a read is due a TTL refresh.
fn clocked_sentinel_app(sentinels: &[Sentinel], clock: &ManualClock) -> axum::Router {
    let layer = SessionLayer::builder(sentinel_store(sentinels), common::key())
        .with_expiry(Expiry::OnInactivity(Duration::from_secs(60)))
        .with_clock(clock.clone())
        .build()
        .expect("layer");
    app(layer, Arc::new(Barrier::new(1)))
}

/// The ids of the normal clients of `server` that are neither a sentinel's
/// (named `sentinel-…`), nor this `redis-cli`, nor the check redis-rs makes
/// of a master before it connects (`ROLE`, then closed): the store's.
fn store_clients(server: &RedisServer) -> Vec<u64> {
    server
        .cli(&["CLIENT", "LIST", "TYPE", "normal"])
        .lines()
        .filter_map(|line| {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            };
            let theirs = field("name").is_some_and(|n| n.starts_with("sentinel-"))
                || matches!(field("cmd"), Some("client|list" | "role"));
            field("id").filter(|_| !theirs)?.parse().ok()
        })
        .collect()
}

/// The id of the one connection the store holds to `server`.
fn store_client(server: &RedisServer) -> u64 {
    match store_clients(server)[..] {
        [id] => id,
        ref ids => panic!(
            "expected the store's one connection, found {ids:?}:\n{}",
            server.cli(&["CLIENT", "LIST"])
        ),
    }
}

/// Waits (2 s at most, yielding to the store's tasks) until the store's
/// connection `id` to `server` is closed.
async fn wait_closed(server: &RedisServer, id: u64, after: &str) {
    for _ in 0..100 {
        if !store_clients(server).contains(&id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the store still holds its connection {id} to the demoted master 2 s after {after}:\n{}",
        server.cli(&["CLIENT", "LIST"])
    );
}

/// Demotes `master` as an operator's `REPLICAOF` would, to a port nobody
/// listens on: it keeps its data and its clients, and answers writes with
/// `READONLY`. The sentinels go on naming it: they call a master that reports
/// itself a replica down only after `down-after-milliseconds` plus 20 s (two
/// of their INFO periods), far longer than these tests keep it demoted.
fn demote(master: &RedisServer, sentinels: &[Sentinel]) {
    let nowhere = free_port().to_string();
    assert_eq!(master.cli(&["REPLICAOF", "127.0.0.1", &nowhere]), "OK");
    assert_eq!(info_field(master, "role").as_deref(), Some("slave"));
    still_named(master, sentinels);
}

/// Asserts that the sentinels still name the [demoted](demote) `master`.
fn still_named(master: &RedisServer, sentinels: &[Sentinel]) {
    for s in sentinels {
        assert_eq!(
            s.master_port(),
            Some(master.port()),
            "a sentinel failed over while the master was demoted:\n{}",
            s.log()
        );
    }
}

/// Undoes [`demote`]: the master takes writes again.
fn promote_again(master: &RedisServer, sentinels: &[Sentinel]) {
    still_named(master, sentinels);
    assert_eq!(master.cli(&["REPLICAOF", "NO", "ONE"]), "OK");
    assert_eq!(info_field(master, "role").as_deref(), Some("master"));
}

/// A failover by hand, `from` [demoted](demote): `to`, its replica, is
/// promoted and the sentinels are told to watch it instead, at once. No
/// sentinel sends `from` a `CLIENT KILL`, as their own failover would.
fn hand_over(from: &RedisServer, to: &RedisServer, sentinels: &[Sentinel]) {
    still_named(from, sentinels);
    assert_eq!(to.cli(&["REPLICAOF", "NO", "ONE"]), "OK");
    let port = to.port().to_string();
    for s in sentinels {
        let ok = Some("OK");
        assert_eq!(s.try_cli(&["SENTINEL", "REMOVE", SERVICE]).as_deref(), ok);
        let monitor = ["SENTINEL", "MONITOR", SERVICE, "127.0.0.1", &port, "2"];
        assert_eq!(s.try_cli(&monitor).as_deref(), ok);
        assert_eq!(s.master_port(), Some(to.port()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_keeps_replicated_sessions_and_the_store_follows_the_new_master() {
    let (mut master, replica, sentinels) = topology();
    let app = sentinel_app(&sentinels);
    let mut cookies = Vec::new();
    for i in 0..20 {
        let r = call(&app, &format!("/set?k=user&v=u{i}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "session {i} before the failover");
        cookies.push(r.cookie("__Host-id").expect("cookie"));
    }
    // Replication is asynchronous: the test waits until the replica has
    // everything, so "written before" means "replicated" here.
    assert_eq!(
        master.cli(&["WAIT", "1", "5000"]),
        "1",
        "the replica did not acknowledge"
    );

    master.kill();
    let killed = Instant::now();
    let mut outage = Outage::default();
    let mut first_503 = None;
    loop {
        let r = call(&app, "/get?k=user", Some(&cookies[0])).await;
        match r.status {
            StatusCode::OK => {
                assert_eq!(r.body, "\"u0\"", "the session survived the failover");
                outage.until_first_success = killed.elapsed();
                break;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                outage.unavailable += 1;
                let first = *first_503.get_or_insert_with(Instant::now);
                outage.first_to_last_503 = first.elapsed();
            }
            other => panic!("unexpected status {other} during the failover"),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no failover within 30 s: {outage:?}\n{}",
            sentinels[0].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "sentinel failover (down-after {DOWN_AFTER_MS} ms): {} requests answered 503 \
         over {:?}; first success {:?} after the master was killed",
        outage.unavailable, outage.first_to_last_503, outage.until_first_success
    );
    // Generous: detection (down-after), an election and a promotion take a
    // second or two on loopback; an election that fails (a split vote) is
    // tried again after twice the failover timeout.
    let bound = Duration::from_millis(DOWN_AFTER_MS + 4 * FAILOVER_TIMEOUT_MS + 5000);
    assert!(
        outage.until_first_success < bound,
        "{outage:?} is past {bound:?}"
    );

    assert_eq!(
        sentinels[0].master_port(),
        Some(replica.port()),
        "the sentinels promoted the replica"
    );
    assert!(info_field(&replica, "role").as_deref() == Some("master"));
    for (i, cookie) in cookies.iter().enumerate() {
        let r = call(&app, "/get?k=user", Some(cookie)).await;
        let want = format!("\"u{i}\"");
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, want.as_str()));
    }
    // Writes go to the new master, through the same store.
    let r = call(&app, "/set?k=user&v=after", Some(&cookies[1])).await;
    assert_eq!(r.status, StatusCode::OK, "a write after the failover");
    let r = call(&app, "/incr", None).await;
    assert_eq!(r.status, StatusCode::OK, "a new session after the failover");
    let r = call(&app, "/get?k=user", Some(&cookies[1])).await;
    assert_eq!(r.body, "\"after\"");
    let keys: u64 = replica.cli(&["DBSIZE"]).parse().expect("DBSIZE");
    assert_eq!(keys, 21, "the new sessions live on the promoted replica");
}

// A manual failover (`SENTINEL FAILOVER`): the old master stays up, demoted
// to a replica, and the sentinels disconnect its clients; the store asks
// them again and writes go to the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_failover_moves_writes_to_the_new_master() {
    let (master, replica, sentinels) = topology();
    let app = sentinel_app(&sentinels);
    let cookie = call(&app, "/set?k=user&v=ada", None)
        .await
        .cookie("__Host-id")
        .expect("cookie");
    assert_eq!(master.cli(&["WAIT", "1", "5000"]), "1");

    assert_eq!(
        sentinels[0]
            .try_cli(&["SENTINEL", "FAILOVER", SERVICE])
            .as_deref(),
        Some("OK")
    );
    wait_for(
        || {
            sentinels[0].master_port() == Some(replica.port())
                && info_field(&master, "role").as_deref() == Some("slave")
                && info_field(&replica, "role").as_deref() == Some("master")
        },
        || sentinels[0].log(),
    );
    let mut refused = 0;
    loop {
        let r = call(&app, "/set?k=user&v=grace", Some(&cookie)).await;
        match r.status {
            StatusCode::OK => break,
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("unexpected status {other}"),
        }
        assert!(refused < 20, "writes still refused after {refused} tries");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("writes refused after the manual failover: {refused}");
    let r = call(&app, "/get?k=user", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "\"grace\""));
    let keys: u64 = replica.cli(&["DBSIZE"]).parse().expect("DBSIZE");
    assert_eq!(keys, 1, "the write went to the new master");
}

// The master demoted under the store's held connection, its clients kept
// (an operator's `REPLICAOF`, the sentinels not yet aware): the first write
// gets `READONLY` on that connection and answers 503, and the store drops the
// connection, so the next command asks the sentinels again. Once they name a
// new master, the next write goes there, though the old one never closed the
// store's connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readonly_reply_drops_the_connection_and_the_next_write_finds_the_new_master() {
    let (master, replica, sentinels) = topology();
    let app = sentinel_app(&sentinels);
    let r = call(&app, "/set?k=user&v=ada", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.cookie("__Host-id").expect("cookie");
    assert_eq!(master.cli(&["WAIT", "1", "5000"]), "1");
    let held = store_client(&master);

    demote(&master, &sentinels);
    let r = call(&app, "/get?k=user", Some(&cookie)).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "\"ada\""),
        "a read on the demoted master"
    );
    assert_eq!(
        store_client(&master),
        held,
        "the demotion and a read kept the store's connection"
    );
    let r = call(&app, "/set?k=user&v=grace", Some(&cookie)).await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a write refused with READONLY"
    );
    assert!(r.set_cookies().is_empty(), "Set-Cookie on a 503");
    wait_closed(&master, held, "a write got READONLY").await;

    // Asked again, the sentinels name the demoted server, which redis-rs
    // refuses (its `ROLE` is a replica's): until they name a master, every
    // request that needs its session answers 503, reads included.
    let r = call(&app, "/get?k=user", Some(&cookie)).await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a read, no master"
    );
    let r = call(&app, "/incr", None).await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a create, no master"
    );
    assert!(r.set_cookies().is_empty(), "Set-Cookie on a 503");

    hand_over(&master, &replica, &sentinels);
    let r = call(&app, "/set?k=user&v=grace", Some(&cookie)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the first write with a new master"
    );
    let r = call(&app, "/get?k=user", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "\"grace\""));
    assert_eq!(
        replica.cli(&["DBSIZE"]),
        "1",
        "the new master has the session"
    );
    assert_eq!(
        store_clients(&master),
        Vec::<u64>::new(),
        "the store left the old master"
    );
}

// SECURITY J55: a read due a TTL refresh on the demoted master still answers: the refused
// `PEXPIRE` is skipped with a WARN (as on a single node), and, a `READONLY`
// reply like any other, drops the held connection.
#[tokio::test]
async fn a_read_due_a_refresh_answers_on_a_demoted_master_and_drops_the_connection() {
    let (master, _replica, sentinels) = topology();
    let clock = ManualClock::new(SystemTime::now());
    let app = clocked_sentinel_app(&sentinels, &clock);
    let r = call(&app, "/set?k=user&v=ada", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.cookie("__Host-id").expect("cookie");
    assert_eq!(master.cli(&["WAIT", "1", "5000"]), "1");
    let held = store_client(&master);

    demote(&master, &sentinels);
    clock.advance(Duration::from_secs(40));
    read_skips_the_refresh(&app, &cookie, "demoted master").await;
    wait_closed(&master, held, "a TTL refresh got READONLY").await;

    promote_again(&master, &sentinels);
    let r = call(&app, "/get?k=user", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "\"ada\""));
    assert_ne!(store_client(&master), held, "read on a new connection");
}
