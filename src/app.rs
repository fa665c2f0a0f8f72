//! The route table: `/auth/*` handlers and the gate. Plain data in, plain data out; the
//! runtime turns [`Outcome`] into a Workers response or a forward to the site.

use std::cell::RefCell;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;
use url::Url;

use crate::config::{Config, Served};
use crate::error::ErrorCode;
use crate::http::HttpClient;
use crate::oidc::jwks::JwksCache;
use crate::oidc::risc::RiscCache;
use crate::oidc::rs256::Rs256Verifier;
use crate::oidc::{self};
use crate::random::Random;
use crate::session::memory::SessionMemory;
use crate::site::Site;
use crate::store::UserStore;
use crate::time::UnixTime;

mod admin_page;
mod forward;
mod hand_off;
mod responses;
mod risc;
mod sessions;
mod sign_in;
mod sign_out;

pub use forward::{
    Deferred, IDENTITY_HEADER_PREFIX, Quick, SHARED_CACHE_HEADERS, hot_path_may_decide,
    private_cache_control, private_vary, quick_decision, quick_decision_deferred,
    quick_decision_in, rewrite_location,
};
use hand_off::HANDOFF_CALLBACK_PATH;
use responses::{WireError, harden, json_response};
pub use responses::{outage_json, outage_page};

/// A response body with its status and headers.
pub type Response = http::Response<Vec<u8>>;

/// An incoming request as the app sees it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Full URL.
    pub url: Url,
    /// Headers.
    pub headers: HeaderMap,
    /// Body: read only for `POST /auth/*` (forms); empty otherwise.
    pub body: Vec<u8>,
}

impl Request {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        // As UTF-8, not `to_str` (visible ASCII only): one site cookie holding `café` must not
        // hide the session in the same `Cookie` header from this route while the hot path,
        // which is handed the header as text, sees it.
        self.headers
            .get(name)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
    }

    fn query(&self, name: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(&self.body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A browser navigation (GET/HEAD asking for HTML) gets redirects and pages; anything else
    /// gets status codes and JSON.
    fn is_navigation(&self) -> bool {
        matches!(self.method, Method::GET | Method::HEAD)
            && self
                .header(header::ACCEPT)
                .is_some_and(|a| a.contains("text/html"))
    }
}

/// Who a forwarded request is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `X-Auth-User-Id`.
    pub user_id: String,
    /// `X-Auth-Email`.
    pub email: String,
    /// `X-Auth-Role`.
    pub role: String,
}

/// What to do with an admitted request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forward {
    /// The signed-in user, if any (public paths forward without).
    pub identity: Option<Identity>,
    /// `Set-Cookie` values to add to the site's response (a renewed session).
    pub set_cookies: Vec<String>,
    /// The session came as `Authorization: Bearer`: remove it, the site never sees the token.
    pub strip_authorization: bool,
}

/// The app's answer.
#[derive(Debug)]
pub enum Outcome {
    /// Answer with this response.
    Respond(Response),
    /// Pass the request to the site (`ASSETS` or `UPSTREAM_URL`).
    Forward(Forward),
}

/// Where log lines go (one JSON object per line).
pub trait Log {
    /// Writes one line.
    fn line(&self, line: &str);
}

/// One request's view of the world.
pub struct App<'a, H, S> {
    /// Configuration.
    pub config: &'a Config,
    /// Outgoing HTTP.
    pub http: &'a H,
    /// D1.
    pub store: &'a S,
    /// Randomness.
    pub random: &'a dyn Random,
    /// Per-isolate JWKS cache.
    pub jwks: &'a RefCell<JwksCache>,
    /// RS256 signature checks of Google's tokens (WebCrypto in the worker).
    pub rs256: &'a dyn Rs256Verifier,
    /// Per-isolate memory of recent renewals and ended sessions.
    pub sessions: &'a RefCell<SessionMemory>,
    /// Per-isolate cache of the RISC configuration and keys (Cross-Account Protection).
    pub risc: &'a RiscCache,
    /// Logs.
    pub log: &'a dyn Log,
    /// Now.
    pub now: UnixTime,
}

