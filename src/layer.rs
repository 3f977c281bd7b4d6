//! [`SessionLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::clock::{Clock, SystemClock};
use crate::codec::Codec;
use crate::config::{default_name, CookieAttrs, SameSite};
use crate::error::{ConfigError, Error};
use crate::expiry::{Expiry, Refresh};
use crate::key::{Key, KeyRing};
use crate::persist::{ErrorHandler, LayerConfig};
use crate::service::SessionService;
use crate::store::Store;

/// Adds sessions to a tower service (an axum `Router` above all).
///
/// ```
/// use axum::{routing::get, Router};
/// use sessio::{Key, MemoryStore, Session, SessionLayer};
///
/// async fn incr(session: Session) -> String {
///     let n: u64 = session.get("n").unwrap().unwrap_or(0);
///     session.set("n", n + 1).unwrap();
///     n.to_string()
/// }
///
/// let app: Router = Router::new()
///     .route("/incr", get(incr))
///     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
/// ```
///
/// Customised with the [builder](Self::builder); mistakes come back as a
/// typed error from [`build`](SessionLayerBuilder::build):
///
/// ```
/// use sessio::{ConfigError, Expiry, Key, MemoryStore, SameSite, SessionLayer};
/// use std::time::Duration;
///
/// let layer = SessionLayer::builder(MemoryStore::new(), Key::generate())
///     .with_cookie_name("__Host-sid")
///     .with_same_site(SameSite::Strict)
///     .with_expiry(Expiry::OnInactivity(Duration::from_secs(3600)))
///     .with_absolute_timeout(Duration::from_secs(12 * 3600))
///     .build()?;
///
/// let bad = SessionLayer::builder(MemoryStore::new(), Key::generate())
///     .with_cookie_name("__Host-sid")
///     .with_domain("example.com")
///     .build();
/// assert_eq!(bad.unwrap_err(), ConfigError::HostPrefix);
/// # let _ = layer;
/// # Ok::<(), ConfigError>(())
/// ```
pub struct SessionLayer<St> {
    config: Arc<LayerConfig<St>>,
}

impl<St: Store> SessionLayer<St> {
    /// A layer with the defaults: cookie `__Host-id`, `Path=/`, no `Domain`,
    /// `Secure`, `HttpOnly`, `SameSite=Lax`, a browser-session cookie whose
    /// record expires after 24 hours of inactivity, and an empty 500 (503 when
    /// the store is unreachable) on store errors.
    pub fn new(store: St, key: Key) -> Self {
        Self::builder(store, key).assemble(vec![CookieAttrs::new("__Host-id")])
    }

    /// Several named sessions over one store, each with its own cookie (gin's
    /// `sessions.Many`). Handlers reach them through [`Sessions`](crate::Sessions);
    /// [`Session`](crate::Session) extracts the first.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidCookieName`] or [`ConfigError::DuplicateCookieName`]
    /// for names a cookie cannot have or that repeat, and the other
    /// [`ConfigError`]s of [`build`](SessionLayerBuilder::build).
    pub fn many<I, N>(store: St, key: Key, names: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        Self::builder(store, key).with_cookie_names(names).build()
    }

    /// A builder for a customised layer.
    pub fn builder(store: St, key: Key) -> SessionLayerBuilder<St> {
        SessionLayerBuilder {
            store,
            keys: KeyRing::new(key),
            names: None,
            template: CookieAttrs::new("id"),
            expiry: Expiry::default(),
            absolute: None,
            refresh: Refresh::default(),
            private: true,
            clock: Arc::new(SystemClock),
            on_error: Arc::new(default_error_response),
        }
    }
}

fn default_error_response(err: &Error) -> http::Response<()> {
    let mut res = http::Response::new(());
    *res.status_mut() = err.status();
    res
}

impl<St> Clone for SessionLayer<St> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<S, St> Layer<S> for SessionLayer<St> {
    type Service = SessionService<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.config.clone())
    }
}

impl<St> fmt::Debug for SessionLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field(
                "cookies",
                &self
                    .config
                    .cookies
                    .iter()
                    .map(|c| &c.name)
                    .collect::<Vec<_>>(),
            )
            .field("expiry", &self.config.expiry)
            .finish_non_exhaustive()
    }
}

/// Configures a [`SessionLayer`]; see [`SessionLayer::builder`].
pub struct SessionLayerBuilder<St> {
    store: St,
    keys: KeyRing,
    names: Option<Vec<String>>,
    template: CookieAttrs,
    expiry: Expiry,
    absolute: Option<Duration>,
    refresh: Refresh,
    private: bool,
    clock: Arc<dyn Clock>,
    on_error: ErrorHandler,
}

