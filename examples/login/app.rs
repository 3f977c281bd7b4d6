//! The login example's router: what `main.rs` serves and `tests/login.rs` and
//! `tests/browser/main.rs` drive.

use axum::extract::{Form, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use sessio::csrf::{csrf_token, CsrfLayer};
use sessio::{Key, Session, SessionLayer, Store};

use super::pages::{self, Flashes};
use super::users::{BoxError, RegisterError, Users};

/// The session key that holds the logged-in username.
const USER: &str = "user";
/// Flash category for errors; notices use the default category.
const ERROR: &str = "error";

/// How the app is set up (see `main.rs` for the environment variables).
pub(crate) struct Options {
    pub(crate) key: Key,
    /// Mark the session cookie `Secure`. Only plain-HTTP development on
    /// loopback turns it off.
    pub(crate) secure: bool,
}

/// The whole app on any session store.
pub(crate) fn router<St: Store>(
    store: St,
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
        .with_state(users)
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
    let Some(user) = session.get::<String>(USER)? else {
        return Ok(Redirect::to("/login").into_response()); // 303 See Other
    };
    let flashes = take_flashes(&session)?;
    Ok(pages::home(&user, &csrf_token(&session)?, &flashes).into_response())
}

async fn login_page(session: Session) -> Result<Response, AppError> {
    if session.get::<String>(USER)?.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let flashes = take_flashes(&session)?;
    Ok(pages::login(&csrf_token(&session)?, &flashes).into_response())
}

async fn login(
    State(users): State<Users>,
    session: Session,
    Form(form): Form<Credentials>,
) -> Result<Redirect, AppError> {
    match users.verify(form.username.trim(), &form.password).await? {
        Some(user) => {
            // A new id at the moment privileges change: a session id planted
            // or seen before login is worthless after it (fixation).
            session.cycle_id()?;
            session.set(USER, &user)?;
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
    if session.get::<String>(USER)?.is_some() {
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
