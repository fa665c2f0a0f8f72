//! Configuration from `[vars]` and secrets, parsed and validated once per isolate. Every
//! problem is reported at once, each naming its variable; no message contains a secret.

use url::Url;

use crate::gate::{GateRules, PathPattern};
use crate::redacted::Redacted;
use crate::session::keys::KeySet;
use crate::site::{Site, is_loopback};

/// One problem with one variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// What is wrong, without the value when the value is secret.
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.var, self.problem)
    }
}

/// Validated configuration.
#[derive(Debug)]
pub struct Config {
    /// `GOOGLE_CLIENT_ID`.
    pub client_id: String,
    /// `GOOGLE_CLIENT_SECRET`.
    pub client_secret: Redacted<String>,
    /// `SESSION_KEYS`.
    pub keys: KeySet,
    /// `AUTH_URL`, if set: the public origin; otherwise each request's origin.
    pub auth_url: Option<Url>,
    /// Accepted `iss` values of ID tokens.
    pub issuers: Vec<String>,
    /// `GOOGLE_AUTHORIZATION_URL`.
    pub authorization_url: Url,
    /// `GOOGLE_TOKEN_URL`.
    pub token_url: Url,
    /// `GOOGLE_JWKS_URL`.
    pub jwks_url: Url,
    /// `ALLOWED_EMAIL_DOMAINS`, lowercase.
    pub allowed_domains: Vec<String>,
    /// `ALLOWED_EMAILS`, lowercase.
    pub allowed_emails: Vec<String>,
    /// `ADMIN_EMAILS`, lowercase.
    pub admin_emails: Vec<String>,
    /// `PUBLIC_PATHS` and `ROLE_PATHS`: the rules of every site (with `SITES`, the rules
    /// written without an origin, which apply to every site).
    pub gate: GateRules,
    /// `SITES`: the site origins this deployment serves, each with its own rules (its own
    /// `PUBLIC_PATHS` and `ROLE_PATHS` entries first, then those of every site) and maybe its own
    /// upstream. Empty: one site, `AUTH_URL` or else each request's origin (docs/sites.md).
    pub sites: Vec<SiteRules>,
    /// `UPSTREAM_URL`.
    pub upstream_url: Option<Url>,
    /// `SESSION_MAX_AGE`, seconds.
    pub session_max_age: i64,
    /// `SESSION_CHECK_INTERVAL`, seconds.
    pub session_check_interval: i64,
    /// `LAST_SEEN_INTERVAL`, seconds: a session's `last_seen_at` is written at most once per
    /// this period (docs/scale.md).
    pub last_seen_interval: i64,
    /// `LOG_D1_QUERIES`: one log line per D1 statement (what it is for, never its values), to
    /// count what a deployment asks of D1.
    pub log_d1_queries: bool,
    /// `SITE_NAME`.
    pub site_name: Option<String>,
    /// `UPSTREAM_TIMEOUT`, seconds: how long `UPSTREAM_URL` may take to start answering
    /// before the visitor gets a 504 page.
    pub upstream_timeout: i64,
    /// `RISC_CONFIGURATION_URL` when `RISC_ENABLED` is `true`: the receiver of Google's
    /// security events (`POST /auth/risc`) is on, and finds its issuer and keys here.
    pub risc: Option<Url>,
    /// `AUDIT_RETENTION_DAYS`: audit log rows older than this many days are pruned by the
    /// scheduled handler (`crate::prune`).
    pub audit_retention_days: i64,
}

const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// `AUDIT_RETENTION_DAYS` when unset: a year of admin actions.
const DEFAULT_AUDIT_RETENTION_DAYS: i64 = 365;
/// The longest `AUDIT_RETENTION_DAYS` accepted (a century): far beyond any need, and the cut-off
/// time stays a plain number.
const MAX_AUDIT_RETENTION_DAYS: i64 = 36_500;

