//! Starting and stopping what the browser test needs: the app on a loopback
//! port, chromedriver, and headless Chromiums, each with a fresh profile.

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::sync::{Mutex, MutexGuard};

const INSTALL_HINT: &str = "the browser test needs Chromium and chromedriver: run \
    `scripts/install-browser` (it runs `apt-get install -y chromium chromium-driver`), \
    or point CHROMIUM and CHROMEDRIVER at the binaries";

/// `target/` (or `CARGO_TARGET_DIR`), from the test binary's own path:
/// `<target>/<profile>/deps/browser-<hash>`.
pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// A directory for this run's files under `<target>/browser/`.
pub(crate) fn work_dir() -> PathBuf {
    let dir = target_dir().join("browser");
    std::fs::create_dir_all(&dir).expect("creating target/browser");
    dir
}

/// Serves `app` on a free 127.0.0.1 port in this runtime; returns its base URL.
pub(crate) async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("binding a loopback port");
    let addr = listener.local_addr().expect("the bound address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

pub(crate) fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn binary(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: {INSTALL_HINT}",
        path.display()
    );
    path
}

/// One test's browsers at a time: the tests share `chromedriver.log`, and
/// more Chromiums at once only slow each other down on a small machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// chromedriver and the Chromium it starts, with a profile of their own.
/// Dropping it ends both (the whole process group) and removes the profile.
pub(crate) struct Browser {
    pub(crate) client: Option<Client>,
    driver: Child,
    profile: PathBuf,
    /// Held until this test's browsers are gone; dropped after `Drop::drop`.
    _turn: Arc<MutexGuard<'static, ()>>,
}

impl Browser {
    /// Waits for any other test's browsers to end, then starts one.
    pub(crate) async fn start() -> Self {
        let turn = Arc::new(ONE_AT_A_TIME.lock().await);
        Self::launch(turn).await
    }

    /// Two browsers with separate profiles (cookies, storage): two people,
    /// or one person on two devices.
    pub(crate) async fn start_two() -> (Self, Self) {
        let turn = Arc::new(ONE_AT_A_TIME.lock().await);
        let a = Self::launch(turn.clone()).await;
        let b = Self::launch(turn).await;
        (a, b)
    }

    /// Starts chromedriver and Chromium; a start that fails (a port taken
    /// between choosing it and chromedriver binding it, a slow start on a
    /// loaded machine) is retried on a fresh port, three times in all.
    async fn launch(turn: Arc<MutexGuard<'static, ()>>) -> Self {
        let mut last = String::new();
        for attempt in 1..=3 {
            match Self::try_launch(turn.clone()).await {
                Ok(browser) => return browser,
                Err(e) => {
                    eprintln!("browser start {attempt} of 3 failed: {e}");
                    last = e;
                }
            }
        }
        panic!("starting Chromium through chromedriver: {last}; {INSTALL_HINT}")
    }

    async fn try_launch(turn: Arc<MutexGuard<'static, ()>>) -> Result<Self, String> {
        let chromium = binary("CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
        let work = work_dir();
        let port = free_port();
        let profile = work.join(format!("profile-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                work.join("chromedriver.log").display()
            ))
            .arg("--log-level=WARNING")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so the browser it starts dies with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}; {INSTALL_HINT}", chromedriver.display()));
        let mut browser = Self {
            client: None,
            driver,
            profile,
            _turn: turn,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                return Err(format!("chromedriver exited at start ({status})"));
            }
            if Instant::now() >= deadline {
                return Err("chromedriver did not listen within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let options = json!({
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
                "--window-size=1100,760",
                format!("--user-data-dir={}", browser.profile.display()),
            ],
        });
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| e.to_string())?;
        browser.client = Some(client);
        Ok(browser)
    }

    pub(crate) fn client(&self) -> &Client {
        self.client.as_ref().expect("a started browser")
    }

    /// Ends the WebDriver session, which closes Chromium cleanly.
    pub(crate) async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own group; Chromium and its helpers are in it.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