impl<St: Store> SessionLayerBuilder<St> {
    /// The cookie name. Default `__Host-id` (`__Secure-id` with another
    /// `Path` or a `Domain`, `id` without `Secure`): generic, so it does not
    /// advertise the framework, and with the prefix a sibling subdomain
    /// cannot plant a cookie the host takes for its own. `__Host-` and
    /// `__Secure-` prefix rules are checked by `build`, ignoring case.
    ///
    /// **Migration** from versions whose default name was `id`: a browser's
    /// old `id` cookie is no longer read, so its holder starts a fresh
    /// session (no error). To carry those sessions over, keep the old name
    /// with `with_cookie_name("id")` until they have expired, then switch.
    #[must_use]
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.names = Some(vec![name.into()]);
        self
    }

    /// Several named sessions, each with its own cookie; see [`SessionLayer::many`].
    #[must_use]
    pub fn with_cookie_names<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        self.names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// The `Path` attribute. Default `/`.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.template.path = path.into();
        self
    }

    /// The `Domain` attribute. Default none (host-only cookie).
    #[must_use]
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.template.domain = Some(domain.into());
        self
    }

    /// The `Secure` attribute. Default on; turn off only for plain-HTTP
    /// development.
    #[must_use]
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.template.secure = secure;
        self
    }

    /// The `HttpOnly` attribute. Default on.
    #[must_use]
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.template.http_only = http_only;
        self
    }

    /// The `SameSite` attribute. Default `Lax`.
    #[must_use]
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.template.same_site = same_site;
        self
    }

    /// The `Partitioned` attribute (CHIPS). Default off.
    #[must_use]
    pub fn with_partitioned(mut self, partitioned: bool) -> Self {
        self.template.partitioned = partitioned;
        self
    }

    /// When sessions expire. Default [`Expiry::default`]: a browser-session
    /// cookie, the record kept for 24 hours of inactivity.
    #[must_use]
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// A limit counted from the session's creation that no activity extends.
    /// Default none for server-side stores; for the cookie store
    /// [`DEFAULT_CLIENT_SIDE_ABSOLUTE`](crate::store::DEFAULT_CLIENT_SIDE_ABSOLUTE)
    /// (7 days), so a copied cookie cannot be renewed forever.
    #[must_use]
    pub fn with_absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute = Some(timeout);
        self
    }

    /// When a session that is only read, or not extracted at all, has its
    /// expiry extended. Default [`Refresh::WhenHalfGone`]: past half a
    /// rolling window, by a request that reads it.
    #[must_use]
    pub fn with_refresh(mut self, refresh: Refresh) -> Self {
        self.refresh = refresh;
        self
    }

    /// Whether a response made from a loaded, non-empty session gets
    /// `Cache-Control: private` (a handler's `public` or `s-maxage` is
    /// replaced) and `Vary: Cookie`, so a shared cache never hands one
    /// visitor's page to the next. Default on. Responses that set the session
    /// cookie are `no-store` for shared caches whatever this says.
    #[must_use]
    pub fn with_private_responses(mut self, private: bool) -> Self {
        self.private = private;
        self
    }

    /// Old keys that still verify. A cookie accepted under one is re-issued
    /// under the current key the next time the session is used. Default none.
    #[must_use]
    pub fn with_fallback_keys(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        self.keys.set_fallbacks(keys);
        self
    }

    /// Turns store errors into responses. Default: an empty 503 when the store
    /// is unreachable, an empty 500 otherwise. The body is the inner service's
    /// default body.
    #[must_use]
    pub fn with_error_handler(
        mut self,
        handler: impl Fn(&Error) -> http::Response<()> + Send + Sync + 'static,
    ) -> Self {
        self.on_error = Arc::new(handler);
        self
    }

    /// The clock that decides expiry. Default the system clock; tests use a
    /// [`ManualClock`](crate::clock::ManualClock).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first mistake: a zero expiry window or
    /// absolute timeout, no cookie name or a repeated one, a name or
    /// attribute a cookie cannot carry, or a `__Host-`/`__Secure-`, `SameSite=None`
    /// or `Partitioned` cookie without the attributes those require.
    pub fn build(self) -> Result<SessionLayer<St>, ConfigError> {
        self.expiry.validate()?;
        if self.absolute.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::ZeroDuration("the absolute timeout"));
        }
        // No name given: the default for these attributes.
        let names = match &self.names {
            None => vec![default_name(&self.template).to_owned()],
            Some(names) if names.is_empty() => return Err(ConfigError::InvalidCookieName),
            Some(names) => names.clone(),
        };
        let mut cookies = Vec::with_capacity(names.len());
        for name in &names {
            if cookies.iter().any(|c: &CookieAttrs| &c.name == name) {
                return Err(ConfigError::DuplicateCookieName(name.clone()));
            }
            let mut attrs = self.template.clone();
            attrs.name.clone_from(name);
            cookies.push(attrs.build()?);
        }
        Ok(self.assemble(cookies))
    }

    fn assemble(self, cookies: Vec<CookieAttrs>) -> SessionLayer<St> {
        // SECURITY J50: a cookie that holds the session cannot be revoked;
        // without a cap a copy could be renewed forever.
        let absolute = self.absolute.or_else(|| {
            self.store
                .is_client_side()
                .then_some(crate::store::DEFAULT_CLIENT_SIDE_ABSOLUTE)
        });
        SessionLayer {
            config: Arc::new(LayerConfig {
                protection: self.store.protection(),
                store: self.store,
                codec: Codec::new(self.keys.all()),
                cookies,
                expiry: self.expiry,
                absolute,
                refresh: self.refresh,
                private: self.private,
                clock: self.clock,
                on_error: self.on_error,
            }),
        }
    }
}

impl<St> fmt::Debug for SessionLayerBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayerBuilder")
            .field("names", &self.names)
            .field("expiry", &self.expiry)
            .field("absolute", &self.absolute)
            .finish_non_exhaustive()
    }
}
