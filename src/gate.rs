//! Path rules (`PUBLIC_PATHS`, `ROLE_PATHS`) and the gate's decision for one request.
//!
//! The rules decide on the path the site will read, never on a reinterpretation of it: a path
//! that servers read in different ways (see [`read_path`]) is refused, and the names under which
//! Workers Static Assets serves one file (see [`page`]) are one path for the rules.

use percent_encoding::percent_decode_str;

use crate::session::token::Session;

/// `/exact` or `/prefix/*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPattern {
    /// Exactly this page (its [`page`] key).
    Exact(String),
    /// This page and everything below it: `/docs/*` matches `/docs`, `/docs/`, `/docs.html`,
    /// `/docs/index.html` and `/docs/a/b`.
    Prefix(String),
}

impl PathPattern {
    /// Parses one pattern of a comma list.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if !raw.starts_with('/') {
            return Err("a pattern starts with '/'");
        }
        if let Some(prefix) = raw.strip_suffix("/*") {
            if prefix.contains('*') {
                return Err("'*' may only end a pattern, as '/*'");
            }
            if prefix.is_empty() {
                return Ok(Self::Prefix(String::new()));
            }
            return Ok(Self::Prefix(page(prefix).to_owned()));
        }
        if raw.contains('*') {
            return Err("'*' may only end a pattern, as '/*'");
        }
        Ok(Self::Exact(page(raw).to_owned()))
    }

    /// Whether the page key `key` (see [`page`]) matches.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            Self::Exact(p) => key == p,
            Self::Prefix(p) if p == "/" => true,
            Self::Prefix(p) => {
                key == p || (key.starts_with(p.as_str()) && key[p.len()..].starts_with('/'))
            }
        }
    }
}

/// The configured path rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GateRules {
    /// Paths that need no session.
    pub public: Vec<PathPattern>,
    /// Paths that need a role; first match wins.
    pub roles: Vec<(PathPattern, String)>,
}

/// The path as the site will read it: `raw` (as the runtime's URL parser left it, so literal
/// `.`/`..` segments are already resolved) percent-decoded once, or `None` when servers would
/// read it in different ways. Security decision: rather than guess how the origin reads a path,
/// the gate refuses (400) every path whose reading depends on the reader:
/// - an encoded `/` or `\` (`%2F`, `%5C`) or a literal `\`: one segment to some, two to others;
/// - `;` (path parameters): Tomcat and Spring cut `/a;x` to `/a` and `..;` to `..`, prefix
///   routers (nginx `location`, Express, Pages Functions, `_redirects`) keep it;
/// - a `.` or `..` segment left after decoding: resolved by some servers, not by others;
/// - an empty segment (`//`, except a trailing `/`): merged by some servers, not by others;
/// - a `%XX` left after decoding once: a second decode (some stacks do one) reads another path;
/// - a decoded path that is not UTF-8 or holds a control character.
///
/// So the path the rules decide on and the path the site receives are the same segments.
pub fn read_path(raw: &str) -> Option<String> {
    let rest = raw.strip_prefix('/')?;
    let count = rest.split('/').count();
    for (i, segment) in rest.split('/').enumerate() {
        let decoded = percent_decode_str(segment).decode_utf8().ok()?;
        let ambiguous = (decoded.is_empty() && i + 1 < count)
            || decoded == "."
            || decoded == ".."
            || decoded.contains(['/', '\\', ';'])
            || decoded.chars().any(char::is_control)
            || has_escape(&decoded);
        if ambiguous {
            return None;
        }
    }
    Some(percent_decode_str(raw).decode_utf8().ok()?.into_owned())
}