impl Config {
    /// Reads every variable through `get` (vars and secrets alike) and validates them all.
    #[expect(
        clippy::too_many_lines,
        reason = "one variable after another, each validated where it is read"
    )]
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut err =
            |var: &'static str, problem: String| errors.push(ConfigError { var, problem });
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let client_id = get("GOOGLE_CLIENT_ID");
        if client_id.is_none() {
            err(
                "GOOGLE_CLIENT_ID",
                "is required (the OAuth client id)".into(),
            );
        }
        let client_secret = get("GOOGLE_CLIENT_SECRET");
        if client_secret.is_none() {
            err(
                "GOOGLE_CLIENT_SECRET",
                "is required (a secret: `wrangler secret put GOOGLE_CLIENT_SECRET`)".into(),
            );
        }
        let keys = match get("SESSION_KEYS") {
            None => {
                err(
                    "SESSION_KEYS",
                    "is required (a JWK Set; `make keys` prints one)".into(),
                );
                None
            }
            Some(json) => match KeySet::from_jwk_set(&json) {
                Ok(keys) => Some(keys),
                Err(problems) => {
                    for p in problems {
                        err("SESSION_KEYS", p);
                    }
                    None
                }
            },
        };
        let auth_url = get("AUTH_URL").and_then(|raw| match Url::parse(&raw) {
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                err(
                    "AUTH_URL",
                    "must be an http(s) origin such as https://example.com".into(),
                );
                None
            }
            Ok(u) if u.path() != "/" || u.query().is_some() || u.fragment().is_some() => {
                err(
                    "AUTH_URL",
                    "must be an origin without a path, such as https://example.com".into(),
                );
                None
            }
            Ok(u) => Some(u),
            Err(_) => {
                err("AUTH_URL", "is not a URL".into());
                None
            }
        });
        let sites_raw: Vec<String> = comma_list(get("SITES")).collect();
        // Each entry: a site's origin, or `ORIGIN=UPSTREAM` for a site served by its own
        // upstream (in place of `ASSETS` or `UPSTREAM_URL`).
        let mut site_origins: Vec<(Url, Option<Url>)> = Vec::new();
        for raw in &sites_raw {
            let (origin, upstream) = match raw.split_once('=') {
                Some((o, u)) => (o.trim(), Some(u.trim())),
                None => (raw.as_str(), None),
            };
            let upstream = match upstream.map(url_var_opt) {
                None => None,
                Some(Some(u)) => Some(u),
                Some(None) => {
                    err(
                        "SITES",
                        format!(
                            "{raw:?}: the upstream after '=' must be an https:// origin without a path (http:// only on localhost)"
                        ),
                    );
                    continue;
                }
            };
            match site_origin(origin) {
                Ok(u) if site_origins.iter().any(|(s, _)| s.origin() == u.origin()) => {
                    err("SITES", format!("{raw:?} is listed twice"));
                }
                Ok(u) => site_origins.push((u, upstream)),
                Err(problem) => err("SITES", format!("{raw:?}: {problem}")),
            }
        }
        if !sites_raw.is_empty() && auth_url.is_none() && get("AUTH_URL").is_none() {
            err(
                "AUTH_URL",
                "is required with SITES: the origin where people sign in (one of the sites, or a host of its own)".into(),
            );
        }
        if let Some(auth) = auth_url.as_ref().filter(|_| !sites_raw.is_empty())
            && let Err(problem) = site_origin(auth.as_str())
        {
            err("AUTH_URL", format!("with SITES: {problem}"));
        }
        // The provider's endpoints carry the code, the client secret and the keys that decide
        // who signs in: https:// only, except plain http:// on loopback (local development).
        let mut url_var = |var: &'static str, default: &str| -> Option<Url> {
            let raw = get(var).unwrap_or_else(|| default.to_owned());
            match Url::parse(&raw) {
                Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)) => {
                    Some(u)
                }
                Ok(u) if u.scheme() == "http" => {
                    err(
                        var,
                        "must be an https:// URL (http:// only on localhost, 127.0.0.0/8 or [::1])"
                            .into(),
                    );
                    None
                }
                _ => {
                    err(var, "must be an https:// URL".into());
                    None
                }
            }
        };
        let authorization_url = url_var(
            "GOOGLE_AUTHORIZATION_URL",
            "https://accounts.google.com/o/oauth2/v2/auth",
        );
        let token_url = url_var("GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token");
        let jwks_url = url_var(
            "GOOGLE_JWKS_URL",
            "https://www.googleapis.com/oauth2/v3/certs",
        );
        let upstream_url = get("UPSTREAM_URL").and_then(|raw| url_var_opt(&raw));
        let risc_url = url_var(
            "RISC_CONFIGURATION_URL",
            "https://accounts.google.com/.well-known/risc-configuration",
        );
        let issuer = get("GOOGLE_ISSUER").unwrap_or_else(|| GOOGLE_ISSUER.to_owned());
        let mut issuers = vec![issuer.clone()];
        // Google's documented quirk: its ID tokens may say `accounts.google.com` without scheme.
        if issuer == GOOGLE_ISSUER {
            issuers.push("accounts.google.com".into());
        }

        let list =
            |var: &str| -> Vec<String> { comma_list(get(var)).map(|s| s.to_lowercase()).collect() };
        let allowed_domains = list("ALLOWED_EMAIL_DOMAINS");
        let allowed_emails = list("ALLOWED_EMAILS");
        let admin_emails = list("ADMIN_EMAILS");

        let origins: Vec<String> = site_origins
            .iter()
            .map(|(u, _)| u.origin().ascii_serialization())
            .collect();
        let (gate, per_site) = site_gate_rules(
            get("PUBLIC_PATHS"),
            get("ROLE_PATHS"),
            &origins,
            &mut errors,
        );
        let sites = site_origins
            .into_iter()
            .zip(per_site)
            .map(|((url, upstream), gate)| SiteRules {
                site: Site::from_url(&url),
                gate,
                upstream,
            })
            .collect();
        let mut err =
            |var: &'static str, problem: String| errors.push(ConfigError { var, problem });
        let mut seconds = |var: &'static str, default: i64, min: i64| -> i64 {
            match get(var) {
                None => default,
                Some(raw) => match raw.parse::<i64>() {
                    Ok(n) if n >= min && n <= 10 * 365 * 86_400 => n,
                    _ => {
                        err(
                            var,
                            format!("must be a whole number of seconds, at least {min}"),
                        );
                        default
                    }
                },
            }
        };
        let session_max_age = seconds("SESSION_MAX_AGE", 30 * 86_400, 10);
        let session_check_interval = seconds("SESSION_CHECK_INTERVAL", 300, 1);
        let upstream_timeout = seconds("UPSTREAM_TIMEOUT", 30, 1);
        let last_seen_interval = seconds("LAST_SEEN_INTERVAL", 3600, 1);
        if session_check_interval > session_max_age {
            err(
                "SESSION_CHECK_INTERVAL",
                "must not be longer than SESSION_MAX_AGE".into(),
            );
        }
        let site_name = get("SITE_NAME");
        let risc = match get("RISC_ENABLED").as_deref() {
            None | Some("false") => None,
            Some("true") => risc_url,
            Some(_) => {
                err("RISC_ENABLED", "must be true or false".into());
                None
            }
        };
        let log_d1_queries = match get("LOG_D1_QUERIES").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                err("LOG_D1_QUERIES", "must be true or false".into());
                false
            }
        };
        if upstream_timeout > 600 {
            err("UPSTREAM_TIMEOUT", "must be at most 600 seconds".into());
        }

        if upstream_url.is_none() && get("UPSTREAM_URL").is_some() {
            err(
                "UPSTREAM_URL",
                "must be an https:// origin without a path, such as https://my-site.pages.dev (http:// only on localhost)".into(),
            );
        }
        let audit_retention_days = match get("AUDIT_RETENTION_DAYS") {
            None => DEFAULT_AUDIT_RETENTION_DAYS,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_AUDIT_RETENTION_DAYS).contains(&n) => n,
                _ => {
                    err(
                        "AUDIT_RETENTION_DAYS",
                        format!(
                            "must be a whole number of days, from 1 to {MAX_AUDIT_RETENTION_DAYS}"
                        ),
                    );
                    DEFAULT_AUDIT_RETENTION_DAYS
                }
            },
        };

        match (
            client_id,
            client_secret,
            keys,
            authorization_url,
            token_url,
            jwks_url,
        ) {
            (
                Some(client_id),
                Some(secret),
                Some(keys),
                Some(authorization_url),
                Some(token_url),
                Some(jwks_url),
            ) if errors.is_empty() => Ok(Self {
                client_id,
                client_secret: Redacted::new(secret),
                keys,
                auth_url,
                issuers,
                authorization_url,
                token_url,
                jwks_url,
                allowed_domains,
                allowed_emails,
                admin_emails,
                gate,
                sites,
                upstream_url,
                session_max_age,
                session_check_interval,
                last_seen_interval,
                log_d1_queries,
                site_name,
                upstream_timeout,
                risc,
                audit_retention_days,
            }),
            _ => Err(errors),
        }
    }
}

