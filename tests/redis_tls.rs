//! `rediss://` through the `redis-tls` feature, against a TLS-only port of a
//! real redis-server with a throwaway CA, certificates verified.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::redis::{free_port, RedisServer};
use serde_json::json;
use sessio::store::{Deadline, Record, Store};
use sessio::RedisStore;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("openssl: {e}; install it with `apt-get install -y openssl`"));
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA named `name` (`name.crt`, `name.key`) in `dir`.
fn ca(dir: &Path, name: &str) {
    let (crt, key, subj) = (
        format!("{name}.crt"),
        format!("{name}.key"),
        format!("/CN={name}"),
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
}

/// `server.crt` for IP 127.0.0.1, signed by the CA `ca`.
fn server_cert(dir: &Path) {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

fn expires_in(secs: u64) -> Deadline {
    let ttl = Duration::from_secs(secs);
    Deadline::new(SystemTime::now() + ttl, ttl)
}

#[tokio::test]
async fn rediss_urls_use_verified_tls() {
    let certs = tempfile::tempdir().expect("tempdir");
    ca(certs.path(), "ca");
    ca(certs.path(), "stranger");
    server_cert(certs.path());
    let file = |name: &str| certs.path().join(name).display().to_string();
    let server = RedisServer::start_with(|_| {
        vec![
            "--tls-port".into(),
            free_port().to_string(),
            "--tls-cert-file".into(),
            file("server.crt"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    });
    let url = format!(
        "rediss://127.0.0.1:{}",
        server.arg("--tls-port").expect("port")
    );
    let record: Record = [("user".to_owned(), json!("ada"))].into_iter().collect();

    // rustls-native-certs reads the trusted roots from SSL_CERT_FILE when it
    // is set; this binary holds this one test, so nothing else sees the
    // variable change.
    std::env::set_var("SSL_CERT_FILE", file("stranger.crt"));
    let untrusted = RedisStore::connect(&url).expect("store");
    let err = untrusted.create(&record, expires_in(60)).await.unwrap_err();
    assert!(
        err.is_unavailable(),
        "an unverified server was trusted: {err:?}"
    );

    std::env::set_var("SSL_CERT_FILE", file("ca.crt"));
    let store = RedisStore::connect(&url).expect("store");
    let id = store
        .create(&record, expires_in(60))
        .await
        .expect("create over TLS");
    assert_eq!(store.load(&id).await.expect("load"), Some(record));
    assert!(store.touch(&id, expires_in(60)).await.expect("touch"));
    store.delete(&id).await.expect("delete");
    assert_eq!(server.cli(&["DBSIZE"]), "0");
}
