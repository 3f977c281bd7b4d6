//! The `login` example binary run as separate processes on loopback ports,
//! as two instances behind a load balancer run. The binary must be built
//! (`cargo test --all-features` builds it; `--test browser` alone does not).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One running example; dropping it kills the process.
pub(crate) struct Instance {
    child: Child,
    pub(crate) base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    /// Starts `target/<profile>/examples/login` with `envs` on a free port
    /// and waits (at most 30 s) until it listens.
    pub(crate) fn start(envs: &[(&str, &str)]) -> Self {
        let port = super::harness::free_port();
        let mut cmd = Command::new(super::common::example_binary("login"));
        cmd.env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting the login example");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().expect("polling the example") {
                panic!("the login example exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the login example did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}
