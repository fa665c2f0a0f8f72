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

/// The path as rules see it: percent-decoded once, dot segments resolved, repeated slashes
/// collapsed; case kept. `None` when the decoded path is not UTF-8 or holds a control
/// character (no rule can be trusted to match it, so it is treated as protected).
pub fn normalize_path(raw: &str) -> Option<String> {
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    if decoded.chars().any(char::is_control) {
        return None;
    }
    let mut segments: Vec<&str> = Vec::new();
    // `\` is a separator for browsers and some servers: treat it as one.
    for segment in decoded.split(['/', '\\']) {
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
    if decoded.ends_with('/') && path.len() > 1 {
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
}

/// Decides for the raw request `path` (normalized here) and the verified session, if any.
pub fn admit(rules: &GateRules, path: &str, session: Option<&Session>) -> Decision {
    let Some(path) = normalize_path(path) else {
        return if session.is_some() {
            Decision::Admit
        } else {
            Decision::NeedSession
        };
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

    fn rules() -> GateRules {
        GateRules {
            public: vec![
                PathPattern::parse("/public/*").unwrap(),
                PathPattern::parse("/favicon.ico").unwrap(),
            ],
            roles: vec![(PathPattern::parse("/admin/*").unwrap(), "admin".into())],
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
        ] {
            assert_eq!(admit(&rules(), path, None), Decision::Public, "{path}");
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
            "/public/%2E%2E/docs",
            "/public/..%2fdocs",
            "/public/..%5cdocs",
            "/public\\..\\docs",
            "//docs",
            "/favicon.ico/../docs",
            "/PUBLIC/x",
            "/public%00/x/../../docs",
            "/%ff/public/",
        ] {
            assert_eq!(admit(&rules(), path, None), Decision::NeedSession, "{path}");
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
    }

    #[test]
    fn normalization_resolves_dots_and_slashes_once() {
        assert_eq!(normalize_path("/a//b/./c/../d").as_deref(), Some("/a/b/d"));
        assert_eq!(normalize_path("/../../x").as_deref(), Some("/x"));
        assert_eq!(normalize_path("/a/%2e%2e/b/").as_deref(), Some("/b/"));
        // Decoded once only: %252e stays a literal "%2e" segment.
        assert_eq!(
            normalize_path("/a/%252e%252e/b").as_deref(),
            Some("/a/%2e%2e/b")
        );
        assert_eq!(normalize_path("/a%0a"), None);
    }
}
