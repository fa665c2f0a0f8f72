//! The gate and the forwarding policy: the hot path's verdict (`quick_decision`), the full
//! route's decision (`App::gate`), and what a forwarded response must say (cache headers,
//! `Location` rewriting).

use super::responses::{WireError, add_cookie, encode_param, harden, html_response, redirect};
use super::sessions::{Found, bearer};
use super::{App, Forward, Identity, Outcome, Request};

use http::{HeaderValue, StatusCode, header};
use url::Url;

use crate::config::Config;
use crate::config::Served;
use crate::gate::{self, Decision, GateRules};
use crate::http::HttpClient;
use crate::pages;
use crate::session::keys::{CheckedSignature, Ed25519Check};
use crate::session::token::{Session, UntrustedSession};
use crate::session::verified::{Lookup, Signatures, VerifiedTokens};
use crate::session::{cookies, cookies::Jar};
use crate::site::Site;
use crate::store::UserStore;
use crate::time::UnixTime;

/// The hot path's verdict, decided synchronously from the URL and the `Cookie` header alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quick {
    /// Take the full route (`App::handle`): `/auth/*`, no or expired session, a bearer token,
    /// a wrong role, an odd path, upstream mode.
    Full,
    /// A public path: forward as it is.
    Public,
    /// A current session token that this path admits: forward, marked private. The same
    /// inputs get the same verdict until `until` (the token's `exp`, or the session's end if
    /// sooner): past it the token is no longer current.
    Admitted {
        /// First second at which the verdict no longer holds.
        until: UnixTime,
    },
}

/// Header names that start with this are identity headers: Gatehouse sets `X-Auth-User-Id`,
/// `X-Auth-Email` and `X-Auth-Role` for the site and removes every `X-Auth-*` a visitor sends.
pub const IDENTITY_HEADER_PREFIX: &str = "x-auth-";

/// Whether a request is one the hot path may decide at all: a GET or HEAD that carries no
/// `Authorization` (a bearer token is never renewed nor remembered) and no identity header (the
/// full route removes those). `App::gate` applies this function; js/entry.mjs applies the same
/// test (js/filter.mjs) with [`IDENTITY_HEADER_PREFIX`] taken from here.
pub fn hot_path_may_decide<'a>(
    method: &str,
    mut header_names: impl Iterator<Item = &'a str>,
) -> bool {
    matches!(method, "GET" | "HEAD")
        && !header_names.any(|name| {
            name.eq_ignore_ascii_case("authorization")
                || name
                    .get(..IDENTITY_HEADER_PREFIX.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(IDENTITY_HEADER_PREFIX))
        })
}

/// What the rules say from the URL and the `Cookie` header alone.
enum Quickly<'m> {
    Full,
    Public,
    Admitted(&'m Session),
    /// Only with [`Signatures::Deferred`]: an Ed25519 token new to the isolate, whose signature
    /// the caller checks before deciding again with the proof.
    Check(Ed25519Check),
}

/// The one decision both routes take first: a public path, or an unexpired session token that
/// the path admits (for `ASSETS`), needs nothing but a signature check; everything else is
/// [`Quickly::Full`], decided by `App::gate` with one D1 read at most (a renewal). The token is
/// checked through the isolate's memory of verified tokens (`session::verified` says why that
/// answers exactly as `token::verify` would); the path rules run on every request.
fn decide_quickly<'m>(
    config: &Config,
    url: &Url,
    cookie: Option<&str>,
    now: UnixTime,
    verified: &'m mut VerifiedTokens,
    signatures: Signatures<'_>,
) -> Quickly<'m> {
    let path = url.path();
    if path == "/auth" || path.starts_with("/auth/") {
        return Quickly::Full;
    }
    // The site first: an origin `SITES` does not list is refused by the full route, even on a
    // path that would be public. The hot path forwards to `ASSETS` only.
    let Some((site, Served::Site(rules))) = config.site_of(url) else {
        return Quickly::Full;
    };
    if config.upstream_for(&site).is_some() {
        return Quickly::Full;
    }
    match gate::admit(rules, path, None) {
        Decision::Public => return Quickly::Public,
        Decision::BadPath => return Quickly::Full,
        _ => {}
    }
    let Some(raw) = cookie.and_then(|h| cookies::read(h, Jar::Session, &site)) else {
        return Quickly::Full;
    };
    match verified.lookup(
        &config.keys,
        UntrustedSession(raw),
        site.origin(),
        now,
        signatures,
    ) {
        Lookup::Current(session) if gate::admit(rules, path, Some(session)) == Decision::Admit => {
            Quickly::Admitted(session)
        }
        Lookup::Check(check) => Quickly::Check(check),
        Lookup::Current(_) | Lookup::Full => Quickly::Full,
    }
}

