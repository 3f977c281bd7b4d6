//! Cookie attributes, configuration errors, bad input and key rotation.

mod common;

use axum::http::StatusCode;
use axum::Router;
use base64::Engine as _;
use common::*;
use sessio::{ConfigError, CookieOptions, Error, Key, MemoryStore, SameSite, SessionLayer};

fn app_with(layer: SessionLayer<MemoryStore>) -> Router {
    routes().layer(layer)
}

fn default_app() -> (MemoryStore, Router) {
    let store = MemoryStore::new();
    (store.clone(), app_with(SessionLayer::new(store, key())))
}

async fn started(app: &Router) -> String {
    call(app, "/incr", None).await.cookie("__Host-id").unwrap()
}

// SECURITY B6: HttpOnly, Secure, SameSite=Lax, Path=/, no Domain, name `id`,
// and no Max-Age for the default browser-session cookie.
#[tokio::test]
async fn default_cookie_attributes() {
    let (_, app) = default_app();
    let r = call(&app, "/incr", None).await;
    let c = r.set_cookie("__Host-id").unwrap();
    let attrs: Vec<&str> = c.split("; ").skip(1).collect();
    assert_eq!(attrs, vec!["Path=/", "Secure", "HttpOnly", "SameSite=Lax"]);
}

#[tokio::test]
async fn every_attribute_can_be_configured() {
    let layer = SessionLayer::builder(MemoryStore::new(), key())
        .with_cookie_name("sid")
        .with_path("/app")
        .with_domain("example.com")
        .with_secure(true)
        .with_http_only(false)
        .with_same_site(SameSite::None)
        .with_partitioned(true)
        .with_expiry(sessio::Expiry::OnInactivity(
            std::time::Duration::from_secs(600),
        ))
        .build()
        .unwrap();
    let app = app_with(layer);
    let r = call(&app, "/incr", None).await;
    let c = r.set_cookie("sid").unwrap();
    let attrs: Vec<&str> = c.split("; ").skip(1).collect();
    assert_eq!(
        attrs,
        vec![
            "Max-Age=600",
            "Path=/app",
            "Domain=example.com",
            "Secure",
            "SameSite=None",
            "Partitioned"
        ]
    );
    let strict = SessionLayer::builder(MemoryStore::new(), key())
        .with_same_site(SameSite::Strict)
        .with_secure(false)
        .build()
        .unwrap();
    let r = call(&app_with(strict), "/incr", None).await;
    assert!(r
        .set_cookie("id")
        .unwrap()
        .ends_with("; Path=/; HttpOnly; SameSite=Strict"));
}

