//! Path rules (`PUBLIC_PATHS`, `ROLE_PATHS`) and the gate's decision for one request.

use percent_encoding::percent_decode_str;

use crate::session::token::Session;

/// `/exact` or `/prefix/*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPattern {
    /// Exactly this path.
    Exact(String),
    /// This path and everything below it: `/docs/*` matches `/docs`, `/docs/` and `/docs/a/b`.
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
            return Ok(Self::Prefix(prefix.to_owned()));
        }
        if raw.contains('*') {
            return Err("'*' may only end a pattern, as '/*'");
        }
        Ok(Self::Exact(raw.to_owned()))
    }

    /// Whether the normalized `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => path == p,
            Self::Prefix(p) => {
                path == p || (path.starts_with(p.as_str()) && path[p.len()..].starts_with('/'))
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

/// The path as rules see it: percent-decoded once, `;parameters` cut from every segment (Tomcat
/// and Spring read `/admin;x` and `/a/..;/admin` as `/admin`), `\` read as `/`, dot segments
/// resolved, repeated slashes collapsed; case kept. `None` when the decoded path is not UTF-8 or
/// holds a control character: no rule can be trusted to match such a path, so it is refused.
pub fn normalize_path(raw: &str) -> Option<String> {
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    if decoded.chars().any(char::is_control) {
        return None;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        let segment = segment.split(';').next().unwrap_or_default();
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut path = String::from("/");
    path.push_str(&segments.join("/"));
    let last = decoded.rsplit(['/', '\\']).next().unwrap_or_default();
    if path.len() > 1 && (last.is_empty() || matches!(last.split(';').next(), Some("." | ".."))) {
        path.push('/');
    }
    Some(path)
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
    /// A path no rule can be matched against (bad encoding, control characters): 400.
    BadPath,
}

/// Decides for the raw request `path` (normalized here) and the verified session, if any.
pub fn admit(rules: &GateRules, path: &str, session: Option<&Session>) -> Decision {
    let Some(path) = normalize_path(path) else {
        return Decision::BadPath;
    };
    let required = rules
        .roles
        .iter()
        .find(|(p, _)| p.matches(&path))
        .map(|(_, r)| r);
    // A path with a role rule is never public, whatever PUBLIC_PATHS says.
    if required.is_none() && rules.public.iter().any(|p| p.matches(&path)) {
        return Decision::Public;
    }
    let Some(session) = session else {
        return Decision::NeedSession;
    };
    match required {
        // `admin` may go everywhere; any other role only where it is named.
        Some(role) if session.claims().role != *role && session.claims().role != "admin" => {
            Decision::WrongRole {
                required: role.clone(),
            }
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
            "/public/a/../b",
            "/x/../public/y",
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
            assert_eq!(admit(&rules(), path, None), Decision::NeedSession, "{path}");
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

    #[test]
    fn normalization_rules() {
        for (raw, want) in [
            ("/a//b/./c/../d", Some("/a/b/d")),
            ("/../../x", Some("/x")),
            ("/a/%2e%2e/b/", Some("/b/")),
            // Decoded once only: %252e stays a literal "%2e" segment.
            ("/a/%252e%252e/b", Some("/a/%2e%2e/b")),
            ("/a;jsessionid=1/b", Some("/a/b")),
            ("/a/..;x/b", Some("/b")),
            ("/a\\b", Some("/a/b")),
            ("/a/.", Some("/a/")),
            ("/a/b/..", Some("/a/")),
            ("/A/B", Some("/A/B")),
            ("/caf%C3%A9", Some("/caf\u{e9}")),
            ("/a%0a", None),
            ("/%ff", None),
        ] {
            assert_eq!(normalize_path(raw).as_deref(), want, "{raw}");
        }
    }
}
