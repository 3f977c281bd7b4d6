//! The HTML of the login example: one layout, six small pages.

use std::fmt::Write as _;
use std::time::SystemTime;

use axum::response::Html;

use super::devices::{ago, Listing, NEEDS_INDEX};

/// Flash messages taken from the session for this page.
#[derive(Debug, Default)]
pub(crate) struct Flashes {
    pub(crate) notices: Vec<String>,
    pub(crate) errors: Vec<String>,
}

pub(crate) fn home(user: &str, csrf: &str, flashes: &Flashes) -> Html<String> {
    let user = escape(user);
    let initial = user.chars().next().unwrap_or('?').to_uppercase();
    layout(
        "Home",
        Some(&user),
        csrf,
        flashes,
        &format!(
            r#"<div class="avatar">{initial}</div>
<h1>Hello, {user}!</h1>
<p class="muted">You are signed in. Your session id was replaced when you
logged in, and logging out deletes the session on the server.</p>
<ul class="facts">
  <li><span>Account</span><strong>{user}</strong></li>
  <li><span>Session cookie</span><strong>HttpOnly, SameSite=Lax</strong></li>
  <li><span>Password hash</span><strong>Argon2id</strong></li>
</ul>
<p class="switch"><a href="/sessions">Active sessions</a> · <a href="/password">Change password</a></p>"#
        ),
    )
}

pub(crate) fn login(csrf: &str, flashes: &Flashes) -> Html<String> {
    layout(
        "Log in",
        None,
        csrf,
        flashes,
        &format!(
            r#"<h1>Log in</h1>
<form method="post" action="/login">
  <input type="hidden" name="csrf" value="{csrf}">
  <label for="username">Username</label>
  <input id="username" name="username" autocomplete="username" required autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <button type="submit">Log in</button>
</form>
<p class="switch">No account yet? <a href="/register">Create one</a></p>"#
        ),
    )
}

pub(crate) fn register(csrf: &str, flashes: &Flashes) -> Html<String> {
    layout(
        "Register",
        None,
        csrf,
        flashes,
        &format!(
            r#"<h1>Create an account</h1>
<form method="post" action="/register">
  <input type="hidden" name="csrf" value="{csrf}">
  <label for="username">Username</label>
  <input id="username" name="username" autocomplete="username" minlength="3" maxlength="32" required autofocus>
  <label for="password">Password <span class="hint">at least 8 characters</span></label>
  <input id="password" name="password" type="password" autocomplete="new-password" minlength="8" required>
  <button type="submit">Register</button>
</form>
<p class="switch">Already registered? <a href="/login">Log in</a></p>"#
        ),
    )
}

/// The user's live sessions, one row each, with a sign-out button for every
/// session but this one.
pub(crate) fn sessions(
    user: &str,
    csrf: &str,
    flashes: &Flashes,
    listing: &Listing,
    now: SystemTime,
) -> Html<String> {
    let user = escape(user);
    let mut main = String::from("<h1>Active sessions</h1>\n");
    match listing {
        Listing::Unlisted(why) => {
            let _ = write!(
                main,
                r#"<p class="unlisted">{}</p>
<p class="muted">{}</p>"#,
                escape(NEEDS_INDEX),
                escape(why)
            );
        }
        Listing::Sessions(list) => {
            let others = list.iter().filter(|s| !s.is_current()).count();
            main.push_str(
                r#"<p class="muted">Where your account is signed in. Sign out any session you do not recognise.</p>
<ul class="devices">"#,
            );
            // This device first, then the others, the most recently seen first.
            let ordered = list.iter().filter(|s| s.is_current());
            for s in ordered.chain(list.iter().filter(|s| !s.is_current())) {
                let device = s
                    .meta()
                    .get("device")
                    .map_or("Unknown device", String::as_str);
                let (tag, action) = if s.is_current() {
                    (
                        r#" <span class="tag">this device</span>"#.to_owned(),
                        String::new(),
                    )
                } else {
                    let form = format!(
                        r#"<form method="post" action="/sessions/end" class="inline">
  <input type="hidden" name="csrf" value="{csrf}">
  <input type="hidden" name="handle" value="{}">
  <button type="submit" class="link">Sign out</button>
</form>"#,
                        escape(s.handle().as_str())
                    );
                    (String::new(), form)
                };
                let _ = write!(
                    main,
                    r#"
<li class="device"><div><strong class="name">{}</strong>{tag}
<span class="when">Signed in {} · last seen {}</span></div>{action}</li>"#,
                    escape(device),
                    ago(s.signed_in(), now),
                    ago(s.last_seen(), now),
                );
            }
            main.push_str("\n</ul>");
            if others > 0 {
                let _ = write!(
                    main,
                    r#"
<form method="post" action="/sessions/end-others">
  <input type="hidden" name="csrf" value="{csrf}">
  <button type="submit">Sign out everywhere else</button>
</form>"#
                );
            }
        }
    }
    main.push_str(r#"<p class="switch"><a href="/">Back home</a></p>"#);
    layout("Active sessions", Some(&user), csrf, flashes, &main)
}

pub(crate) fn password(user: &str, csrf: &str, flashes: &Flashes) -> Html<String> {
    layout(
        "Change password",
        Some(&escape(user)),
        csrf,
        flashes,
        &format!(
            r#"<h1>Change password</h1>
<p class="muted">Changing your password signs out your other sessions.</p>
<form method="post" action="/password">
  <input type="hidden" name="csrf" value="{csrf}">
  <label for="current_password">Current password</label>
  <input id="current_password" name="current_password" type="password" autocomplete="current-password" required autofocus>
  <label for="new_password">New password <span class="hint">at least 8 characters</span></label>
  <input id="new_password" name="new_password" type="password" autocomplete="new-password" minlength="8" required>
  <button type="submit">Change password</button>
</form>
<p class="switch"><a href="/">Back home</a></p>"#
        ),
    )
}

pub(crate) fn error() -> Html<String> {
    layout(
        "Error",
        None,
        "",
        &Flashes::default(),
        r#"<h1>Something went wrong</h1>
<p class="muted">The server could not finish this request. Please try again.</p>
<p class="switch"><a href="/">Back to the start</a></p>"#,
    )
}

fn layout(
    title: &str,
    user: Option<&str>,
    csrf: &str,
    flashes: &Flashes,
    main: &str,
) -> Html<String> {
    let nav = match user {
        Some(user) => format!(
            r#"<span class="who">{user}</span>
<form method="post" action="/logout" class="inline">
  <input type="hidden" name="csrf" value="{csrf}">
  <button type="submit" class="link">Log out</button>
</form>"#
        ),
        None => r#"<a href="/login">Log in</a><a href="/register">Register</a>"#.to_owned(),
    };
    let mut notes = String::new();
    for (class, list) in [("notice", &flashes.notices), ("error", &flashes.errors)] {
        for text in list {
            let _ = write!(
                notes,
                r#"<p class="flash {class}" role="status">{}</p>"#,
                escape(text)
            );
        }
    }
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Notebook</title>
<style>{STYLE}</style>
</head>
<body>
<header><a class="brand" href="/">&#9635; Notebook</a><nav>{nav}</nav></header>
<main><section class="card">{notes}{main}</section></main>
<footer>A sessio example: sessions, CSRF tokens, flash messages.</footer>
</body>
</html>"#
    ))
}