/// The trimmed, non-empty items of a comma list.
fn comma_list(value: Option<String>) -> impl Iterator<Item = String> {
    let items: Vec<String> = value
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default();
    items.into_iter().filter(|s| !s.is_empty())
}

/// `PUBLIC_PATHS` and `ROLE_PATHS` (comma lists) of a deployment with one site, each problem
/// added to `errors`.
pub fn gate_rules(
    public_paths: Option<String>,
    role_paths: Option<String>,
    errors: &mut Vec<ConfigError>,
) -> GateRules {
    site_gate_rules(public_paths, role_paths, &[], errors).0
}

/// `PUBLIC_PATHS` and `ROLE_PATHS` (comma lists) for the sites `origins` (`SITES`), each problem
/// added to `errors`: the rules of every site (entries written as a path), and each site's own
/// rules in the order of `origins` (entries written as one of its origins and a path, such as
/// `https://status.example.com/*`, first; then those of every site). Also used by the command
/// line's `gatehouse check`.
pub fn site_gate_rules(
    public_paths: Option<String>,
    role_paths: Option<String>,
    origins: &[String],
    errors: &mut Vec<ConfigError>,
) -> (GateRules, Vec<GateRules>) {
    let mut err = |var: &'static str, problem: String| errors.push(ConfigError { var, problem });
    // Each entry once: (which site, or every site; the rule).
    let mut public: Vec<(Option<String>, PathPattern)> = Vec::new();
    for raw in comma_list(public_paths) {
        let (origin, pattern) = match split_origin(&raw, origins) {
            Ok(split) => split,
            Err(problem) => {
                err("PUBLIC_PATHS", format!("{raw:?}: {problem}"));
                continue;
            }
        };
        match PathPattern::parse(pattern) {
            Ok(p) => public.push((origin, p)),
            Err(problem) => err("PUBLIC_PATHS", format!("{raw:?}: {problem}")),
        }
    }
    let mut roles: Vec<(Option<String>, PathPattern, String)> = Vec::new();
    for raw in comma_list(role_paths) {
        let Some((pattern, role)) = raw.split_once('=') else {
            err(
                "ROLE_PATHS",
                format!("{raw:?}: expected PATTERN=ROLE, e.g. /admin/*=admin"),
            );
            continue;
        };
        let role = role.trim();
        if role.is_empty()
            || !role
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            err(
                "ROLE_PATHS",
                format!("{raw:?}: a role is letters, digits, '-' or '_'"),
            );
            continue;
        }
        let (origin, pattern) = match split_origin(pattern.trim(), origins) {
            Ok(split) => split,
            Err(problem) => {
                err("ROLE_PATHS", format!("{raw:?}: {problem}"));
                continue;
            }
        };
        match PathPattern::parse(pattern) {
            Ok(p) => roles.push((origin, p, role.to_owned())),
            Err(problem) => err("ROLE_PATHS", format!("{raw:?}: {problem}")),
        }
    }
    // A site's own entries come first: with roles, the first match wins.
    let rules_of = |site: Option<&str>| {
        let pick = |origin: &Option<String>| match (site, origin) {
            (_, None) => 1,
            (Some(site), Some(o)) if o == site => 0,
            _ => 2,
        };
        let mut public: Vec<_> = public.iter().filter(|(o, _)| pick(o) < 2).collect();
        public.sort_by_key(|(o, _)| pick(o));
        let mut roles: Vec<_> = roles.iter().filter(|(o, _, _)| pick(o) < 2).collect();
        roles.sort_by_key(|(o, _, _)| pick(o));
        GateRules {
            public: public.into_iter().map(|(_, p)| p.clone()).collect(),
            roles: roles
                .into_iter()
                .map(|(_, p, r)| (p.clone(), r.clone()))
                .collect(),
        }
    };
    let shared = rules_of(None);
    let per_site = origins.iter().map(|o| rules_of(Some(o))).collect();
    (shared, per_site)
}

