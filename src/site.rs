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
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        let secure = !(url.scheme() == "http" && loopback);
        Self { origin, secure }
    }

    /// The site of a canonical origin string (`scheme://host[:port]`, as `URL.origin` gives
    /// it), without parsing a URL: the hot path's way.
    pub fn from_origin(origin: &str) -> Self {
        let host = origin.strip_prefix("http://").map(|rest| {
            rest.rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(rest, |(h, _)| h)
        });
        let loopback = matches!(host, Some("localhost" | "127.0.0.1" | "[::1]"));
        Self {
            origin: origin.to_owned(),
            secure: !loopback,
        }
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
        assert!(site("https://127.0.0.1/").secure());
        assert!(site("https://example.com/").secure());
        assert!(site("http://example.com/").secure());
    }

    #[test]
    fn origin_strings_give_the_same_site_as_urls() {
        for raw in [
            "http://127.0.0.1:8787",
            "http://localhost",
            "http://[::1]:8080",
            "https://example.com",
            "http://example.com:8080",
            "https://127.0.0.1",
        ] {
            assert_eq!(Site::from_origin(raw), site(&format!("{raw}/")), "{raw}");
        }
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
