//! The login example's router: what `main.rs` serves and `tests/login.rs` and
//! `tests/browser/main.rs` drive.

use std::time::SystemTime;

use axum::extract::{Form, FromRef, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use sessio::csrf::{csrf_token, CsrfLayer};
use sessio::users::SessionHandle;
use sessio::{Key, Session, SessionLayer, Store};

use super::devices::{self, Devices, NEEDS_INDEX};
use super::pages::{self, Flashes};
use super::users::{BoxError, PasswordChange, RegisterError, Users};

/// Flash category for errors; notices use the default category.
const ERROR: &str = "error";

/// How the app is set up (see `main.rs` for the environment variables).
pub(crate) struct Options {
    pub(crate) key: Key,
    /// Mark the session cookie `Secure`. Only plain-HTTP development on
    /// loopback turns it off.
    pub(crate) secure: bool,
}

/// What the handlers share: the user table and the sessions' index.
#[derive(Clone)]
struct AppState {
    users: Users,
    devices: Devices,
}

impl FromRef<AppState> for Users {
    fn from_ref(state: &AppState) -> Self {
        state.users.clone()
    }
}

impl FromRef<AppState> for Devices {
    fn from_ref(state: &AppState) -> Self {
        state.devices.clone()
    }
}

/// The whole app on any session store; `devices` lists and ends sessions
/// in that same store, or says why it cannot.
pub(crate) fn router<St: Store>(
    store: St,
    devices: Devices,
    users: Users,
    options: Options,
) -> Result<Router, sessio::Error> {
    // A `__Host-` cookie is bound to this exact origin (Secure, Path=/, no
    // Domain), so a sibling subdomain cannot plant one; browsers accept it
    // only over HTTPS, so plain-HTTP development uses a plain name.
    let name = if options.secure { "__Host-id" } else { "id" };
    let sessions = SessionLayer::builder(store, options.key)
        .with_cookie_name(name)
        .with_secure(options.secure)
        .with_absolute_timeout(std::time::Duration::from_secs(12 * 3600))
        .build()?;
    Ok(Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/register", get(register_page).post(register))
        .route("/logout", post(logout))
        .route("/sessions", get(sessions_page))
        .route("/sessions/end", post(end_session))
        .route("/sessions/end-others", post(end_other_sessions))
        .route("/password", get(password_page).post(change_password))
        .with_state(AppState { users, devices })
        // Every POST above, login and register included, needs the token:
        // a forged login would sign the victim into the attacker's account.
        .layer(CsrfLayer::new().with_body_limit(16 * 1024))
        .layer(sessions)
        .layer(axum::middleware::map_response(security_headers)))
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn home(session: Session) -> Result<Response, AppError> {
    let Some(user) = session.user()? else {
        return Ok(Redirect::to("/login").into_response()); // 303 See Other
    };
    let flashes = take_flashes(&session)?;
    Ok(pages::home(&user, &csrf_token(&session)?, &flashes).into_response())
}

async fn login_page(session: Session) -> Result<Response, AppError> {
    if session.user()?.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let flashes = take_flashes(&session)?;
    Ok(pages::login(&csrf_token(&session)?, &flashes).into_response())
}

async fn login(
    State(users): State<Users>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<Credentials>,
) -> Result<Redirect, AppError> {
    match users.verify(form.username.trim(), &form.password).await? {
        Some(user) => {
            // A new id at the moment privileges change: a session id planted
            // or seen before login is worthless after it (fixation).
            session.cycle_id()?;
            // Binds the session to the user: the "Active sessions" page lists
            // it, and a password change can end it.
            session.set_user(&user)?;
            let agent = headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok());
            session.set_meta("device", &devices::device(agent))?;
            tracing::info!(%user, "logged in");
            Ok(Redirect::to("/"))
        }
        None => {
            session.add_flash_to(ERROR, "Wrong username or password")?;
            Ok(Redirect::to("/login"))
        }
    }
}

async fn register_page(session: Session) -> Result<Response, AppError> {
    if session.user()?.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let flashes = take_flashes(&session)?;
    Ok(pages::register(&csrf_token(&session)?, &flashes).into_response())
}

async fn register(
    State(users): State<Users>,
    session: Session,
    Form(form): Form<Credentials>,
) -> Result<Redirect, AppError> {
    let refused = match users.register(form.username.trim(), &form.password).await {
        Ok(()) => {
            tracing::info!(user = %form.username.trim(), "registered");
            session.add_flash("Registered, please log in")?;
            return Ok(Redirect::to("/login"));
        }
        Err(RegisterError::Invalid(why)) => why,
        Err(RegisterError::Taken) => "That username is taken",
        Err(RegisterError::Failed(err)) => return Err(AppError::Internal(err)),
    };
    session.add_flash_to(ERROR, refused)?;
    Ok(Redirect::to("/register"))
}

async fn logout(session: Session) -> Result<Redirect, AppError> {
    // Deletes the record and drops the cookie; the notice below lives in a
    // fresh anonymous session with a new id.
    session.destroy();
    session.add_flash("You have been logged out")?;
    Ok(Redirect::to("/login"))
}

async fn sessions_page(
    State(devices): State<Devices>,
    session: Session,
) -> Result<Response, AppError> {
    let Some(user) = session.user()? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let listing = devices.list(&session).await?;
    let flashes = take_flashes(&session)?;
    let csrf = csrf_token(&session)?;
    let page = pages::sessions(&user, &csrf, &flashes, &listing, SystemTime::now());
    Ok(page.into_response())
}

#[derive(Deserialize)]
struct EndForm {
    handle: String,
}

async fn end_session(
    State(devices): State<Devices>,
    session: Session,
    Form(form): Form<EndForm>,
) -> Result<Redirect, AppError> {
    let Some(user) = session.user()? else {
        return Ok(Redirect::to("/login"));
    };
    let handle = SessionHandle::parse(form.handle.trim());
    if handle.is_some() && handle == session.handle() {
        session.add_flash_to(ERROR, "That is this device: use Log out to sign it out")?;
        return Ok(Redirect::to("/sessions"));
    }
    let ended = match &handle {
        Some(handle) => devices.end(&user, handle).await?,
        None => Some(false),
    };
    match ended {
        Some(true) => session.add_flash("Signed out 1 session")?,
        // Another user's handle ends nothing and looks like an ended one.
        Some(false) => session.add_flash_to(ERROR, "No such session: it may have ended already")?,
        None => session.add_flash_to(ERROR, NEEDS_INDEX)?,
    }
    Ok(Redirect::to("/sessions"))
}

async fn end_other_sessions(
    State(devices): State<Devices>,
    session: Session,
) -> Result<Redirect, AppError> {
    if session.user()?.is_none() {
        return Ok(Redirect::to("/login"));
    }
    match devices.end_others(&session).await? {
        Some(n) => session.add_flash(signed_out(n))?,
        None => session.add_flash_to(ERROR, NEEDS_INDEX)?,
    }
    Ok(Redirect::to("/sessions"))
}

fn signed_out(n: usize) -> String {
    match n {
        0 => "There were no other sessions to sign out".to_owned(),
        1 => "Signed out 1 other session".to_owned(),
        n => format!("Signed out {n} other sessions"),
    }
}

async fn password_page(session: Session) -> Result<Response, AppError> {
    let Some(user) = session.user()? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let flashes = take_flashes(&session)?;
    Ok(pages::password(&user, &csrf_token(&session)?, &flashes).into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(users): State<Users>,
    State(devices): State<Devices>,
    session: Session,
    Form(form): Form<PasswordForm>,
) -> Result<Redirect, AppError> {
    let Some(user) = session.user()? else {
        return Ok(Redirect::to("/login"));
    };
    let refused = match users
        .change_password(&user, &form.current_password, &form.new_password)
        .await?
    {
        PasswordChange::Changed => {
            // Whoever learnt the old password may be signed in elsewhere.
            let ended = devices.end_others(&session).await?;
            // And a new id here, as at login.
            session.cycle_id()?;
            tracing::info!(%user, ?ended, "password changed");
            let note = match ended {
                Some(n) => format!("Password changed. {}.", signed_out(n)),
                None => format!(
                    "Password changed. Your other sessions could not be signed out: {NEEDS_INDEX}"
                ),
            };
            session.add_flash(note)?;
            return Ok(Redirect::to("/"));
        }
        PasswordChange::WrongPassword => "Your current password is wrong",
        PasswordChange::Invalid(why) => why,
    };
    session.add_flash_to(ERROR, refused)?;
    Ok(Redirect::to("/password"))
}

fn take_flashes(session: &Session) -> Result<Flashes, sessio::Error> {
    Ok(Flashes {
        notices: session.flashes()?,
        errors: session.flashes_from(ERROR)?,
    })
}

/// Headers every page gets: no framing (clickjacking), no inline scripts,
/// forms may post only here.
async fn security_headers(mut res: Response) -> Response {
    let headers = res.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    res
}

/// A failure a handler cannot recover from: logged, answered with a 500 page
/// (or the store error's own status).
#[derive(Debug)]
enum AppError {
    Session(sessio::Error),
    Internal(BoxError),
}

impl From<sessio::Error> for AppError {
    fn from(err: sessio::Error) -> Self {
        Self::Session(err)
    }
}

impl From<BoxError> for AppError {
    fn from(err: BoxError) -> Self {
        Self::Internal(err)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Session(err) => {
                tracing::error!(error = %err, "session failure");
                err.status()
            }
            Self::Internal(err) => {
                tracing::error!(error = %err, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, pages::error()).into_response()
    }
}
