//! Hermetic `redis-server` processes for tests: each on free loopback ports, in
//! its own temporary directory, without persistence, killed on drop. Plus the
//! routes the Redis tests add to [`routes`](super::routes).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use sessio::store::deadpool_redis::redis;
use sessio::{Session, SessionLayer, Store};
use tokio::sync::Barrier;

const INSTALL_HINT: &str = "install it with `apt-get install -y redis-server` \
     (Debian/Ubuntu; it pulls in redis-tools, which has redis-cli)";

/// [`routes`](super::routes) behind `layer`, plus:
/// - `/get?k=`: the value's JSON, or `none`;
/// - `/gated-set?k=&v=`: loads, meets `gate` twice, then sets (two requests,
///   or a request and the test, line up between load and save).
pub fn app<St: Store>(layer: SessionLayer<St>, gate: Arc<Barrier>) -> Router {
    super::routes()
        .route(
            "/get",
            get(
                |s: Session, Query(q): Query<HashMap<String, String>>| async move {
                    match s.get::<serde_json::Value>(&q["k"]).unwrap() {
                        Some(v) => v.to_string(),
                        None => "none".to_owned(),
                    }
                },
            ),
        )
        .route(
            "/gated-set",
            get(
                move |s: Session, Query(q): Query<HashMap<String, String>>| {
                    let gate = gate.clone();
                    async move {
                        gate.wait().await;
                        gate.wait().await;
                        s.set(&q["k"], &q["v"]).unwrap();
                        "set"
                    }
                },
            ),
        )
        .layer(layer)
}

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// A plain server on a free port.
    pub fn start() -> Self {
        Self::start_with(|_| Vec::new())
    }

    /// A server started with extra arguments, computed for each attempt
    /// (an attempt that loses a port race is retried on other ports).
    pub fn start_with(extra: impl Fn(&Path) -> Vec<String>) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        for _ in 0..5 {
            let port = free_port();
            let extra = extra(dir.path());
            match spawn(dir.path(), port, &extra) {
                Ok(child) => {
                    return Self {
                        child: Some(child),
                        port,
                        extra,
                        dir,
                    }
                }
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("redis-server did not start:\n{log}"),
            }
        }
        panic!("redis-server: no free port after 5 attempts");
    }

    /// A Redis Cluster node (its bus port picked too).
    pub fn start_cluster_node() -> Self {
        Self::start_with(|_| {
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
                "--cluster-port",
                &free_port().to_string(),
            ]
            .map(String::from)
            .to_vec()
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The value given to one of the extra arguments, e.g. `--tls-port`.
    pub fn arg(&self, name: &str) -> Option<&str> {
        let at = self.extra.iter().position(|a| a == name)?;
        self.extra.get(at + 1).map(String::as_str)
    }

    /// Kills the server (SIGKILL): connections drop at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        match spawn(self.dir.path(), self.port, &self.extra) {
            Ok(child) => self.child = Some(child),
            Err(log) => panic!("redis-server did not restart:\n{log}"),
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Runs `redis-cli` against this server; its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    /// A direct connection, for setting up or inspecting data.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection to the test redis")
    }

    /// Starts watching the commands clients send (`MONITOR`).
    pub fn monitor(&self) -> Monitor {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("monitor connection");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        (&stream).write_all(b"MONITOR\r\n").expect("MONITOR");
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("MONITOR reply");
        assert_eq!(ok.trim_end(), "+OK");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        });
        Monitor {
            port: self.port,
            stream,
            lines: rx,
            markers: 0,
        }
    }

    fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("server running");
        let status = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap_or_else(|e| {
                panic!("kill(1): {e}; install it with `apt-get install -y procps`")
            });
        assert!(status.success(), "kill {sig} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused server still dies of SIGKILL.
        self.kill();
    }
}

/// The commands clients send to one server, as `MONITOR` shows them.
pub struct Monitor {
    port: u16,
    stream: TcpStream,
    lines: mpsc::Receiver<String>,
    markers: u64,
}

impl Monitor {
    /// Calls per command (lower-case) sent by clients since the last call;
    /// commands run inside scripts are not round trips and are left out.
    pub fn commands(&mut self) -> BTreeMap<String, u64> {
        // Redis feeds monitors in execution order: once the marker shows up,
        // everything sent before it has too.
        self.markers += 1;
        let marker = format!("sessio-test-marker-{}", self.markers);
        cli(self.port, &["ECHO", &marker]);
        let mut calls = BTreeMap::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(5))
                .expect("MONITOR stream");
            if line.contains(&marker) {
                return calls;
            }
            let Some((source, command)) = line.split_once("] ") else {
                continue;
            };
            if source.ends_with(" lua") {
                continue;
            }
            let name = command.split('"').nth(1).unwrap_or_default();
            *calls.entry(name.to_lowercase()).or_insert(0) += 1;
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A three-master Redis Cluster, no replicas.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_cluster_node()).collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        cli(nodes[0].port(), &args);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "cluster not ok after 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// Starts `redis-server`; on failure, its log.
fn spawn(dir: &Path, port: u16, extra: &[String]) -> Result<Child, String> {
    let log = dir.join("redis.log");
    let mut cmd = Command::new("redis-server");
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("redis-server not found on PATH: {INSTALL_HINT}")
        }
        Err(e) => panic!("could not run redis-server: {e}"),
    };
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(read_log());
        }
        if ping(port) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("not answering PING after 10 s\n{}", read_log()))
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = match Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("redis-cli not found on PATH: {INSTALL_HINT}")
        }
        Err(e) => panic!("could not run redis-cli: {e}"),
    };
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// `true` when the reply removes the `id` cookie.
pub fn is_removal(reply: &super::Reply) -> bool {
    reply.cookie("__Host-id").as_deref() == Some("__Host-id=")
}

/// A read of `cookie`'s `user` (`ada`) that is due a TTL refresh Redis
/// refuses: it answers with the data, and the skipped refresh is a WARN.
pub async fn read_skips_the_refresh(app: &Router, cookie: &str, what: &str) {
    let (logs, guard) = super::Logs::capture();
    let r = super::call(app, "/get?k=user", Some(cookie)).await;
    drop(guard);
    assert_eq!(
        (r.status, r.body.as_str()),
        (http::StatusCode::OK, "\"ada\""),
        "{what}: a read due a refresh"
    );
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("refresh skipped"),
        "{what}: no WARN for the skipped refresh:\n{text}"
    );
}
