//! Hermetic PostgreSQL servers for tests: `initdb` into a temporary
//! directory, `pg_ctl start` on a free loopback port (and a unix socket in
//! that directory), stopped by pid on drop. As root, the server runs as the
//! `postgres` user (initdb refuses root), which the Debian package creates.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "install it with `apt-get install -y postgresql` (Debian/Ubuntu; \
     the binaries land in /usr/lib/postgresql/<version>/bin)";

/// One PostgreSQL server, with the trusted superuser `postgres`.
pub struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    pid: Option<u32>,
    run_as: Option<&'static str>,
}

impl PgServer {
    /// A fresh cluster on a free port, started and accepting connections.
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("temporary directory");
        let run_as = is_root().then_some("postgres");
        let mut server = Self {
            bin,
            dir,
            port: 0,
            pid: None,
            run_as,
        };
        if let Some(user) = run_as {
            let out = Command::new("chown")
                .args([&format!("{user}:"), server.path().to_str().unwrap()])
                .output()
                .expect("chown");
            assert!(
                out.status.success(),
                "chown of the data directory to {user} failed (does the user exist? {INSTALL_HINT}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let data = server.data();
        let out = server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ],
        );
        assert!(out.status.success(), "initdb failed:\n{}", text(&out));
        for _ in 0..5 {
            server.port = free_port();
            if server.try_start() {
                return server;
            }
            if !server.log().contains("could not bind") {
                panic!("postgres did not start:\n{}", server.log());
            }
        }
        panic!("postgres: no free port after 5 attempts");
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    /// The server's log (every statement is logged: `log_statement=all`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("log")).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The postmaster's pid while the server runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .current_dir(self.path())
            .output()
            .unwrap_or_else(|e| match self.run_as {
                Some(user) => panic!("running {} as {user} with runuser: {e}", exe.display()),
                None => panic!("running {}: {e}", exe.display()),
            })
    }

    fn try_start(&mut self) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c log_statement=all",
            self.port,
            self.path().display()
        );
        let (data, log) = (self.data(), self.path().join("log"));
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if !out.status.success() {
            return false;
        }
        let pidfile = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("postmaster.pid after pg_ctl start");
        self.pid = Some(pidfile.lines().next().unwrap().trim().parse().unwrap());
        true
    }

    /// Stops the server (fast shutdown: sessions are terminated, the data is
    /// kept) and waits until the postmaster has exited.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            stop_pid(pid, "-INT");
        }
    }

    /// Starts the stopped server again, on the same port, with its data.
    pub fn start_again(&mut self) {
        assert!(self.pid.is_none(), "the server is running");
        assert!(
            self.try_start(),
            "postgres did not restart:\n{}",
            self.log()
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            stop_pid(pid, "-QUIT");
        }
    }
}

/// Signals the postmaster and waits for it to exit (SIGKILL after 10 s).
fn stop_pid(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `true` while the process exists and is not a zombie (pg_ctl's postmaster
/// is not our child; in a container nobody may reap it).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: from `PATH`
/// (symlinks resolved, as Debian's /usr/local/bin links), else the newest
/// /usr/lib/postgresql/<version>/bin.
fn bin_dir() -> PathBuf {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| std::fs::canonicalize(d.join("initdb")).ok())
        .filter_map(|exe| exe.parent().map(Path::to_path_buf));
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    debian.sort_by_key(|p| {
        let version = p.parent().and_then(|v| v.file_name());
        version.and_then(|v| v.to_str()?.parse::<u32>().ok())
    });
    on_path
        .chain(debian.into_iter().rev())
        .find(|d| complete(d))
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: {INSTALL_HINT}"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
