//! Why a request was refused, and the response that says so.

use http::header::{CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, Response, StatusCode};

/// A refused request. The bodies are short, plain and safe to show a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rejection {
    Missing,
    Invalid,
    TooLarge,
    BadBody,
    NoSessionLayer,
    /// Loading the session failed; the session layer, outside, replaces this
    /// response with its error handler's.
    SessionLoad,
}

impl Rejection {
    fn status(self) -> StatusCode {
        match self {
            Self::Missing | Self::Invalid => StatusCode::FORBIDDEN,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadBody => StatusCode::BAD_REQUEST,
            Self::NoSessionLayer | Self::SessionLoad => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Missing => {
                "missing CSRF token: send it in the x-csrf-token header or the csrf form field\n"
            }
            Self::Invalid => "invalid CSRF token: reload the page and try again\n",
            Self::TooLarge => "request body too large for the CSRF check\n",
            Self::BadBody => "could not read the request body\n",
            Self::NoSessionLayer => {
                "missing session layer: put sessio::SessionLayer around sessio::csrf::CsrfLayer\n"
            }
            Self::SessionLoad => "",
        }
    }

    pub(super) fn into_response<B: From<&'static str>>(self) -> Response<B> {
        match self {
            Self::Missing | Self::Invalid => tracing::warn!(reason = ?self, "CSRF check failed"),
            Self::NoSessionLayer => tracing::error!("CsrfLayer used without a SessionLayer"),
            _ => tracing::debug!(reason = ?self, "request refused by the CSRF layer"),
        }
        let mut res = Response::new(B::from(self.message()));
        *res.status_mut() = self.status();
        let headers = res.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        res
    }
}
