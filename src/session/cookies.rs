//! Cookie names, reading and writing, with the `cookie` crate.

use cookie::{Cookie, SameSite};

use crate::site::Site;

/// Which of Gatehouse's two cookies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jar {
    /// The session JWT.
    Session,
    /// The sign-in state (state, PKCE verifier, nonce, callbackUrl), signed, 10 minutes.
    State,
}

impl Jar {
    /// The cookie name on `site`: `__Host-` prefixed except on plain-http loopback.
    pub fn name(self, site: &Site) -> &'static str {
        match (self, site.secure()) {
            (Self::Session, true) => "__Host-gatehouse_session",
            (Self::Session, false) => "gatehouse_session",
            (Self::State, true) => "__Host-gatehouse_state",
            (Self::State, false) => "gatehouse_state",
        }
    }
}

/// The value of cookie `jar` in a `Cookie` request header, if present. Unparsable pairs are
/// skipped, never an error: a visitor's other cookies are not Gatehouse's business.
pub fn read<'h>(cookie_header: &'h str, jar: Jar, site: &Site) -> Option<&'h str> {
    let name = jar.name(site);
    Cookie::split_parse(cookie_header)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value for `jar` holding `value` for `max_age` seconds.
///
/// HttpOnly (no script reads a session), SameSite=Lax (sent on top-level navigations, such as
/// the provider's redirect back, but not on cross-site subrequests or POSTs), Path=/ and no
/// Domain (required by `__Host-`), Secure except on plain-http loopback.
pub fn set(jar: Jar, site: &Site, value: &str, max_age: i64) -> String {
    Cookie::build((jar.name(site), value))
        .http_only(true)
        .secure(site.secure())
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age.max(0)))
        .build()
        .encoded()
        .to_string()
}

/// A `Set-Cookie` value that removes `jar`.
pub fn clear(jar: Jar, site: &Site) -> String {
    set(jar, site, "", 0)
}

/// The `Cookie` header without Gatehouse's cookies (what an upstream may see), or `None` when
/// nothing is left.
pub fn without_ours(cookie_header: &str, site: &Site) -> Option<String> {
    let ours = [Jar::Session.name(site), Jar::State.name(site)];
    let kept: Vec<String> = Cookie::split_parse(cookie_header)
        .filter_map(Result::ok)
        .filter(|c| !ours.contains(&c.name()))
        .map(|c| c.stripped().encoded().to_string())
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    fn https() -> Site {
        Site::from_url(&Url::parse("https://example.com/").unwrap())
    }

    fn local() -> Site {
        Site::from_url(&Url::parse("http://127.0.0.1:8787/").unwrap())
    }

    #[test]
    fn session_cookie_has_the_designed_attributes() {
        let c = set(Jar::Session, &https(), "a.b.c", 600);
        assert!(c.starts_with("__Host-gatehouse_session=a.b.c"), "{c}");
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=600",
        ] {
            assert!(c.split("; ").any(|a| a == attr), "{attr} missing from {c}");
        }
        assert!(!c.contains("Domain"), "{c}");
    }

    #[test]
    fn loopback_http_cookies_drop_prefix_and_secure() {
        let c = set(Jar::State, &local(), "x", 600);
        assert!(c.starts_with("gatehouse_state=x"), "{c}");
        assert!(!c.contains("Secure"), "{c}");
    }

    #[test]
    fn clearing_sets_max_age_zero() {
        let c = clear(Jar::Session, &https());
        assert!(c.starts_with("__Host-gatehouse_session=;"), "{c}");
        assert!(c.contains("Max-Age=0"), "{c}");
    }

    #[test]
    fn reading_finds_only_the_exact_name() {
        let site = https();
        let header = "a=1; gatehouse_session=nope; __Host-gatehouse_session=tok; b=2";
        assert_eq!(read(header, Jar::Session, &site), Some("tok"));
        assert_eq!(read("gatehouse_session=nope", Jar::Session, &site), None);
        assert_eq!(read("__Host-gatehouse_session=", Jar::Session, &site), None);
        assert_eq!(
            read(";;; =;%%%; __Host-gatehouse_session=t", Jar::Session, &site),
            Some("t")
        );
        assert_eq!(read("", Jar::Session, &site), None);
    }

    #[test]
    fn upstream_cookie_header_loses_only_our_cookies() {
        let site = https();
        let header = "a=1; __Host-gatehouse_session=tok; __Host-gatehouse_state=s; b=2";
        assert_eq!(without_ours(header, &site).as_deref(), Some("a=1; b=2"));
        assert_eq!(without_ours("__Host-gatehouse_session=tok", &site), None);
    }
}
