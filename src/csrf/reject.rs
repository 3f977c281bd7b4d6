//! Why a request was refused, and the response that says so.

use std::fmt;

use http::header::{CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, Response, StatusCode};

/// Why [`CsrfLayer`](super::CsrfLayer) refused a request.
///
/// The refusal response carries it in its extensions, whether the default
/// response or one from
/// [`CsrfLayer::with_rejection_response`](super::CsrfLayer::with_rejection_response).
/// Its [`body_text`](Self::body_text) is short, plain and safe to show a
/// user; `Display` gives the same text.
///
/// ```
/// use http::StatusCode;
/// use sessio::csrf::CsrfRejection;
///
/// let rejection = CsrfRejection::InvalidToken;
/// assert_eq!(rejection.status(), StatusCode::FORBIDDEN);
/// assert!(rejection.body_text().starts_with("invalid CSRF token"));
///
/// let res: http::Response<String> = rejection.into_response();
/// assert_eq!(res.status(), StatusCode::FORBIDDEN);
/// assert_eq!(res.extensions().get(), Some(&CsrfRejection::InvalidToken));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CsrfRejection {
    /// No token in the `x-csrf-token` header or the `csrf` form field: 403.
    MissingToken,
    /// A token was sent but is not one rendered for this session (another
    /// session's, altered, or the session's bare secret): 403.
    InvalidToken,
    /// A token was sent but the session holds no secret to check it against
    /// (a new or expired session, or one whose id was cycled since the page
    /// was rendered): 403.
    NoSessionToken,
    /// The urlencoded form body is over the layer's limit: 413.
    BodyTooLarge,
    /// The form body could not be read: 400.
    UnreadableBody,
    /// No [`SessionLayer`](crate::SessionLayer) (or no session of the
    /// configured name) around the layer: 500, a setup mistake.
    NoSessionLayer,
    /// Loading the session failed: 500. The session layer, outside, answers
    /// with its error handler's response instead of this one.
    SessionLoadFailed,
}

impl CsrfRejection {
    /// The status code of the default response.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken | Self::NoSessionToken => StatusCode::FORBIDDEN,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnreadableBody => StatusCode::BAD_REQUEST,
            Self::NoSessionLayer | Self::SessionLoadFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body of the default response, one line of plain text (empty for
    /// [`SessionLoadFailed`](Self::SessionLoadFailed), whose response the
    /// session layer replaces).
    pub fn body_text(&self) -> &'static str {
        match self {
            Self::MissingToken => {
                "missing CSRF token: send it in the x-csrf-token header or the csrf form field\n"
            }
            Self::InvalidToken => "invalid CSRF token: reload the page and try again\n",
            Self::NoSessionToken => {
                "invalid CSRF token: the session has none; reload the page and try again\n"
            }
            Self::BodyTooLarge => "request body too large for the CSRF check\n",
            Self::UnreadableBody => "could not read the request body\n",
            Self::NoSessionLayer => {
                "missing session layer: put sessio::SessionLayer around sessio::csrf::CsrfLayer\n"
            }
            Self::SessionLoadFailed => "",
        }
    }

    /// The default response: [`status`](Self::status), `text/plain`
    /// [`body_text`](Self::body_text), `X-Content-Type-Options: nosniff`, and
    /// the rejection itself in the extensions.
    pub fn into_response<B: From<&'static str>>(self) -> Response<B> {
        let mut res = Response::new(B::from(self.body_text()));
        *res.status_mut() = self.status();
        let headers = res.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        res.extensions_mut().insert(self);
        res
    }

    /// Logs the refusal: WARN for a missing or wrong token (possibly an
    /// attack), ERROR for a missing session layer, DEBUG for the rest.
    pub(super) fn log(self) {
        match self {
            Self::MissingToken | Self::InvalidToken | Self::NoSessionToken => {
                tracing::warn!(reason = ?self, "CSRF check failed");
            }
            Self::NoSessionLayer => tracing::error!("CsrfLayer used without a SessionLayer"),
            _ => tracing::debug!(reason = ?self, "request refused by the CSRF layer"),
        }
    }
}

impl fmt::Display for CsrfRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SessionLoadFailed => f.write_str("could not load the session for the CSRF check"),
            _ => f.write_str(self.body_text().trim_end()),
        }
    }
}

impl std::error::Error for CsrfRejection {}

/// Builds the response [`CsrfLayer`](super::CsrfLayer) sends when it refuses
/// a request.
///
/// Implemented for every `Fn(&CsrfRejection) -> Response<B>`; see
/// [`CsrfLayer::with_rejection_response`](super::CsrfLayer::with_rejection_response).
pub trait RejectionResponse<B>: Send + Sync + 'static {
    /// The response for `rejection`.
    fn response(&self, rejection: &CsrfRejection) -> Response<B>;
}

impl<B, F> RejectionResponse<B> for F
where
    F: Fn(&CsrfRejection) -> Response<B> + Send + Sync + 'static,
{
    fn response(&self, rejection: &CsrfRejection) -> Response<B> {
        self(rejection)
    }
}

/// The default [`RejectionResponse`]: [`CsrfRejection::into_response`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultRejectionResponse;

impl<B: From<&'static str>> RejectionResponse<B> for DefaultRejectionResponse {
    fn response(&self, rejection: &CsrfRejection) -> Response<B> {
        rejection.into_response()
    }
}