// SECURITY B6: the default name is `__Host-id` while Secure holds
// with Path=/ and no Domain, `__Secure-id` with another Path or a Domain,
// plain `id` without Secure; a `__Host-` session cannot move its Path.
#[tokio::test]
async fn the_default_name_carries_the_strongest_prefix_it_can() {
    let cases = [
        (SessionLayer::new(MemoryStore::new(), key()), "__Host-id"),
        (
            SessionLayer::builder(MemoryStore::new(), key())
                .with_path("/app")
                .build()
                .unwrap(),
            "__Secure-id",
        ),
        (
            SessionLayer::builder(MemoryStore::new(), key())
                .with_secure(false)
                .build()
                .unwrap(),
            "id",
        ),
    ];
    for (layer, name) in cases {
        let r = call(&app_with(layer), "/incr", None).await;
        assert!(
            r.set_cookie(name).is_some(),
            "{name}: {:?}",
            r.set_cookies()
        );
    }
    let app = Router::new()
        .route(
            "/",
            axum::routing::get(|s: sessio::Session| async move {
                s.set("a", 1).unwrap();
                let moved = s.set_options(CookieOptions::new().with_path("/x"));
                format!("{moved:?}")
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new(), key()));
    assert_eq!(call(&app, "/", None).await.body, "Err(Config(HostPrefix))");
}

// SECURITY B6 / C17: configuration mistakes are typed errors at build time.
#[test]
fn bad_configuration_is_a_typed_error() {
    fn build(
        f: impl FnOnce(
            sessio::SessionLayerBuilder<MemoryStore>,
        ) -> sessio::SessionLayerBuilder<MemoryStore>,
    ) -> ConfigError {
        match f(SessionLayer::builder(MemoryStore::new(), key())).build() {
            Err(e) => e,
            other => panic!("expected a config error, got {other:?}"),
        }
    }
    assert_eq!(
        build(|b| b.with_cookie_name("bad name")),
        ConfigError::InvalidCookieName
    );
    assert_eq!(
        build(|b| b.with_cookie_name("")),
        ConfigError::InvalidCookieName
    );
    assert_eq!(
        build(|b| b.with_cookie_name("__Host-id").with_domain("example.com")),
        ConfigError::HostPrefix
    );
    assert_eq!(
        build(|b| b.with_cookie_name("__Host-id").with_secure(false)),
        ConfigError::HostPrefix
    );
    assert_eq!(
        build(|b| b.with_cookie_name("__Secure-id").with_secure(false)),
        ConfigError::SecurePrefix
    );
    assert_eq!(
        build(|b| b.with_same_site(SameSite::None).with_secure(false)),
        ConfigError::SameSiteNoneWithoutSecure
    );
    assert_eq!(
        build(|b| b.with_partitioned(true).with_secure(false)),
        ConfigError::PartitionedWithoutSecure
    );
    assert_eq!(
        build(|b| b.with_path("/a; Domain=evil")),
        ConfigError::InvalidAttribute("path")
    );
    assert_eq!(
        build(|b| b.with_cookie_names(["a", "a"])),
        ConfigError::DuplicateCookieName("a".into())
    );
    assert_eq!(
        build(|b| b.with_expiry(sessio::Expiry::OnInactivity(std::time::Duration::ZERO))),
        ConfigError::ZeroDuration("the expiry window")
    );
    assert_eq!(
        Key::from_bytes(&[1; 31]).unwrap_err(),
        ConfigError::KeyTooShort(31)
    );
}

#[tokio::test]
async fn per_session_options_override_the_layer() {
    let app = Router::new()
        .route(
            "/",
            axum::routing::get(|s: sessio::Session| async move {
                s.set("a", 1).unwrap();
                s.set_options(
                    CookieOptions::new()
                        .with_max_age(std::time::Duration::from_secs(3600))
                        .with_path("/x")
                        .with_same_site(SameSite::Strict),
                )
                .unwrap();
                let bad = s.set_options(
                    CookieOptions::new()
                        .with_same_site(SameSite::None)
                        .with_secure(false),
                );
                assert!(matches!(
                    bad,
                    Err(Error::Config(ConfigError::SameSiteNoneWithoutSecure))
                ));
                "ok"
            }),
        )
        // A `__Host-` cookie cannot take another Path: a plain name here.
        .layer(
            SessionLayer::builder(MemoryStore::new(), key())
                .with_cookie_name("id")
                .build()
                .unwrap(),
        );
    let r = call(&app, "/", None).await;
    assert_eq!(
        r.set_cookie("id")
            .unwrap()
            .split("; ")
            .skip(1)
            .collect::<Vec<_>>(),
        vec![
            "Max-Age=3600",
            "Path=/x",
            "Secure",
            "HttpOnly",
            "SameSite=Strict"
        ]
    );
}

/// Sends `cookie` and checks the request got a fresh session: 200, no data,
/// a WARN event, and nothing secret in the logs.
async fn assert_fresh(app: &Router, cookies: &[&str]) {
    let (logs, _guard) = Logs::capture();
    let r = get_with(app, "/read", cookies).await;
    assert_eq!(r.status, StatusCode::OK, "{cookies:?}");
    assert_eq!(r.body, "None", "{cookies:?} reached the session");
    let text = logs.text();
    assert!(
        text.contains("WARN"),
        "no WARN event for {cookies:?}: {text} {r:?}"
    );
    for c in cookies {
        if let Some(v) = c.split_once('=').map(|(_, v)| v).filter(|v| v.len() > 8) {
            assert!(!text.contains(v), "cookie value logged");
        }
    }
}

// SECURITY C10 / A3: tampered, truncated, wrong-key, garbage and oversized
// cookies yield a fresh session, never a panic or a 5xx.
#[tokio::test(flavor = "current_thread")]
async fn bad_cookies_start_a_fresh_session() {
    let (_, app) = default_app();
    let good = started(&app).await;
    let value = &good["__Host-id=".len()..];
    let mut flipped = value.as_bytes().to_vec();
    flipped[5] ^= 0x01;
    let flipped = format!("__Host-id={}", String::from_utf8(flipped).unwrap());
    let truncated = format!("__Host-id={}", &value[..value.len() - 3]);
    let (_, other) = {
        let other = app_with(SessionLayer::new(MemoryStore::new(), other_key()));
        ((), started(&other).await)
    };
    let oversized = format!("__Host-id={}", "A".repeat(4100));
    let non_ascii = "__Host-id=\u{e9}\u{e9}";
    for bad in [
        flipped.as_str(),
        truncated.as_str(),
        other.as_str(),
        oversized.as_str(),
        "__Host-id=",
        "__Host-id=garbage",
        "__Host-id=!!!.???",
        "__Host-id=....",
        non_ascii,
    ] {
        assert_fresh(&app, &[bad]).await;
    }
    // Not UTF-8 at all.
    let r = get_bytes(&app, "/read", &[b"__Host-id=\xff\xfe\xfd"]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "None"));
}

