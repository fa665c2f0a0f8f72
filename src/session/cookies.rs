//! Cookie names, reading and writing, with the `cookie` crate.

use cookie::{Cookie, SameSite};

use crate::site::Site;

/// Which of Gatehouse's cookies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jar {
    /// The session JWT.
    Session,
    /// The sign-in state (state, PKCE verifier, nonce, callbackUrl), signed, 10 minutes.
    State,
    /// A site's hand-off state (`SITES`: state, callbackUrl), signed, 10 minutes.
    HandOff,
}

impl Jar {
    /// The cookie name on `site`: `__Host-` prefixed except on plain-http loopback.
    pub fn name(self, site: &Site) -> &'static str {
        match (self, site.secure()) {
            (Self::Session, true) => "__Host-gatehouse_session",
            (Self::Session, false) => "gatehouse_session",
            (Self::State, true) => "__Host-gatehouse_state",
            (Self::State, false) => "gatehouse_state",
            (Self::HandOff, true) => "__Host-gatehouse_handoff",
            (Self::HandOff, false) => "gatehouse_handoff",
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
/// `HttpOnly` (no script reads a session), SameSite=Lax (sent on top-level navigations, such as
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
///
/// Every other pair is kept exactly as it was sent (its bytes, in order, joined with `; `): the
/// site's cookies are its own encoding, never decoded or re-encoded here. Pairs are the pieces
/// between `;`, as the `cookie` crate's own `split_parse` cuts them, and the crate names each;
/// a piece it cannot name (no `=`, an empty name) is dropped, since nobody can tell whose it is.
pub fn without_ours(cookie_header: &str, site: &Site) -> Option<String> {
    let ours = [
        Jar::Session.name(site),
        Jar::State.name(site),
        Jar::HandOff.name(site),
    ];
    let kept: Vec<&str> = cookie_header
        .split(';')
        .map(str::trim_ascii)
        .filter(|pair| Cookie::parse(*pair).is_ok_and(|c| !ours.contains(&c.name())))
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

    #[test]
    fn other_cookies_reach_the_upstream_byte_for_byte() {
        let site = https();
        for (header, want) in [
            // Percent signs, `=` padding and quotes are the site's own encoding: never re-encoded.
            ("sid=s%3Aabc", Some("sid=s%3Aabc")),
            ("tok=YWJj==; __Host-gatehouse_session=t", Some("tok=YWJj==")),
            (r#"q="a b"; n=%E2%82%AC"#, Some(r#"q="a b"; n=%E2%82%AC"#)),
            (
                "pref=café; __Host-gatehouse_state=s; 名=値",
                Some("pref=café; 名=値"),
            ),
            ("x=a=b=c", Some("x=a=b=c")),
            ("e=", Some("e=")),
            // Order is kept; pairs are joined with `; ` whatever separated them.
            (
                "z=1;__Host-gatehouse_session=t;a=2;  m=3",
                Some("z=1; a=2; m=3"),
            ),
            // Empty pieces and pairs without a name are not cookies.
            (";; a=1 ;", Some("a=1")),
            ("=x; a=1; novalue", Some("a=1")),
            ("__Host-gatehouse_session=t; __Host-gatehouse_state=s", None),
            ("", None),
        ] {
            assert_eq!(without_ours(header, &site).as_deref(), want, "{header}");
        }
    }

    #[test]
    fn our_cookies_are_removed_however_they_are_spaced() {
        let site = https();
        for header in [
            "a=1; __Host-gatehouse_session=tok",
            "a=1;__Host-gatehouse_session=tok",
            "a=1;  __Host-gatehouse_session = tok ",
            "__Host-gatehouse_session=tok;a=1",
            "a=1; __Host-gatehouse_session=tok; __Host-gatehouse_session=two",
        ] {
            let kept = without_ours(header, &site);
            assert_eq!(kept.as_deref(), Some("a=1"), "{header}");
        }
        // Only the exact names are ours: a cookie named like ours on another site stays.
        assert_eq!(
            without_ours("gatehouse_session=x; __Host-gatehouse_sessions=y", &site).as_deref(),
            Some("gatehouse_session=x; __Host-gatehouse_sessions=y")
        );
        assert_eq!(
            without_ours("gatehouse_session=x; a=1", &local()).as_deref(),
            Some("a=1")
        );
    }
}
