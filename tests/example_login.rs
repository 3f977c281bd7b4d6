//! Runs the `login` example binary with a bad configuration.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A wrong `STORE` is refused before the example touches its database: it
/// exits with an error naming the variable, and no SQLite file appears.
#[test]
fn unknown_store_is_refused_before_the_database_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.sqlite3");
    let mut child = Command::new(common::example_binary("login"))
        .env("STORE", "bogus")
        .env("DATABASE_URL", &db)
        .env(
            "SESSION_KEY",
            "dd1f8828ab7031ae4ff59b87c164280cc83cd3828673633e515092a8e72b917d",
        )
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