// SECURITY A4: a signed value that is not a well-formed id never reaches the
// store's lookups (MemoryStore refuses it; a fresh session results).
#[tokio::test(flavor = "current_thread")]
async fn odd_ids_never_reach_the_store() {
    let (_, app) = default_app();
    // A cookie signed with our key but holding a bad id cannot be made from
    // outside; the store-level check is covered by the conformance suite's
    // load_of_unknown_values_is_none. Here: the bad request still answers 200.
    let r = get_with(&app, "/read", &["__Host-id=AAAA%00AAAA"]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "None"));
}

// SECURITY D20 / D21 / D22: every Cookie line is read, the first cookie that
// verifies wins, and junk beside it does not hide it.
#[tokio::test]
async fn session_is_found_across_lines_duplicates_and_junk() {
    let (_, app) = default_app();
    let good = started(&app).await;
    for lines in [
        vec!["theme=dark", good.as_str()],
        vec!["__Host-id=forged.value", good.as_str()],
        vec![&format!("__Host-id=forged; junk; ;=;{good}; other=1")],
        vec![&format!("{good}; id=forged")],
    ] {
        let lines: Vec<&str> = lines.iter().map(|s| s.as_ref()).collect();
        let r = get_with(&app, "/read", &lines).await;
        assert_eq!(r.body, "Some(1)", "{lines:?}");
    }
    // Bytes that are not UTF-8 in another cookie of the same line.
    let line = [&b"junk=\xff\xfe; "[..], good.as_bytes()].concat();
    let r = get_bytes(&app, "/read", &[&line]).await;
    assert_eq!(r.body, "Some(1)");
}

// SECURITY D20: nothing in the URL is ever a session id.
#[tokio::test]
async fn session_never_comes_from_the_url() {
    let (_, app) = default_app();
    let good = started(&app).await;
    let r = call(
        &app,
        &format!("/read?{good}&id={}", &good["__Host-id=".len()..]),
        None,
    )
    .await;
    assert_eq!(r.body, "None");
}

// SECURITY C11: a cookie accepted under a fallback key is re-issued under the
// current key; a key dropped from the list invalidates its cookies.
#[tokio::test]
async fn fallback_key_verifies_and_cookie_is_reissued() {
    let store = MemoryStore::new();
    let old_app = app_with(SessionLayer::new(store.clone(), other_key()));
    let cookie = started(&old_app).await;
    let rotated = app_with(
        SessionLayer::builder(store.clone(), key())
            .with_fallback_keys([other_key()])
            .build()
            .unwrap(),
    );
    let r = call(&rotated, "/read", Some(&cookie)).await;
    assert_eq!(r.body, "Some(1)");
    let reissued = r
        .cookie("__Host-id")
        .expect("re-issued under the current key");
    assert_ne!(reissued, cookie);
    let only_new = app_with(SessionLayer::new(store.clone(), key()));
    assert_eq!(
        call(&only_new, "/read", Some(&reissued)).await.body,
        "Some(1)"
    );
    assert_eq!(call(&only_new, "/read", Some(&cookie)).await.body, "None");
    // Untouched: no re-issue, no store I/O.
    let r = call(&rotated, "/untouched", Some(&cookie)).await;
    assert!(r.set_cookies().is_empty());
}

// SECURITY C12: the cookie name is bound into the MAC.
#[tokio::test]
async fn value_moved_to_another_cookie_name_is_rejected() {
    let store = MemoryStore::new();
    let a = app_with(
        SessionLayer::builder(store.clone(), key())
            .with_cookie_name("a")
            .build()
            .unwrap(),
    );
    let b = app_with(
        SessionLayer::builder(store.clone(), key())
            .with_cookie_name("b")
            .build()
            .unwrap(),
    );
    let cookie = call(&a, "/incr", None).await.cookie("a").unwrap();
    assert_eq!(call(&a, "/read", Some(&cookie)).await.body, "Some(1)");
    let moved = format!("b={}", &cookie[2..]);
    assert_eq!(call(&b, "/read", Some(&moved)).await.body, "None");
}

