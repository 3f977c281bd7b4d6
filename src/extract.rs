//! axum extractors for [`Session`] and [`Sessions`].
//!
//! `Session` loads the default session (the first name of the outermost
//! layer); `Option<Session>` is `None` when no layer is installed; `Sessions`
//! reaches every named session. Without the layer, extraction fails with
//! [`SessionRejection::MissingLayer`], a 500 whose body names the problem.

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::error::Error;
use crate::session::Session;
use crate::sessions::Sessions;

/// Why a session could not be extracted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionRejection {
    /// No `SessionLayer` runs in front of this handler.
    #[error("missing session layer: add sessio::SessionLayer around this route")]
    MissingLayer,
    /// The store failed while loading. The layer replaces this response with
    /// its error handler's on the way out.
    #[error("loading the session failed")]
    Load(#[source] Error),
}

impl SessionRejection {
    /// The status the rejection answers with: 500 for a missing layer, the
    /// store error's status (503 when unreachable) for a failed load.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Load(err) => err.status(),
        }
    }

    /// The body the rejection answers with: the reason for a missing layer
    /// (a programming error worth showing), nothing for a store failure
    /// (its details go to the log, not to clients).
    pub fn body_text(&self) -> String {
        match self {
            Self::MissingLayer => self.to_string(),
            Self::Load(_) => String::new(),
        }
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        (self.status(), self.body_text()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(SessionRejection::MissingLayer)?;
        session.load().await.map_err(SessionRejection::Load)?;
        Ok(session)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        let Some(session) = parts.extensions.get::<Session>().cloned() else {
            return Ok(None);
        };
        session.load().await.map_err(SessionRejection::Load)?;
        Ok(Some(session))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Sessions {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Sessions>()
            .cloned()
            .ok_or(SessionRejection::MissingLayer)
    }
}

/// Lets handlers return `Result<_, sessio::Error>` and use `?`: the answer is
/// the error's status ([`Error::status`]) with an empty body, and an ERROR
/// event is logged (without secrets).
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "session error in handler");
        self.status().into_response()
    }
}