/// An entry of `PUBLIC_PATHS` or `ROLE_PATHS`: a path pattern for every site, or (with
/// `SITES`) one of `origins` followed by a path pattern, for that site alone.
fn split_origin<'r>(raw: &'r str, origins: &[String]) -> Result<(Option<String>, &'r str), String> {
    if raw.starts_with('/') {
        return Ok((None, raw));
    }
    // The pattern starts at the first `/` after `scheme://`; the part before it must be an
    // origin, as the URL parser reads it, that `SITES` lists.
    let after_scheme = raw.find("://").map_or(0, |i| i + 3);
    let Some(cut) = raw[after_scheme..].find('/').map(|i| i + after_scheme) else {
        return Err("a pattern starts with '/' (or with one of SITES, then '/')".into());
    };
    let origin = Url::parse(&raw[..cut])
        .ok()
        .filter(|u| u.path() == "/" && u.query().is_none() && u.username().is_empty())
        .map(|u| u.origin().ascii_serialization());
    match origin {
        Some(o) if origins.contains(&o) => Ok((Some(o), &raw[cut..])),
        Some(o) if origins.is_empty() => Err(format!(
            "names the site {o}, but SITES is not set (a pattern starts with '/')"
        )),
        Some(o) => Err(format!("names {o}, which SITES does not list")),
        None => Err("a pattern starts with '/' (or with one of SITES, then '/')".into()),
    }
}

/// One origin of `SITES` (or `AUTH_URL` with `SITES`): an `https://` origin, or `http://` on
/// loopback (local development), without path, query or user.
fn site_origin(raw: &str) -> Result<Url, &'static str> {
    let url = Url::parse(raw).map_err(|_| "is not a URL")?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("must be an origin without a path, such as https://docs.example.com");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold a user name or password");
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err("must be an https:// origin (http:// only on localhost, 127.0.0.0/8 or [::1])"),
    }
}

