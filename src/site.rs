//! The public origin Gatehouse answers for: `AUTH_URL`, or else the request's own origin.

use url::Url;

/// The site's origin and what follows from it for cookies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    origin: String,
    secure: bool,
}

impl Site {
    /// The site of `url` (only its scheme, host and port count).
    pub fn from_url(url: &Url) -> Self {
        let origin = url.origin().ascii_serialization();
        // Plain http is only tolerated on loopback (local development); everywhere else the
        // cookies keep `Secure` and the `__Host-` prefix, which browsers refuse over http.
        // Loopback is what the configuration accepts as such (`SITES`, `AUTH_URL`).
        let secure = !(url.scheme() == "http" && is_loopback(url));
        Self { origin, secure }
    }

    /// `https://example.com` (no trailing slash).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether cookies get `Secure` and the `__Host-` prefix.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// An absolute URL on this site for `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }
}

/// Whether `url`'s host is this machine: `localhost`, 127.0.0.0/8 or `[::1]`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(raw: &str) -> Site {
        Site::from_url(&Url::parse(raw).unwrap())
    }

    #[test]
    fn cookies_are_secure_everywhere_but_plain_http_on_loopback() {
        assert!(!site("http://127.0.0.1:8787/x").secure());
        assert!(!site("http://localhost:8787/").secure());
        // Every loopback address the configuration accepts over http, not only 127.0.0.1.
        assert!(!site("http://127.0.0.2:8787/").secure());
        assert!(!site("http://[::1]:8787/").secure());
        assert!(site("https://127.0.0.1/").secure());
        assert!(site("https://example.com/").secure());
        assert!(site("http://example.com/").secure());
    }

    #[test]
    fn origin_has_no_path() {
        assert_eq!(
            site("https://example.com/a/b?c").origin(),
            "https://example.com"
        );
        assert_eq!(
            site("http://127.0.0.1:8787/").origin(),
            "http://127.0.0.1:8787"
        );
    }
}