// SECURITY C13: the times are inside what is signed; editing them breaks the MAC.
#[tokio::test]
async fn editing_the_signed_expiry_breaks_the_signature() {
    let (_, app) = default_app();
    let cookie = started(&app).await;
    let (body, tag) = cookie["__Host-id=".len()..].rsplit_once('.').unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut bytes = b64.decode(body).unwrap();
    bytes[17..25].copy_from_slice(&u64::MAX.to_be_bytes());
    let forged = format!("__Host-id={}.{tag}", b64.encode(bytes));
    assert_eq!(call(&app, "/read", Some(&forged)).await.body, "None");
}

// SECURITY H36: Debug of sessions and layers shows no secrets.
#[tokio::test]
async fn debug_output_is_redacted() {
    let app = Router::new()
        .route(
            "/",
            axum::routing::get(|s: sessio::Session| async move {
                s.set("secret", "hunter2").unwrap();
                s.save().await.unwrap();
                let id = s.id().unwrap();
                let dbg = format!("{s:?} {id:?}");
                assert!(
                    !dbg.contains("hunter2") && !dbg.contains(id.as_str()),
                    "{dbg}"
                );
                "ok"
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new(), key()));
    assert_eq!(call(&app, "/", None).await.body, "ok");
    let layer = SessionLayer::new(MemoryStore::new(), key());
    assert!(!format!("{layer:?}").contains("7, 7"));
}

// SECURITY A3: an unknown id (validly signed, but not in the store) yields a
// fresh session with a WARN, no store write until something is set, and then
// a new id: a client never picks its id.
#[tokio::test(flavor = "current_thread")]
async fn unknown_id_gets_a_fresh_session_with_a_new_id() {
    let elsewhere = app_with(SessionLayer::new(MemoryStore::new(), key()));
    let foreign = started(&elsewhere).await;
    let store = TestStore::new(MemoryStore::new());
    let app = routes().layer(SessionLayer::new(store.clone(), key()));
    let (logs, _g) = Logs::capture();
    let r = call(&app, "/read", Some(&foreign)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "None"));
    // SECURITY I44: the dead cookie is removed, once, without a store write.
    assert_eq!(r.set_cookies().len(), 1);
    assert!(r
        .set_cookie("__Host-id")
        .unwrap()
        .starts_with("__Host-id=; Max-Age=0"));
    assert_eq!(store.take_ops(), vec!["load"], "no write for an unknown id");
    assert!(logs.text().contains("WARN"), "{}", logs.text());
    let r = call(&app, "/incr", Some(&foreign)).await;
    assert_eq!(store.take_ops(), vec!["load", "create"]);
    let mine = r.cookie("__Host-id").unwrap();
    assert_ne!(mine, foreign);
    assert_eq!(call(&app, "/read", Some(&mine)).await.body, "Some(1)");
}

// SECURITY B7: the removal cookie has an empty value, Max-Age=0, a past
// Expires, and the same name/path/domain/flags as the cookie it removes.
#[tokio::test]
async fn removal_cookie_matches_the_cookie_it_removes() {
    let layer = SessionLayer::builder(MemoryStore::new(), key())
        .with_cookie_name("__Secure-s")
        .with_path("/app")
        .with_domain("example.com")
        .with_same_site(SameSite::Strict)
        .with_partitioned(true)
        .build()
        .unwrap();
    let app = app_with(layer);
    let r = call(&app, "/incr", None).await;
    let set = r.set_cookie("__Secure-s").unwrap();
    let cookie = r.cookie("__Secure-s").unwrap();
    let removal = call(&app, "/destroy", Some(&cookie))
        .await
        .set_cookie("__Secure-s")
        .unwrap();
    let (set_value, set_attrs) = set.split_once("; ").unwrap();
    assert!(set_value.len() > "__Secure-s=".len());
    assert_eq!(
        removal,
        format!("__Secure-s=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; {set_attrs}")
    );
    assert_eq!(
        set_attrs,
        "Path=/app; Domain=example.com; Secure; HttpOnly; SameSite=Strict; Partitioned"
    );
}