/// Whether `s` still holds a percent escape (`%` and two hex digits).
fn has_escape(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// The page a decoded path names, the key the rules match: Workers Static Assets serves
/// `a.html` at `/a`, `/a.html` (redirected) and, with some `html_handling` settings, `/a/`;
/// and `a/index.html` at `/a/`, `/a/index.html`, `/a/index` and, with some settings, `/a`.
/// Security decision: all of these are one page, `/a`, so a rule written for one spelling
/// holds for every spelling that may serve the same file. Case is kept (asset names are
/// case-sensitive).
pub fn page(path: &str) -> &str {
    let mut p = path;
    if p.len() > 1 {
        p = p.strip_suffix('/').unwrap_or(p);
    }
    if let Some(dir) = p.strip_suffix("/index.html") {
        p = dir;
    } else if let Some(stem) = p
        .strip_suffix(".html")
        .filter(|s| !s.ends_with('/') && !s.is_empty())
    {
        p = stem;
    }
    if let Some(dir) = p.strip_suffix("/index") {
        p = dir;
    }
    if p.is_empty() { "/" } else { p }
}

/// What the gate does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A public path: pass without a session.
    Public,
    /// A session that may see this path.
    Admit,
    /// No (valid) session.
    NeedSession,
    /// A session without the role this path needs.
    WrongRole {
        /// The role the path needs.
        required: String,
    },
    /// A path that servers read in different ways, or cannot be read at all: 400.
    BadPath,
}

/// What a page needs, by the rules alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// Nothing: a public page.
    Public,
    /// A session.
    Session,
    /// A session with this role (or `admin`).
    Role(String),
}

impl Requirement {
    /// Whether everyone admitted here is also admitted to a page that needs `other`: `Public`
    /// covers only `Public`, `Session` covers `Public` and `Session`, a role covers those and
    /// itself.
    pub fn at_least(&self, other: &Requirement) -> bool {
        match (self, other) {
            (Self::Role(a), Self::Role(b)) => a == b,
            (_, Self::Public) | (Self::Session | Self::Role(_), Self::Session) => true,
            (Self::Public, _) | (Self::Session, Self::Role(_)) => false,
        }
    }
}

impl GateRules {
    /// What the page of decoded `path` needs (see [`page`]).
    pub fn requirement(&self, path: &str) -> Requirement {
        let key = page(path);
        // A path with a role rule is never public, whatever PUBLIC_PATHS says.
        if let Some((_, role)) = self.roles.iter().find(|(p, _)| p.matches(key)) {
            return Requirement::Role(role.clone());
        }
        if self.public.iter().any(|p| p.matches(key)) {
            Requirement::Public
        } else {
            Requirement::Session
        }
    }
}

