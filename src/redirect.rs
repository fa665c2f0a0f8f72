//! `callbackUrl`: where to go after sign-in or sign-out. It may only lead back to this site.

use url::Url;

use crate::site::Site;

/// Longer values are replaced by `/`: they would only bloat the state cookie.
const MAX_LEN: usize = 2048;

/// A redirect target on this site: always a path starting with a single `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackUrl(String);

impl CallbackUrl {
    /// The site's root.
    pub fn root() -> Self {
        Self(String::from("/"))
    }

    /// Validates `raw`; anything that is not this site is replaced by `/`, never followed.
    ///
    /// Accepted: a path starting with a single `/`, or an absolute URL of the site's own
    /// origin. The value is parsed the way a browser would (WHATWG URL: tabs and newlines
    /// removed, `\` read as `/`) and the result must still be on this origin; what is kept is
    /// the parsed path and query, so the `Location` header never carries the raw input.
    pub fn parse(raw: &str, site: &Site) -> Self {
        Self::try_parse(raw, site).unwrap_or_else(Self::root)
    }

    fn try_parse(raw: &str, site: &Site) -> Option<Self> {
        if raw.len() > MAX_LEN {
            return None;
        }
        let base = Url::parse(&site.url("/")).ok()?;
        let is_path = raw.starts_with('/');
        let is_absolute = Url::parse(raw).is_ok();
        if !is_path && !is_absolute {
            return None;
        }
        let resolved = base.join(raw).ok()?;
        if resolved.origin() != base.origin()
            || resolved.username() != ""
            || resolved.password().is_some()
        {
            return None;
        }
        let path = resolved.path();
        // `//host` in a Location header is another site (a scheme-relative URL).
        if !path.starts_with('/') || path.starts_with("//") {
            return None;
        }
        let mut target = path.to_owned();
        if let Some(query) = resolved.query() {
            target.push('?');
            target.push_str(query);
        }
        if let Some(fragment) = resolved.fragment() {
            target.push('#');
            target.push_str(fragment);
        }
        Some(Self(target))
    }

    /// The path (and query) to redirect to.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site::from_url(&Url::parse("https://site.test/").unwrap())
    }

    #[test]
    fn callback_url_never_leads_off_site() {
        for raw in [
            "//evil.test",
            "//evil.test/path",
            "/\\evil.test",
            "\\\\evil.test",
            "/\t/evil.test",
            "/\n/evil.test",
            "/\r\n/evil.test",
            " //evil.test",
            "https://evil.test/",
            "http://site.test/",
            "https://site.test.evil.test/",
            "https://site.test@evil.test/",
            "https://evil.test#@site.test/",
            "https://user:pass@site.test/",
            "https:evil.test",
            "https:/evil.test",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "evil.test",
            "",
            "/./\\evil.test",
            "/.//evil.test",
            "/%2e//evil.test",
            "///evil.test",
            "https://site.test:8443/",
        ] {
            let got = CallbackUrl::parse(raw, &site());
            // Whatever a browser makes of the Location header, it stays on this site.
            let followed = Url::parse("https://site.test/page")
                .unwrap()
                .join(got.as_str())
                .unwrap();
            assert_eq!(
                followed.origin(),
                Url::parse("https://site.test/").unwrap().origin(),
                "{raw:?} gave {got:?}"
            );
            assert!(
                got.as_str().starts_with('/') && !got.as_str().starts_with("//"),
                "{raw:?} gave {got:?}"
            );
        }
    }

    #[test]
    fn foreign_and_scheme_relative_targets_become_root() {
        for raw in [
            "//evil.test",
            "/\\evil.test",
            "/\t/evil.test",
            "https://evil.test/",
            "https://site.test@evil.test/",
            "javascript:alert(1)",
            "evil.test",
            "/.//evil.test",
            "http://site.test/docs",
        ] {
            assert_eq!(CallbackUrl::parse(raw, &site()).as_str(), "/", "{raw:?}");
        }
    }

    #[test]
    fn same_site_targets_are_kept_as_paths() {
        for (raw, want) in [
            ("/", "/"),
            ("/docs/", "/docs/"),
            ("/docs/?q=1&r=2", "/docs/?q=1&r=2"),
            ("/docs/#top", "/docs/#top"),
            ("https://site.test/docs/?q=1", "/docs/?q=1"),
            ("/a/../b", "/b"),
            ("/caf\u{e9}", "/caf%C3%A9"),
        ] {
            assert_eq!(CallbackUrl::parse(raw, &site()).as_str(), want, "{raw:?}");
        }
    }

    #[test]
    fn overlong_targets_become_root() {
        let raw = format!("/{}", "a".repeat(MAX_LEN));
        assert_eq!(CallbackUrl::parse(&raw, &site()).as_str(), "/");
    }
}