/// The hot path (js/entry.mjs, for requests that [`hot_path_may_decide`]): the first decision
/// of the full route, with no I/O and no allocation beyond the URL and the token's claims.
/// `url` is the request's URL as the runtime gives it, parsed with the full route's parser.
/// Without a memory of verified tokens (every token checked in full); see [`quick_decision_in`].
pub fn quick_decision(config: &Config, url: &str, cookie: Option<&str>, now: UnixTime) -> Quick {
    quick_decision_in(
        &mut VerifiedTokens::with_capacity(2),
        config,
        url,
        cookie,
        now,
    )
}

/// [`quick_decision`] with the isolate's memory of verified tokens.
pub fn quick_decision_in(
    verified: &mut VerifiedTokens,
    config: &Config,
    url: &str,
    cookie: Option<&str>,
    now: UnixTime,
) -> Quick {
    match quick(verified, config, url, cookie, now, Signatures::Inline) {
        Deferred::Decided(quick) => quick,
        // Inline: the memory checks Ed25519 signatures itself and never asks.
        Deferred::Check(_) => Quick::Full,
    }
}

/// The runtime's hot path: [`quick_decision_in`], except that an Ed25519 token new to the
/// isolate is not verified here but answered with [`Deferred::Check`]: the runtime checks the
/// signature with WebCrypto (several times faster than Rust in wasm) and, if it verified, asks
/// again with `proof` ([`Ed25519Check::passed`]); the answer is then what `quick_decision_in`
/// would give. With `proof`, no check is asked for again (a proof for another token counts for
/// nothing: the full route).
pub fn quick_decision_deferred(
    verified: &mut VerifiedTokens,
    config: &Config,
    url: &str,
    cookie: Option<&str>,
    now: UnixTime,
    proof: Option<&CheckedSignature>,
) -> Deferred {
    quick(
        verified,
        config,
        url,
        cookie,
        now,
        Signatures::Deferred(proof),
    )
}

fn quick(
    verified: &mut VerifiedTokens,
    config: &Config,
    url: &str,
    cookie: Option<&str>,
    now: UnixTime,
    signatures: Signatures<'_>,
) -> Deferred {
    let Ok(url) = Url::parse(url) else {
        return Deferred::Decided(Quick::Full);
    };
    Deferred::Decided(
        match decide_quickly(config, &url, cookie, now, verified, signatures) {
            Quickly::Full => Quick::Full,
            Quickly::Public => Quick::Public,
            Quickly::Admitted(session) => Quick::Admitted {
                until: session.lapses(),
            },
            // Never with a proof: `VerifiedTokens::lookup` then verifies (a proof for another
            // token is a refusal, hence the full route).
            Quickly::Check(check) => return Deferred::Check(check),
        },
    )
}

/// [`quick_decision_deferred`]'s answer.
#[derive(Debug)]
pub enum Deferred {
    /// The verdict.
    Decided(Quick),
    /// The signature check to make before asking again.
    Check(Ed25519Check),
}

