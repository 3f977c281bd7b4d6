//! [`CsrfService`]: the check itself.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_service::Service;

use super::future::ResponseFuture;
use super::token::{expected_secret, secrets_match, unmask};
use super::{Config, CsrfRejection, RejectionResponse, SkipPredicate, FORM_FIELD, HEADER};
use crate::error::BoxError;
use crate::session::Session;
use crate::sessions::Sessions;

/// The service [`CsrfLayer`](super::CsrfLayer) wraps around an inner service.
///
/// Its error type is the inner service's: refusals are responses.
pub struct CsrfService<S, P, R> {
    inner: S,
    config: Arc<Config>,
    skip: Arc<P>,
    respond: Arc<R>,
}

impl<S, P, R> CsrfService<S, P, R> {
    pub(super) fn new(inner: S, config: Arc<Config>, skip: Arc<P>, respond: Arc<R>) -> Self {
        Self {
            inner,
            config,
            skip,
            respond,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, this one dropped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P, R> Clone for CsrfService<S, P, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            skip: self.skip.clone(),
            respond: self.respond.clone(),
        }
    }
}

impl<S: fmt::Debug, P, R> fmt::Debug for CsrfService<S, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, P, R, ReqBody, ResBody> Service<Request<ReqBody>> for CsrfService<S, P, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    P: SkipPredicate<ReqBody>,
    R: RejectionResponse<ResBody>,
    ReqBody: http_body::Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if is_safe(req.method()) || self.skip.skip(&req) {
            return ResponseFuture::passed(self.inner.call(req));
        }
        // The check awaits before the inner service runs, so the service
        // driven to readiness goes into the future and a fresh clone stays
        // for the next call (tower-service's advice).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let respond = self.respond.clone();
        ResponseFuture::checked(Box::pin(async move {
            match check(&config, req).await {
                Ok(req) => inner.call(req).await,
                Err(rejection) => {
                    rejection.log();
                    let mut res = respond.response(&rejection);
                    res.extensions_mut().insert(rejection);
                    Ok(res)
                }
            }
        }))
    }
}

/// Methods that must not change state, so they carry no token.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Checks the request's token, giving the request back (body intact) when it
/// matches the session's.
async fn check<B>(config: &Config, req: Request<B>) -> Result<Request<B>, CsrfRejection>
where
    B: http_body::Body + From<Bytes>,
    B::Error: Into<BoxError>,
{
    let (req, given) = match req.headers().get(HEADER) {
        Some(value) => {
            let given = value.as_bytes().to_vec();
            (req, Some(given))
        }
        None if is_urlencoded_form(req.headers()) => read_form(config.body_limit, req).await?,
        None => (req, None),
    };
    // A request with no token, or one that is no rendered token, is refused
    // before any store I/O.
    let given = given.ok_or(CsrfRejection::MissingToken)?;
    let session = session_of(config, &req).ok_or(CsrfRejection::NoSessionLayer)?;
    let given = unmask(&given).ok_or(CsrfRejection::InvalidToken)?;
    session
        .load()
        .await
        .map_err(|_| CsrfRejection::SessionLoadFailed)?;
    let expected = expected_secret(&session)
        .map_err(|_| CsrfRejection::SessionLoadFailed)?
        .ok_or(CsrfRejection::NoSessionToken)?;
    if secrets_match(&expected, &given) {
        Ok(req)
    } else {
        Err(CsrfRejection::InvalidToken)
    }
}

fn session_of<B>(config: &Config, req: &Request<B>) -> Option<Session> {
    match &config.session {
        None => req.extensions().get::<Session>().cloned(),
        Some(name) => req
            .extensions()
            .get::<Sessions>()
            .and_then(|all| all.find(name))
            .cloned(),
    }
}

fn is_urlencoded_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Buffers a form body up to `limit` bytes, finds the token field, and puts
/// the same bytes back as the request's body.
async fn read_form<B>(
    limit: usize,
    req: Request<B>,
) -> Result<(Request<B>, Option<Vec<u8>>), CsrfRejection>
where
    B: http_body::Body + From<Bytes>,
    B::Error: Into<BoxError>,
{
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(CsrfRejection::BodyTooLarge);
    }
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<LengthLimitError>() => return Err(CsrfRejection::BodyTooLarge),
        Err(_) => return Err(CsrfRejection::UnreadableBody),
    };
    let given = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == FORM_FIELD)
        .map(|(_, value)| value.into_owned().into_bytes());
    Ok((Request::from_parts(parts, B::from(bytes)), given))
}