impl<H: HttpClient, S: UserStore> App<'_, H, S> {
    /// Handles one request.
    pub async fn handle(&self, req: &Request) -> Outcome {
        let path = req.url.path();
        let auth = path == "/auth" || path.starts_with("/auth/");
        let Some((site, served)) = self.config.site_of(&req.url) else {
            self.event(
                "warn",
                "site_refused",
                req,
                Some("an origin SITES does not list"),
            );
            let mut response = WireError::UnknownSite.response();
            harden(response.headers_mut());
            return Outcome::Respond(response);
        };
        if auth {
            let mut response = self.auth_route(req, &site).await;
            harden(response.headers_mut());
            if req.method == Method::HEAD {
                response.body_mut().clear();
            }
            return Outcome::Respond(response);
        }
        match served {
            Served::Site(rules) => self.gate(req, &site, rules).await,
            // A host of its own for signing in serves nothing else.
            Served::AuthOnly => {
                let mut response = WireError::NotFound.response();
                harden(response.headers_mut());
                Outcome::Respond(response)
            }
        }
    }

    fn site_name(&self, site: &Site) -> String {
        self.config.site_name.clone().unwrap_or_else(|| {
            Url::parse(site.origin())
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default()
        })
    }

    fn event(&self, level: &str, event: &str, req: &Request, reason: Option<&str>) {
        let mut line = json!({ "level": level, "event": event, "method": req.method.as_str(), "path": req.url.path() });
        if let Some(reason) = reason {
            line["reason"] = reason.into();
        }
        self.log.line(&line.to_string());
    }

    async fn auth_route(&self, req: &Request, site: &Site) -> Response {
        let get = matches!(req.method, Method::GET | Method::HEAD);
        match (req.url.path(), get, req.method == Method::POST) {
            ("/auth/login", true, _) => self.login_page(req, site),
            ("/auth/login/google", true, _) => self.start(req, site),
            (oidc::CALLBACK_PATH, true, _) => self.callback(req, site).await,
            ("/auth/session", true, _) => self.session_json(req, site).await,
            ("/auth/csrf", true, _) => self.csrf(req, site).await,
            ("/auth/logout", true, _) => self.logout_page(req, site),
            ("/auth/logout", _, true) => self.logout(req, site).await,
            ("/auth/error", true, _) => {
                let code = ErrorCode::parse(&req.query("error").unwrap_or_default());
                let cancelled = code == ErrorCode::OAuthCallbackError
                    && req.query("cancelled").as_deref() == Some("1");
                self.error_page(site, code, req.query("callbackUrl").as_deref(), cancelled)
            }
            ("/auth/jwks.json", true, _) => {
                let mut r = json_response(StatusCode::OK, &self.config.keys.public_jwks());
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                );
                r
            }
            ("/auth/verify", true, _) => self.verify(req, site).await,
            ("/auth/admin", true, _) => self.admin_page(req, site).await,
            ("/auth/admin", _, true) => self.admin_post(req, site).await,
            ("/auth/risc", _, true) => self.risc(req).await,
            ("/auth/handoff", true, _) => self.hand_off(req, site).await,
            (HANDOFF_CALLBACK_PATH, true, _) => self.redeem(req, site).await,
            (
                "/auth/login"
                | "/auth/login/google"
                | oidc::CALLBACK_PATH
                | "/auth/session"
                | "/auth/csrf"
                | "/auth/error"
                | "/auth/jwks.json"
                | "/auth/verify"
                | "/auth/admin"
                | "/auth/logout"
                | "/auth/risc"
                | "/auth/handoff"
                | HANDOFF_CALLBACK_PATH,
                _,
                _,
            ) => WireError::MethodNotAllowed.response(),
            _ => WireError::NotFound.response(),
        }
    }
}

#[cfg(test)]
mod tests;