/// Decides for the request's `path` (as the runtime's URL parser gives it) and the verified
/// session, if any. The hot path and the full route both decide here.
pub fn admit(rules: &GateRules, path: &str, session: Option<&Session>) -> Decision {
    let Some(path) = read_path(path) else {
        return Decision::BadPath;
    };
    let required = match rules.requirement(&path) {
        Requirement::Public => return Decision::Public,
        Requirement::Session => None,
        Requirement::Role(role) => Some(role),
    };
    let Some(session) = session else {
        return Decision::NeedSession;
    };
    match required {
        // `admin` may go everywhere; any other role only where it is named.
        Some(role) if session.claims().role != role && session.claims().role != "admin" => {
            Decision::WrongRole { required: role }
        }
        _ => Decision::Admit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::keys::KeySet;
    use crate::session::token::{self, SessionClaims, UntrustedSession, Verified};
    use crate::time::UnixTime;

    fn rules() -> GateRules {
        GateRules {
            public: vec![
                PathPattern::parse("/public/*").unwrap(),
                PathPattern::parse("/favicon.ico").unwrap(),
            ],
            roles: vec![(PathPattern::parse("/admin/*").unwrap(), "admin".into())],
        }
    }

    fn session(role: &str) -> Session {
        let keys = KeySet::from_jwk_set(
            r#"{"keys":[{"kty":"oct","kid":"k","k":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"}]}"#,
        )
        .unwrap();
        let claims = SessionClaims {
            iss: "https://s.test".into(),
            aud: "https://s.test".into(),
            sub: "u".into(),
            sid: "s".into(),
            email: "a@example.com".into(),
            name: None,
            picture: None,
            role: role.into(),
            sxp: 2_000_000_000,
        };
        let t = token::issue(&keys, claims, UnixTime(1_800_000_000), 300).unwrap();
        match token::verify(
            &keys,
            UntrustedSession(&t),
            "https://s.test",
            UnixTime(1_800_000_000),
        ) {
            Ok(Verified::Current(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn public_paths_pass_without_a_session() {
        for path in [
            "/public",
            "/public/",
            "/public/a.html",
            "/favicon.ico",
            "/public/a%20b.html",
        ] {
            assert_eq!(admit(&rules(), path, None), Decision::Public, "{path}");
        }
    }

    /// Spellings of `/admin/...` (role `admin`) and of protected paths that some server might
    /// read differently from the rules; none may pass as public, none may reach an admin path
    /// without the role.
    const BYPASSES: &[&str] = &[
        "/admin",
        "/admin/",
        "/admin/.",
        "/admin/./",
        "/admin//",
        "//admin",
        "//admin/x",
        "///admin/x",
        "/./admin/x",
        "/admin;x",
        "/admin;x/y",
        "/admin;/y",
        "/public/../admin/x",
        "/public/..;/admin/x",
        "/public/%2e%2e/admin/x",
        "/public/%2E%2E/admin/x",
        "/public/.%2e/admin/x",
        "/public/%2e./admin/x",
        "/public/..%2fadmin/x",
        "/public/..%2Fadmin/x",
        "/public/..%5cadmin/x",
        "/public\\..\\admin\\x",
        "/public/%2e%2e%2fadmin%2fx",
        "/%61dmin/x",
        "/%2fadmin/x",
        "/public/../../admin/x",
        "/favicon.ico/../admin/x",
        "/public/x/../../admin/x",
        "/admin/x/..",
        "/admin%2f",
        "/admin%3bx/y",
        "/public/%2e%2e;/admin",
    ];

    #[test]
    fn no_spelling_of_an_admin_path_passes_as_public_or_without_the_role() {
        assert!(BYPASSES.len() >= 30);
        let user = session("user");
        let admin = session("admin");
        for path in BYPASSES {
            let anonymous = admit(&rules(), path, None);
            assert!(
                matches!(anonymous, Decision::NeedSession | Decision::BadPath),
                "{path}: {anonymous:?}"
            );
            let as_user = admit(&rules(), path, Some(&user));
            assert!(
                matches!(as_user, Decision::WrongRole { .. } | Decision::BadPath),
                "{path}: a user got {as_user:?}"
            );
            let as_admin = admit(&rules(), path, Some(&admin));
            assert!(
                matches!(as_admin, Decision::Admit | Decision::BadPath),
                "{path}: {as_admin:?}"
            );
        }
    }

    #[test]
    fn no_spelling_of_a_protected_path_is_public() {
        for path in [
            "/",
            "/docs/",
            "/publicity",
            "/public/../docs/",
            "/public/%2e%2e/docs/",
            "/public/..%2fdocs",
            "/public/..;/docs",
            "/public\\..\\docs",
            "//docs",
            "/favicon.ico/../docs",
            "/favicon.ico;x/../docs",
            "/PUBLIC/x",
        ] {
            let d = admit(&rules(), path, None);
            assert!(
                matches!(d, Decision::NeedSession | Decision::BadPath),
                "{path}: {d:?}"
            );
        }
    }

    #[test]
    fn undecodable_paths_are_refused_for_everyone() {
        for path in [
            "/public%00/x",
            "/%ff/public/",
            "/public/%0a",
            "/admin%00/x",
            "/public/%c0%ae%c0%ae/admin",
        ] {
            assert_eq!(
                admit(&rules(), path, Some(&session("admin"))),
                Decision::BadPath,
                "{path}"
            );
        }
    }

    #[test]
    fn patterns_must_be_paths() {
        assert!(PathPattern::parse("docs").is_err());
        assert!(PathPattern::parse("/a*b").is_err());
        assert!(PathPattern::parse("/*/x").is_err());
        assert_eq!(
            PathPattern::parse("/a/*"),
            Ok(PathPattern::Prefix("/a".into()))
        );
        assert!(!PathPattern::parse("/a/*").unwrap().matches("/ab"));
    }

    /// The spellings of issue 13: each is judged public or admin-free by a reader that cuts
    /// `;` or decodes `%2F`/`%5C`, while a prefix-routing origin reads `/private/...` or
    /// `/admin/...`. None is decided at all.
    #[test]
    fn paths_read_differently_by_different_servers_are_refused() {
        let rules = GateRules {
            public: vec![
                PathPattern::parse("/public/*").unwrap(),
                PathPattern::parse("/docs/*").unwrap(),
            ],
            roles: vec![(PathPattern::parse("/admin/*").unwrap(), "admin".into())],
        };
        let user = session("user");
        for path in [
            "/private/..;/public/x",
            "/private/..%2Fpublic%2Fx",
            "/private/..%2fpublic%2fx",
            "/private/..%5Cpublic%5Cx",
            "/private/..%5cpublic%5cx",
            "/admin/..;/docs/x",
            "/admin/.;/x",
            "/admin/%2e%2e;/docs/x",
            "/public;x/y",
            "/public%3bx/y",
            "/public%2Fx",
            "/public/x%5C..%5C..%5Cadmin",
            "/a//public/x",
            "//public/x",
            "/public/%252e%252e/admin/x",
            "/public/%2541",
            "/public\\x",
        ] {
            assert_eq!(admit(&rules, path, None), Decision::BadPath, "{path}");
            assert_eq!(
                admit(&rules, path, Some(&user)),
                Decision::BadPath,
                "{path}"
            );
        }
    }

    #[test]
    fn reading_decodes_once_and_keeps_everything_else() {
        for (raw, want) in [
            ("/", Some("/")),
            ("/a/b/", Some("/a/b/")),
            ("/caf%C3%A9", Some("/caf\u{e9}")),
            ("/a%20b", Some("/a b")),
            ("/%61dmin/x", Some("/admin/x")),
            ("/A/B", Some("/A/B")),
            ("/100%25", Some("/100%")),
            ("/a/.x/..y", Some("/a/.x/..y")),
            ("/a;b", None),
            ("/a//b", None),
            ("/a/./b", None),
            ("/a/../b", None),
            ("/a/%2e%2e/b", None),
            ("/a/%252e%252e/b", None),
            ("/a%0a", None),
            ("/%ff", None),
            ("a", None),
        ] {
            assert_eq!(read_path(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn the_names_of_one_static_asset_are_one_page() {
        for (path, want) in [
            ("/", "/"),
            ("/index.html", "/"),
            ("/index", "/"),
            ("/finance/q3", "/finance/q3"),
            ("/finance/q3/", "/finance/q3"),
            ("/finance/q3.html", "/finance/q3"),
            ("/finance/q3/index.html", "/finance/q3"),
            ("/finance/q3/index", "/finance/q3"),
            ("/reports/", "/reports"),
            ("/reports/index.html", "/reports"),
            ("/docs.html", "/docs"),
            ("/style.css", "/style.css"),
            ("/a/.html", "/a/.html"),
            ("/a.HTML", "/a.HTML"),
        ] {
            assert_eq!(page(path), want, "{path}");
        }
    }

    /// Issue 13, item 2: a rule written for one name of a file holds for all its names.
    #[test]
    fn a_rule_on_one_name_of_a_file_holds_for_every_name() {
        let rules = GateRules {
            public: vec![PathPattern::parse("/*").unwrap()],
            roles: vec![
                (
                    PathPattern::parse("/finance/q3.html").unwrap(),
                    "finance".into(),
                ),
                (
                    PathPattern::parse("/reports/index.html").unwrap(),
                    "finance".into(),
                ),
                (PathPattern::parse("/docs/*").unwrap(), "finance".into()),
            ],
        };
        let user = session("user");
        for path in [
            "/finance/q3",
            "/finance/q3/",
            "/finance/q3.html",
            "/finance/q3/index.html",
            "/reports",
            "/reports/",
            "/reports/index",
            "/reports/index.html",
            "/docs",
            "/docs.html",
            "/docs/",
            "/docs/index.html",
            "/docs/a.html",
        ] {
            assert_eq!(admit(&rules, path, None), Decision::NeedSession, "{path}");
            assert!(
                matches!(admit(&rules, path, Some(&user)), Decision::WrongRole { .. }),
                "{path}"
            );
        }
        assert_eq!(admit(&rules, "/finance/q4.html", None), Decision::Public);
        assert_eq!(admit(&rules, "/docs.json", None), Decision::Public);
    }

    #[test]
    fn patterns_are_kept_as_page_keys() {
        assert_eq!(
            PathPattern::parse("/a/index.html"),
            Ok(PathPattern::Exact("/a".into()))
        );
        assert_eq!(
            PathPattern::parse("/a.html/*"),
            Ok(PathPattern::Prefix("/a".into()))
        );
        assert_eq!(
            PathPattern::parse("/*"),
            Ok(PathPattern::Prefix(String::new()))
        );
        assert!(PathPattern::parse("/*").unwrap().matches("/"));
        assert!(PathPattern::parse("/*").unwrap().matches("/x/y"));
    }
}