/// One site of `SITES` and its rules.
#[derive(Clone, Debug)]
pub struct SiteRules {
    /// The site.
    pub site: Site,
    /// Its `PUBLIC_PATHS` and `ROLE_PATHS`.
    pub gate: GateRules,
    /// Its own upstream (`ORIGIN=UPSTREAM` in `SITES`), in place of `UPSTREAM_URL` or `ASSETS`.
    pub upstream: Option<Url>,
}

/// Which site a request is for ([`Config::site_of`]).
#[derive(Clone, Copy, Debug)]
pub enum Served<'c> {
    /// A site, with its rules.
    Site(&'c GateRules),
    /// `AUTH_URL` when `SITES` does not list it (a host of its own): only `/auth/*`.
    AuthOnly,
}

impl Config {
    /// The site a request for `url` is for, and its rules; `None`: an origin this deployment
    /// does not serve (with `SITES`), refused. Security decision: with `SITES`, the site (and so
    /// the cookie name, the audience tokens must name, the rules) comes from the request's origin
    /// only when `SITES` lists it; any other `Host` is refused before a cookie is read.
    pub fn site_of(&self, url: &Url) -> Option<(Site, Served<'_>)> {
        if self.sites.is_empty() {
            let site = Site::from_url(self.auth_url.as_ref().unwrap_or(url));
            return Some((site, Served::Site(&self.gate)));
        }
        let origin = url.origin().ascii_serialization();
        if let Some(s) = self.sites.iter().find(|s| s.site.origin() == origin) {
            return Some((s.site.clone(), Served::Site(&s.gate)));
        }
        self.auth_url
            .as_ref()
            .filter(|a| a.origin().ascii_serialization() == origin)
            .map(|a| (Site::from_url(a), Served::AuthOnly))
    }

    /// With `SITES`, the auth origin (`AUTH_URL`) that `site` signs in through, when it is not
    /// `site` itself: a visitor without a session is handed off there and back.
    pub fn hand_off_to(&self, site: &Site) -> Option<Site> {
        let auth = Site::from_url(self.auth_url.as_ref().filter(|_| !self.sites.is_empty())?);
        (auth.origin() != site.origin()).then_some(auth)
    }

    /// A site of `SITES` by its origin, other than the auth origin: where a hand-off code may
    /// be sent.
    pub fn listed_site(&self, origin: &str) -> Option<&Site> {
        let auth = self.auth_url.as_ref()?.origin().ascii_serialization();
        self.sites
            .iter()
            .map(|s| &s.site)
            .find(|s| s.origin() == origin && s.origin() != auth)
    }

    /// Where `site`'s admitted requests go: its own upstream (`SITES`), else `UPSTREAM_URL`;
    /// `None`: `ASSETS`.
    pub fn upstream_for(&self, site: &Site) -> Option<&Url> {
        self.sites
            .iter()
            .find(|s| s.site.origin() == site.origin())
            .and_then(|s| s.upstream.as_ref())
            .or(self.upstream_url.as_ref())
    }

    /// Every role the path rules of any site name.
    pub fn rule_roles(&self) -> impl Iterator<Item = &str> {
        self.gate
            .roles
            .iter()
            .chain(self.sites.iter().flat_map(|s| s.gate.roles.iter()))
            .map(|(_, role)| role.as_str())
    }
}