/// The sign-in page, coming back to this page (path and query) afterwards.
fn login_redirect(req: &Request) -> super::Response {
    let mut target = req.url.path().to_owned();
    if let Some(q) = req.url.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut r = redirect(
        StatusCode::FOUND,
        &format!("/auth/login?{}", encode_param("callbackUrl", &target)),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn identity(session: &Session) -> Identity {
    let c = session.claims();
    Identity {
        user_id: c.sub.clone(),
        email: c.email.clone(),
        role: c.role.clone(),
    }
}

impl<H: HttpClient, S: UserStore> App<'_, H, S> {
    /// The hot path's decision ([`decide_quickly`]), for a request it may decide; `None`: the
    /// rest of the gate decides. Ed25519 signatures are checked here, in Rust (the full route's
    /// tokens are few: renewals, bearer tokens, refusals).
    fn decided_quickly(&self, req: &Request) -> Option<Outcome> {
        if !hot_path_may_decide(
            req.method.as_str(),
            req.headers.keys().map(http::HeaderName::as_str),
        ) {
            return None;
        }
        let cookie = req.header(header::COOKIE);
        let mut memory = self.sessions.borrow_mut();
        match decide_quickly(
            self.config,
            &req.url,
            cookie,
            self.now,
            &mut memory.verified,
            Signatures::Inline,
        ) {
            Quickly::Public => Some(Outcome::Forward(Forward::default())),
            Quickly::Admitted(session) => Some(Outcome::Forward(Forward {
                identity: Some(identity(session)),
                ..Forward::default()
            })),
            Quickly::Full | Quickly::Check(_) => None,
        }
    }

    /// The gate: first the hot path's own decision ([`decide_quickly`]), then, for what it
    /// leaves, sessions from bearer tokens and renewals.
    pub(super) async fn gate(&self, req: &Request, site: &Site, rules: &GateRules) -> Outcome {
        if let Some(outcome) = self.decided_quickly(req) {
            return outcome;
        }
        if gate::admit(rules, req.url.path(), None) == Decision::Public {
            // A session token never reaches the site, not even on a public path.
            let strip_authorization = bearer(req).is_some_and(|t| self.is_ours(t, site));
            return Outcome::Forward(Forward {
                identity: None,
                set_cookies: Vec::new(),
                strip_authorization,
            });
        }
        let found = self.find_session(req, site).await;
        let set_cookies: Vec<String> = found.set_cookie().map(str::to_owned).into_iter().collect();
        let mut response = match gate::admit(rules, req.url.path(), found.session()) {
            Decision::Public | Decision::Admit => {
                return Outcome::Forward(Forward {
                    identity: found.session().map(identity),
                    set_cookies,
                    strip_authorization: matches!(found, Found::Bearer(_)),
                });
            }
            Decision::NeedSession if matches!(found, Found::Unavailable) => {
                self.unavailable(req, site)
            }
            Decision::NeedSession if req.is_navigation() => login_redirect(req),
            Decision::NeedSession => {
                let mut r = WireError::SessionRequired.response();
                let challenge = if matches!(found, Found::BadBearer) {
                    r#"Bearer error="invalid_token""#
                } else {
                    "Bearer"
                };
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
                r
            }
            Decision::BadPath => {
                self.event(
                    "info",
                    "path_refused",
                    req,
                    Some("read differently by different servers"),
                );
                WireError::BadRequest {
                    reason: "unreadable path",
                }
                .response()
            }
            Decision::WrongRole { required } => {
                let email = found
                    .session()
                    .map(|s| s.claims().email.clone())
                    .unwrap_or_default();
                if req.is_navigation() {
                    let mut r = html_response(
                        StatusCode::FORBIDDEN,
                        pages::forbidden(&self.site_name(site), &required, &email),
                    );
                    harden(r.headers_mut());
                    r
                } else {
                    WireError::AccessDenied {
                        required_role: &required,
                    }
                    .response()
                }
            }
        };
        for c in &set_cookies {
            add_cookie(&mut response, c);
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Outcome::Respond(response)
    }
}

/// A `Location` from the upstream that leads a browser to the upstream's own host, rewritten to
/// the public origin with the same path, query and fragment (so visitors are never sent around
/// the gate); `None` leaves it as it is.
///
/// Decided on parsed URLs, as a browser resolves the header: `location` is resolved (WHATWG
/// rules, so `HTTPS://HOST`, `//host` and `/\host` all name a host) against the public origin
/// the browser is on. What then names the upstream's host (case-insensitively, in either
/// scheme, on its port or the scheme's default port when the upstream has none) is rewritten;
/// relative references resolve to the public site and stay as they are, as do other hosts.
pub fn rewrite_location(location: &str, upstream: &Url, site_origin: &str) -> Option<String> {
    let site = Url::parse(site_origin).ok()?;
    // Resolved as the browser will, against the public site: whatever then lands on the
    // upstream's host would take the visitor around the gate, however it was spelled.
    let target = site.join(location).ok()?;
    if !matches!(target.scheme(), "http" | "https") {
        return None;
    }
    // A fully qualified name (`host.`) reaches the same host: compare without the final dot.
    let name = |u: &Url| match u.host()? {
        url::Host::Domain(d) => Some(url::Host::Domain(
            d.strip_suffix('.').unwrap_or(d).to_owned(),
        )),
        other => Some(other.to_owned()),
    };
    let same_host = name(&target).is_some() && name(&target) == name(upstream);
    // Either scheme on its own default port counts when the upstream names no port (`http://` for
    // an https upstream still reaches it); otherwise the port must be the upstream's.
    let same_port = target.port_or_known_default() == upstream.port_or_known_default()
        || (target.port().is_none() && upstream.port().is_none());
    // The public site itself is never rewritten (it only matters if both share a host).
    if !same_host || !same_port || target.origin() == site.origin() {
        return None;
    }
    let mut rewritten = site.origin().ascii_serialization();
    rewritten.push_str(target.path());
    if let Some(q) = target.query() {
        rewritten.push('?');
        rewritten.push_str(q);
    }
    if let Some(f) = target.fragment() {
        rewritten.push('#');
        rewritten.push_str(f);
    }
    Some(rewritten)
}

/// `Cache-Control` for a protected response: `private`, keeping stricter directives
/// (`no-store`, `private`, `max-age`) and dropping the ones that allow shared caches.
pub fn private_cache_control(existing: Option<&str>) -> String {
    let Some(existing) = existing.filter(|v| !v.trim().is_empty()) else {
        return "private".into();
    };
    let kept: Vec<&str> = existing
        .split(',')
        .map(str::trim)
        .filter(|d| {
            let name = d.split('=').next().unwrap_or_default().to_ascii_lowercase();
            !matches!(
                name.as_str(),
                "public" | "s-maxage" | "private" | "proxy-revalidate" | ""
            )
        })
        .collect();
    let mut out = vec!["private"];
    out.extend(kept);
    out.join(", ")
}

/// Headers that tell a CDN or other shared cache how to cache, apart from `Cache-Control`
/// (lower case). A protected response loses them all: each would let a shared cache store what
/// `Cache-Control: private` forbids (Cloudflare obeys `CDN-Cache-Control` and
/// `Cloudflare-CDN-Cache-Control` over `Cache-Control`). The one list for both forwards: the
/// runtime's and js/entry.mjs's (through the wasm export `sharedCacheHeaders`).
pub const SHARED_CACHE_HEADERS: [&str; 3] = [
    "cdn-cache-control",
    "cloudflare-cdn-cache-control",
    "surrogate-control",
];

/// `Vary` for a protected response: the site's value, plus `Cookie` unless it already varies
/// on `Cookie` (or on everything, `*`). A cache that keeps the response apart per cookie never
/// serves one visitor's page to another.
pub fn private_vary(existing: Option<&str>) -> String {
    let Some(existing) = existing.filter(|v| !v.trim().is_empty()) else {
        return "Cookie".into();
    };
    let covered = existing
        .split(',')
        .map(str::trim)
        .any(|f| f == "*" || f.eq_ignore_ascii_case("cookie"));
    if covered {
        existing.to_owned()
    } else {
        format!("{existing}, Cookie")
    }
}