/// Escapes text for HTML element content and quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;flex-direction:column;background:#f3f4f8;color:#1f2333;
  font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{display:flex;align-items:center;justify-content:space-between;min-height:64px;padding:10px 28px;background:#fff;
  border-bottom:1px solid #e3e5ee}
.brand{font-weight:700;font-size:18px;color:#3b3f8f;text-decoration:none}
nav{display:flex;align-items:center;gap:18px}
nav a{color:#4a4f6a;text-decoration:none}nav a:hover{color:#3b3f8f}
.who{color:#4a4f6a;font-weight:600}
main{flex:1;display:flex;justify-content:center;align-items:flex-start;padding:56px 16px}
.card{width:100%;max-width:420px;background:#fff;border:1px solid #e3e5ee;border-radius:12px;
  padding:32px;box-shadow:0 8px 24px rgba(31,35,51,.06)}
h1{margin:0 0 20px;font-size:24px}
label{display:block;margin:14px 0 6px;font-weight:600;font-size:14px}
.hint{font-weight:400;color:#7a7f99}
input{width:100%;padding:10px 12px;border:1px solid #cfd2e0;border-radius:8px;font:inherit}
input:focus{outline:2px solid #8c90e6;border-color:#5b5fc7}
button{margin-top:22px;width:100%;padding:11px;border:0;border-radius:8px;background:#5b5fc7;color:#fff;
  font:inherit;font-weight:600;cursor:pointer}button:hover{background:#4a4eb3}
form.inline{display:inline;margin:0}
button.link{margin:0;width:auto;padding:6px 14px;background:#eef0fb;color:#3b3f8f}
button.link:hover{background:#e0e3f7}
.flash{margin:0 0 18px;padding:10px 14px;border-radius:8px;font-size:15px}
.notice{background:#e8f6ee;color:#1d6b40;border:1px solid #bfe5cf}
.error{background:#fdecec;color:#9b2323;border:1px solid #f3c4c4}
.switch{margin:22px 0 0;text-align:center;color:#7a7f99;font-size:15px}
.switch a{color:#5b5fc7}
.muted{color:#5d6279}
.avatar{width:56px;height:56px;border-radius:50%;background:#5b5fc7;color:#fff;display:flex;align-items:center;
  justify-content:center;font-size:24px;font-weight:700;margin-bottom:16px}
.facts{list-style:none;padding:0;margin:22px 0 0;border-top:1px solid #eceef5}
.facts li{display:flex;justify-content:space-between;padding:10px 0;border-bottom:1px solid #eceef5;font-size:15px}
.facts span{color:#7a7f99}
.devices{list-style:none;padding:0;margin:18px 0 0;border-top:1px solid #eceef5}
.device{display:flex;justify-content:space-between;align-items:center;gap:12px;padding:12px 0;
  border-bottom:1px solid #eceef5}
.device button.link{white-space:nowrap}
.device .when{display:block;color:#7a7f99;font-size:14px}
.tag{margin-left:6px;padding:1px 8px;border-radius:10px;background:#e8f6ee;color:#1d6b40;font-size:13px}
.unlisted{padding:10px 14px;border-radius:8px;background:#fff7e6;color:#7a5200;border:1px solid #f0dcaa}
footer{text-align:center;padding:18px;color:#9a9eb5;font-size:13px}
"#;