/// `UPSTREAM_URL`: an origin (no path), `https://` except on loopback: admitted requests carry
/// identity headers, which must not cross the internet in clear text.
fn url_var_opt(raw: &str) -> Option<Url> {
    let url = Url::parse(raw).ok()?;
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
    (scheme_ok && url.path() == "/" && url.query().is_none() && url.username().is_empty())
        .then_some(url)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) const TEST_KEYS: &str = r#"{"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"}]}"#;

    pub(crate) fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("GOOGLE_CLIENT_ID", "client-1"),
            ("GOOGLE_CLIENT_SECRET", "shh-secret"),
            ("SESSION_KEYS", TEST_KEYS),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            m.insert((*k).to_owned(), (*v).to_owned());
        }
        m
    }

    pub(crate) fn config(extra: &[(&str, &str)]) -> Config {
        let v = vars(extra);
        Config::from_vars(|k| v.get(k).cloned()).unwrap()
    }

    fn errors(extra: &[(&str, &str)]) -> Vec<ConfigError> {
        let v = vars(extra);
        Config::from_vars(|k| v.get(k).cloned()).unwrap_err()
    }

    #[test]
    fn sites_are_origins_with_an_auth_origin_and_their_own_rules() {
        let c = config(&[
            ("AUTH_URL", "https://login.example.com"),
            (
                "SITES",
                "https://docs.example.com, http://127.0.0.1:8787, https://wiki.example.com:8443",
            ),
            (
                "PUBLIC_PATHS",
                "/public/*, https://wiki.example.com:8443/open/*",
            ),
            (
                "ROLE_PATHS",
                "/admin/*=admin, https://docs.example.com/admin/*=editor",
            ),
        ]);
        let site = |raw: &str| c.site_of(&Url::parse(raw).unwrap());
        let Some((docs, Served::Site(rules))) = site("https://docs.example.com/x") else {
            panic!("docs is served");
        };
        assert_eq!(docs.origin(), "https://docs.example.com");
        // The site's own rule first: with roles, the first match wins.
        assert_eq!(rules.roles[0].1, "editor");
        assert_eq!(rules.roles[1].1, "admin");
        assert_eq!(rules.public.len(), 1);
        let Some((_, Served::Site(wiki))) = site("https://wiki.example.com:8443/") else {
            panic!("wiki is served");
        };
        assert_eq!(wiki.public.len(), 2);
        assert_eq!(wiki.roles.len(), 1);
        let Some((local, _)) = site("http://127.0.0.1:8787/") else {
            panic!("loopback is served");
        };
        assert!(!local.secure());
        assert!(matches!(
            site("https://login.example.com/auth/login"),
            Some((_, Served::AuthOnly))
        ));
        assert!(site("https://evil.example.com/").is_none());
        assert!(site("https://wiki.example.com/").is_none(), "another port");
        assert_eq!(
            c.hand_off_to(&docs).map(|a| a.origin().to_owned()),
            Some("https://login.example.com".into())
        );
        assert!(c.listed_site("https://docs.example.com").is_some());
        assert!(c.listed_site("https://login.example.com").is_none());
        assert!(c.rule_roles().any(|r| r == "editor"));
        // A site of its own upstream; the others keep UPSTREAM_URL, or ASSETS.
        let up = config(&[
            ("AUTH_URL", "https://docs.example.com"),
            (
                "SITES",
                "https://docs.example.com, https://wiki.example.com=https://wiki-origin.pages.dev",
            ),
        ]);
        let url = |raw: &str| up.site_of(&Url::parse(raw).unwrap()).unwrap().0;
        assert_eq!(
            up.upstream_for(&url("https://wiki.example.com/"))
                .map(Url::as_str),
            Some("https://wiki-origin.pages.dev/")
        );
        assert!(up.upstream_for(&url("https://docs.example.com/")).is_none());
        // Without SITES nothing changes: one site, no hand-off.
        let one = config(&[("AUTH_URL", "https://docs.example.com")]);
        let Some((only, Served::Site(_))) =
            one.site_of(&Url::parse("https://other.test/").unwrap())
        else {
            panic!("one site");
        };
        assert_eq!(only.origin(), "https://docs.example.com");
        assert!(one.hand_off_to(&only).is_none());
    }

    #[test]
    fn bad_sites_are_reported_each_by_name() {
        for (vars, var, needle) in [
            (
                vec![("SITES", "https://a.example.com")],
                "AUTH_URL",
                "required with SITES",
            ),
            (
                vec![
                    ("SITES", "http://a.example.com"),
                    ("AUTH_URL", "https://a.example.com"),
                ],
                "SITES",
                "https://",
            ),
            (
                vec![
                    ("SITES", "https://a.example.com/docs"),
                    ("AUTH_URL", "https://a.example.com"),
                ],
                "SITES",
                "without a path",
            ),
            (
                vec![
                    ("SITES", "https://a.example.com, https://a.example.com/"),
                    ("AUTH_URL", "https://a.example.com"),
                ],
                "SITES",
                "twice",
            ),
            (
                vec![
                    ("SITES", "not a url"),
                    ("AUTH_URL", "https://a.example.com"),
                ],
                "SITES",
                "not a URL",
            ),
            (
                vec![
                    ("SITES", "https://a.example.com"),
                    ("AUTH_URL", "http://login.example.com"),
                ],
                "AUTH_URL",
                "https://",
            ),
            (
                vec![
                    ("SITES", "https://a.example.com"),
                    ("AUTH_URL", "https://a.example.com"),
                    ("PUBLIC_PATHS", "https://b.example.com/x"),
                ],
                "PUBLIC_PATHS",
                "does not list",
            ),
            (
                vec![("PUBLIC_PATHS", "https://b.example.com/x")],
                "PUBLIC_PATHS",
                "SITES is not set",
            ),
            (
                vec![
                    ("SITES", "https://a.example.com=http://origin.example.com"),
                    ("AUTH_URL", "https://a.example.com"),
                ],
                "SITES",
                "upstream",
            ),
            (
                vec![
                    (
                        "SITES",
                        "https://a.example.com=https://origin.example.com/path",
                    ),
                    ("AUTH_URL", "https://a.example.com"),
                ],
                "SITES",
                "upstream",
            ),
            (
                vec![
                    ("SITES", "https://a.example.com"),
                    ("AUTH_URL", "https://a.example.com"),
                    ("ROLE_PATHS", "https://a.example.com=x"),
                ],
                "ROLE_PATHS",
                "starts with '/'",
            ),
        ] {
            let errs = errors(&vars);
            assert!(
                errs.iter()
                    .any(|e| e.var == var && e.problem.contains(needle)),
                "{vars:?}: {errs:?}"
            );
        }
    }

    #[test]
    fn defaults_point_at_google() {
        let c = config(&[]);
        assert_eq!(
            c.issuers,
            ["https://accounts.google.com", "accounts.google.com"]
        );
        assert_eq!(c.token_url.as_str(), "https://oauth2.googleapis.com/token");
        assert_eq!(c.session_check_interval, 300);
        assert_eq!(c.session_max_age, 2_592_000);
        assert_eq!(c.upstream_timeout, 30);
        assert!(c.auth_url.is_none());
    }

    #[test]
    fn hosts_are_ascii_a_unicode_host_is_refused_and_punycode_kept_as_written() {
        // Cargo.toml pins `url` to no IDNA back end (no Unicode tables in the wasm): a
        // configured origin is written in punycode, as the runtime hands request hosts.
        let errs = errors(&[("AUTH_URL", "https://bücher.example")]);
        assert!(errs.iter().any(|e| e.var == "AUTH_URL"), "{errs:?}");
        let c = config(&[("AUTH_URL", "https://xn--bcher-kva.example")]);
        assert_eq!(
            crate::site::Site::from_url(c.auth_url.as_ref().unwrap()).origin(),
            "https://xn--bcher-kva.example"
        );
        assert!(url::Url::parse("https://straße.example/").is_err());
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_its_variable() {
        let errs = errors(&[
            ("GOOGLE_CLIENT_ID", ""),
            ("SESSION_KEYS", r#"{"keys":[{"kty":"oct","k":"AQ"}]}"#),
            ("AUTH_URL", "https://example.com/app"),
            ("SESSION_CHECK_INTERVAL", "soon"),
            ("UPSTREAM_TIMEOUT", "0"),
            ("PUBLIC_PATHS", "docs"),
        ]);
        let vars: Vec<_> = errs.iter().map(|e| e.var).collect();
        for var in [
            "GOOGLE_CLIENT_ID",
            "SESSION_KEYS",
            "AUTH_URL",
            "SESSION_CHECK_INTERVAL",
            "UPSTREAM_TIMEOUT",
            "PUBLIC_PATHS",
        ] {
            assert!(vars.contains(&var), "{var} not reported in {errs:?}");
        }
    }

    #[test]
    fn upstream_must_be_an_https_origin_except_on_loopback() {
        assert!(
            config(&[("UPSTREAM_URL", "https://my-site.pages.dev")])
                .upstream_url
                .is_some()
        );
        assert!(
            config(&[("UPSTREAM_URL", "http://127.0.0.1:9000")])
                .upstream_url
                .is_some()
        );
        for bad in [
            "http://my-site.pages.dev",
            "https://my-site.pages.dev/app",
            "ftp://x.test",
            "my-site.pages.dev",
            "https://u:p@x.test",
        ] {
            let errs = errors(&[("UPSTREAM_URL", bad)]);
            assert!(
                errs.iter().any(|e| e.var == "UPSTREAM_URL"),
                "{bad}: {errs:?}"
            );
        }
    }

    #[test]
    fn provider_urls_must_be_https_except_on_loopback() {
        const VARS: [&str; 3] = [
            "GOOGLE_AUTHORIZATION_URL",
            "GOOGLE_TOKEN_URL",
            "GOOGLE_JWKS_URL",
        ];
        for var in VARS {
            for good in [
                "https://idp.example.com/x",
                "http://127.0.0.1:9000/x",
                "http://127.1.2.3/x",
                "http://localhost:8788/x",
                "http://[::1]:9000/x",
            ] {
                let c = config(&[(var, good)]);
                let url = match var {
                    "GOOGLE_AUTHORIZATION_URL" => &c.authorization_url,
                    "GOOGLE_TOKEN_URL" => &c.token_url,
                    _ => &c.jwks_url,
                };
                assert_eq!(url.as_str(), good, "{var}={good}");
            }
            for bad in [
                "http://idp.example.com/x",
                "http://10.0.0.1/x",
                "http://127.0.0.1.nip.io/x",
                "http://localhost.example.com/x",
                "http://[::2]/x",
                "ftp://127.0.0.1/x",
                "idp.example.com/x",
            ] {
                let errs = errors(&[(var, bad)]);
                assert_eq!(errs.len(), 1, "{var}={bad}: {errs:?}");
                assert_eq!(errs[0].var, var, "{bad}: {errs:?}");
                assert!(errs[0].problem.contains("https://"), "{errs:?}");
                assert!(
                    errs[0].to_string().starts_with(&format!("{var} must be")),
                    "{}",
                    errs[0]
                );
            }
        }
        // Several bad ones at once: each is named.
        let errs = errors(&[
            ("GOOGLE_TOKEN_URL", "http://oauth2.example.com/token"),
            ("GOOGLE_JWKS_URL", "http://certs.example.com/"),
        ]);
        let vars: Vec<_> = errs.iter().map(|e| e.var).collect();
        assert_eq!(vars, ["GOOGLE_TOKEN_URL", "GOOGLE_JWKS_URL"]);
    }

    #[test]
    fn short_hmac_keys_are_refused_without_printing_them() {
        let errs = errors(&[(
            "SESSION_KEYS",
            r#"{"keys":[{"kty":"oct","kid":"a","k":"c2hvcnQta2V5"}]}"#,
        )]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].problem.contains("at least 32 bytes"), "{errs:?}");
        assert!(!errs[0].problem.contains("c2hvcnQta2V5"), "{errs:?}");
    }

    #[test]
    fn secret_values_never_reach_debug_output() {
        let c = config(&[]);
        let debug = format!("{c:?}");
        assert!(!debug.contains("shh-secret"), "{debug}");
        assert!(!debug.contains("AQEBAQEB"), "{debug}");
    }

    #[test]
    fn session_keys_that_are_not_a_jwk_set_are_refused() {
        for bad in [
            "nope",
            "{}",
            r#"{"keys":[]}"#,
            r#"{"keys":[{"kty":"RSA","kid":"r","n":"AQ","e":"AQ"}]}"#,
        ] {
            let errs = errors(&[("SESSION_KEYS", bad)]);
            assert!(
                errs.iter().all(|e| e.var == "SESSION_KEYS"),
                "{bad}: {errs:?}"
            );
            assert!(!errs.is_empty());
        }
    }

    #[test]
    fn the_risc_receiver_is_off_by_default_and_its_url_is_checked() {
        assert_eq!(config(&[]).risc, None);
        assert_eq!(config(&[("RISC_ENABLED", "false")]).risc, None);
        assert_eq!(
            config(&[("RISC_ENABLED", "true")]).risc.map(String::from),
            Some("https://accounts.google.com/.well-known/risc-configuration".into())
        );
        let local = "http://127.0.0.1:9000/.well-known/risc-configuration";
        assert_eq!(
            config(&[("RISC_ENABLED", "true"), ("RISC_CONFIGURATION_URL", local)])
                .risc
                .map(String::from),
            Some(local.into())
        );
        let vars: Vec<_> = errors(&[("RISC_ENABLED", "yes")])
            .into_iter()
            .map(|e| e.var)
            .collect();
        assert_eq!(vars, ["RISC_ENABLED"]);
        let vars: Vec<_> = errors(&[
            ("RISC_ENABLED", "true"),
            ("RISC_CONFIGURATION_URL", "http://risc.example/config"),
        ])
        .into_iter()
        .map(|e| e.var)
        .collect();
        assert_eq!(vars, ["RISC_CONFIGURATION_URL"]);
    }

    #[test]
    fn last_seen_is_written_hourly_by_default_and_the_query_log_is_off() {
        let c = config(&[]);
        assert_eq!((c.last_seen_interval, c.log_d1_queries), (3600, false));
        let c = config(&[("LAST_SEEN_INTERVAL", "600"), ("LOG_D1_QUERIES", "true")]);
        assert_eq!((c.last_seen_interval, c.log_d1_queries), (600, true));
        let vars: Vec<_> = errors(&[("LAST_SEEN_INTERVAL", "0"), ("LOG_D1_QUERIES", "yes")])
            .into_iter()
            .map(|e| e.var)
            .collect();
        assert_eq!(vars, ["LAST_SEEN_INTERVAL", "LOG_D1_QUERIES"]);
    }

    #[test]
    fn audit_rows_are_kept_a_year_by_default_and_the_retention_is_checked() {
        assert_eq!(config(&[]).audit_retention_days, 365);
        assert_eq!(
            config(&[("AUDIT_RETENTION_DAYS", " 30 ")]).audit_retention_days,
            30
        );
        assert_eq!(
            config(&[("AUDIT_RETENTION_DAYS", "36500")]).audit_retention_days,
            36_500
        );
        for bad in ["0", "-1", "36501", "1.5", "a year", "99999999999999999999"] {
            let errs = errors(&[("AUDIT_RETENTION_DAYS", bad)]);
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert_eq!(
                errs[0].to_string(),
                "AUDIT_RETENTION_DAYS must be a whole number of days, from 1 to 36500"
            );
        }
    }
}
