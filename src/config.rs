//! Cookie attributes: the layer's, and a session's own overrides.

use std::time::Duration;

use crate::error::ConfigError;

/// The `SameSite` cookie attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// Sent only with same-site requests.
    Strict,
    /// Sent with same-site requests and top-level cross-site navigations (default).
    Lax,
    /// Sent with every request; requires `Secure`.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

/// Cookie attributes a single session may override (gorilla's `Options`).
///
/// Each setter overrides the layer's setting for this session's cookie in this
/// response; fields left unset keep the layer's value.
///
/// ```
/// use sessio::{CookieOptions, SameSite};
/// use std::time::Duration;
///
/// let remember_me = CookieOptions::new()
///     .with_max_age(Duration::from_secs(30 * 24 * 3600))
///     .with_same_site(SameSite::Strict);
/// # let _ = remember_me;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CookieOptions {
    pub(crate) max_age: Option<Duration>,
    pub(crate) path: Option<String>,
    pub(crate) domain: Option<Option<String>>,
    pub(crate) secure: Option<bool>,
    pub(crate) http_only: Option<bool>,
    pub(crate) same_site: Option<SameSite>,
    pub(crate) partitioned: Option<bool>,
}

impl CookieOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Max-Age` of the cookie and lifetime of the record, rolling: the same as
    /// [`Expiry::OnInactivity`](crate::Expiry::OnInactivity) for this session.
    #[must_use]
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The `Path` attribute.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The `Domain` attribute; `None` removes it.
    #[must_use]
    pub fn with_domain(mut self, domain: Option<&str>) -> Self {
        self.domain = Some(domain.map(str::to_owned));
        self
    }

    /// The `Secure` attribute.
    #[must_use]
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = Some(secure);
        self
    }

    /// The `HttpOnly` attribute.
    #[must_use]
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = Some(http_only);
        self
    }

    /// The `SameSite` attribute.
    #[must_use]
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = Some(same_site);
        self
    }

    /// The `Partitioned` attribute (CHIPS).
    #[must_use]
    pub fn with_partitioned(mut self, partitioned: bool) -> Self {
        self.partitioned = Some(partitioned);
        self
    }
}

/// The validated attributes of one session cookie, with its `Set-Cookie` suffix
/// rendered once.
#[derive(Clone, Debug)]
pub(crate) struct CookieAttrs {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    pub(crate) partitioned: bool,
    suffix: String,
    /// The companion cookie's name (`<name>-csrf`).
    companion: String,
}

impl CookieAttrs {
    pub(crate) fn new(name: &str) -> Self {
        let mut attrs = Self {
            name: name.to_owned(),
            path: "/".to_owned(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            partitioned: false,
            suffix: String::new(),
            companion: String::new(),
        };
        attrs.render();
        attrs
    }

    /// Checks the attributes and renders the suffix.
    pub(crate) fn build(mut self) -> Result<Self, ConfigError> {
        if !is_token(&self.name) {
            return Err(ConfigError::InvalidCookieName);
        }
        if !is_attr_value(&self.path) || !self.path.starts_with('/') {
            return Err(ConfigError::InvalidAttribute("path"));
        }
        if let Some(d) = &self.domain {
            if d.is_empty() || !is_attr_value(d) {
                return Err(ConfigError::InvalidAttribute("domain"));
            }
        }
        // Browsers match the prefixes case-insensitively (RFC 6265bis).
        if has_prefix(&self.name, "__Host-")
            && (!self.secure || self.domain.is_some() || self.path != "/")
        {
            return Err(ConfigError::HostPrefix);
        }
        if has_prefix(&self.name, "__Secure-") && !self.secure {
            return Err(ConfigError::SecurePrefix);
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::SameSiteNoneWithoutSecure);
        }
        if self.partitioned && !self.secure {
            return Err(ConfigError::PartitionedWithoutSecure);
        }
        self.render();
        Ok(self)
    }

    /// These attributes with a session's overrides applied.
    pub(crate) fn with_overrides(&self, o: &CookieOptions) -> Result<Self, ConfigError> {
        let mut a = self.clone();
        if let Some(p) = &o.path {
            a.path.clone_from(p);
        }
        if let Some(d) = &o.domain {
            a.domain.clone_from(d);
        }
        a.secure = o.secure.unwrap_or(a.secure);
        a.http_only = o.http_only.unwrap_or(a.http_only);
        a.same_site = o.same_site.unwrap_or(a.same_site);
        a.partitioned = o.partitioned.unwrap_or(a.partitioned);
        a.build()
    }

    fn render(&mut self) {
        self.companion = format!("{}-csrf", self.name);
        let mut s = format!("; Path={}", self.path);
        if let Some(d) = &self.domain {
            s.push_str("; Domain=");
            s.push_str(d);
        }
        if self.secure {
            s.push_str("; Secure");
        }
        if self.http_only {
            s.push_str("; HttpOnly");
        }
        s.push_str("; SameSite=");
        s.push_str(self.same_site.as_str());
        if self.partitioned {
            s.push_str("; Partitioned");
        }
        self.suffix = s;
    }

    /// `Set-Cookie` for a value, with `Max-Age` when the cookie is persistent.
    #[cfg(test)]
    pub(crate) fn set_cookie(&self, value: &str, max_age: Option<u64>) -> String {
        self.set_cookie_with(value.len(), max_age, |s| s.push_str(value))
    }

    /// `Set-Cookie` for a value of `len` bytes that `write` appends, in one
    /// allocation of exactly the header's length (so the header value takes
    /// the buffer over without another).
    pub(crate) fn set_cookie_with(
        &self,
        len: usize,
        max_age: Option<u64>,
        write: impl FnOnce(&mut String),
    ) -> String {
        const MAX_AGE: &str = "; Max-Age=";
        let age_len = max_age.map_or(0, |secs| MAX_AGE.len() + decimal_len(secs));
        let mut s = String::with_capacity(self.name.len() + 1 + len + age_len + self.suffix.len());
        s.push_str(&self.name);
        s.push('=');
        write(&mut s);
        if let Some(secs) = max_age {
            use std::fmt::Write as _;
            s.push_str(MAX_AGE);
            let _ = write!(s, "{secs}");
        }
        s.push_str(&self.suffix);
        s
    }

    /// The name of the session's companion cookie (an anonymous visitor's
    /// CSRF secret): the session cookie's name with `-csrf`, so a `__Host-`
    /// prefix carries over. Rendered with the attributes, not per request.
    pub(crate) fn companion_name(&self) -> &str {
        &self.companion
    }

    /// These attributes under another cookie name.
    pub(crate) fn renamed(&self, name: &str) -> Self {
        let mut a = self.clone();
        a.name = name.to_owned();
        a.companion = format!("{name}-csrf");
        a
    }

    /// `Set-Cookie` that removes the cookie: empty value, `Max-Age=0`, an
    /// `Expires` in the past, and the same name, path, domain and flags.
    pub(crate) fn removal(&self) -> String {
        format!(
            "{}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{}",
            self.name, self.suffix
        )
    }
}

/// `true` when `name` starts with `prefix`, ignoring ASCII case.
pub(crate) fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// The session cookie's name when none is given: `__Host-id` when the cookie
/// can carry that prefix (`Secure`, `Path=/`, no `Domain`), so a sibling
/// subdomain cannot plant a cookie the host takes for its own; `__Secure-id`
/// when it is `Secure` but scoped otherwise; plain `id` without `Secure`.
pub(crate) fn default_name(attrs: &CookieAttrs) -> &'static str {
    match (attrs.secure, attrs.path == "/" && attrs.domain.is_none()) {
        (true, true) => "__Host-id",
        (true, false) => "__Secure-id",
        (false, _) => "id",
    }
}

/// Number of decimal digits of `n`.
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// RFC 6265 cookie-name: an RFC 7230 token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Printable ASCII other than `;`, so the attribute cannot split the header.
fn is_attr_value(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x21..0x7f).contains(&b) && b != b';' && b != b',')
}

#[cfg(test)]
mod tests {
    use super::*;

    // SECURITY B6: the defaults.
    #[test]
    fn defaults_are_safe() {
        let a = CookieAttrs::new("id").build().unwrap();
        assert_eq!(
            a.set_cookie("v", None),
            "id=v; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn set_cookie_is_sized_exactly() {
        let a = CookieAttrs::new("id").build().unwrap();
        for age in [
            None,
            Some(0),
            Some(9),
            Some(10),
            Some(86_400),
            Some(u64::MAX),
        ] {
            let s = a.set_cookie("value", age);
            assert_eq!(s.len(), s.capacity(), "{s}");
        }
        assert_eq!(
            a.set_cookie("v", Some(3600)),
            "id=v; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
    }

    // SECURITY B7: the removal cookie keeps every attribute.
    #[test]
    fn removal_keeps_attributes() {
        let mut a = CookieAttrs::new("sid");
        a.domain = Some("example.com".into());
        a.path = "/app".into();
        let a = a.build().unwrap();
        assert_eq!(
            a.removal(),
            "sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/app; Domain=example.com; Secure; HttpOnly; SameSite=Lax"
        );
    }

    // SECURITY B6: prefix rules are checked when built.
    #[test]
    fn prefix_rules() {
        let mut a = CookieAttrs::new("__Host-id");
        a.domain = Some("example.com".into());
        assert_eq!(a.build().unwrap_err(), ConfigError::HostPrefix);
        let mut a = CookieAttrs::new("__Host-id");
        a.secure = false;
        assert_eq!(a.build().unwrap_err(), ConfigError::HostPrefix);
        let mut a = CookieAttrs::new("__Host-id");
        a.path = "/x".into();
        assert_eq!(a.build().unwrap_err(), ConfigError::HostPrefix);
        let mut a = CookieAttrs::new("__Secure-id");
        a.secure = false;
        assert_eq!(a.build().unwrap_err(), ConfigError::SecurePrefix);
        assert!(CookieAttrs::new("__Host-id").build().is_ok());
        // SECURITY B6: the prefixes are matched ignoring case, as browsers do.
        let mut a = CookieAttrs::new("__host-id");
        a.domain = Some("example.com".into());
        assert_eq!(a.build().unwrap_err(), ConfigError::HostPrefix);
        let mut a = CookieAttrs::new("__SECURE-id");
        a.secure = false;
        assert_eq!(a.build().unwrap_err(), ConfigError::SecurePrefix);
    }

    #[test]
    fn bad_names_and_attributes_are_refused() {
        for name in ["", "a b", "a;b", "a=b", "é", "a,b"] {
            assert_eq!(
                CookieAttrs::new(name).build().unwrap_err(),
                ConfigError::InvalidCookieName,
                "{name:?}"
            );
        }
        let mut a = CookieAttrs::new("id");
        a.path = "/a;Domain=evil".into();
        assert!(a.build().is_err());
        let mut a = CookieAttrs::new("id");
        a.same_site = SameSite::None;
        a.secure = false;
        assert_eq!(
            a.build().unwrap_err(),
            ConfigError::SameSiteNoneWithoutSecure
        );
    }
}
