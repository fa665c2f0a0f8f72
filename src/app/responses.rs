//! Building responses: pages, JSON errors, redirects, cookies and the headers every auth
//! response carries.

use super::{App, Request, Response};

use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;

use crate::error::ErrorCode;
use crate::http::HttpClient;
use crate::pages;
use crate::redirect::CallbackUrl;
use crate::site::Site;
use crate::store::UserStore;

impl<H: HttpClient, S: UserStore> App<'_, H, S> {
    /// D1 failed: a 503 "try again in a moment" (a JSON body for scripts), or the
    /// `Configuration` page when D1 says its tables are missing (migrations not applied).
    pub(super) fn store_failed(
        &self,
        req: &Request,
        site: &Site,
        event: &str,
        e: &crate::store::StoreError,
    ) -> Response {
        self.event("error", event, req, Some(&e.0));
        if e.is_schema() {
            return self.error_page(site, ErrorCode::Configuration, None, false);
        }
        self.unavailable(req, site)
    }

    /// 503 for a passing D1 outage: a page offering to try again (navigations) or JSON, with
    /// `Retry-After`. The visitor's cookie is kept.
    pub(super) fn unavailable(&self, req: &Request, site: &Site) -> Response {
        let mut r = if req.is_navigation() {
            let again = match req.url.query() {
                Some(q) => format!("{}?{q}", req.url.path()),
                None => req.url.path().to_owned(),
            };
            outage_page(&self.site_name(site), ErrorCode::Unavailable, &again)
        } else {
            outage_json(ErrorCode::Unavailable)
        };
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r
    }

    pub(super) fn error_page(
        &self,
        site: &Site,
        code: ErrorCode,
        callback: Option<&str>,
        cancelled: bool,
    ) -> Response {
        let callback = CallbackUrl::parse(callback.unwrap_or_default(), site);
        let login = format!(
            "/auth/login?{}",
            encode_param("callbackUrl", callback.as_str())
        );
        let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        html_response(
            status,
            pages::error(&self.site_name(site), code, &login, cancelled),
        )
    }

    /// The response for a request that arrives while the configuration is broken.
    pub fn configuration_error(site_name: &str) -> Response {
        let mut r = html_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::error(site_name, ErrorCode::Configuration, "/auth/login", false),
        );
        harden(r.headers_mut());
        r
    }
}

/// The page for an outage (`code` is one of [`ErrorCode::is_outage`]); its button tries
/// `again` (a path on this site) once more.
pub fn outage_page(site_name: &str, code: ErrorCode, again: &str) -> Response {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let again = if again.starts_with('/') && !again.starts_with("//") {
        again
    } else {
        "/"
    };
    let mut r = html_response(status, pages::error(site_name, code, again, false));
    harden(r.headers_mut());
    r
}

/// The JSON errors on the wire (`{"error": NAME, …}`), each with its status. Scripts read
/// these names; pages say the same in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WireError<'a> {
    /// 401: a session is needed.
    SessionRequired,
    /// 403: the session lacks this role.
    AccessDenied {
        /// The role the path needs.
        required_role: &'a str,
    },
    /// 403: a refused action (cross-origin, missing CSRF token).
    Forbidden {
        /// Why, in words (no user data).
        reason: &'a str,
    },
    /// 400: a request the gate will not read.
    BadRequest {
        /// Why, in words.
        reason: &'a str,
    },
    /// 405: a known route, another method.
    MethodNotAllowed,
    /// 404: no such auth route.
    NotFound,
    /// 421: a request for an origin `SITES` does not list.
    UnknownSite,
    /// 502, 503 or 504: an outage ([`ErrorCode::is_outage`]).
    Outage(ErrorCode),
}

impl WireError<'_> {
    /// The JSON response.
    pub(super) fn response(self) -> Response {
        let (status, body) = match self {
            Self::SessionRequired => (
                StatusCode::UNAUTHORIZED,
                json!({ "error": "SessionRequired" }),
            ),
            Self::AccessDenied { required_role } => (
                StatusCode::FORBIDDEN,
                json!({ "error": "AccessDenied", "requiredRole": required_role }),
            ),
            Self::Forbidden { reason } => (
                StatusCode::FORBIDDEN,
                json!({ "error": "Forbidden", "reason": reason }),
            ),
            Self::BadRequest { reason } => (
                StatusCode::BAD_REQUEST,
                json!({ "error": "BadRequest", "reason": reason }),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({ "error": "MethodNotAllowed" }),
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, json!({ "error": "NotFound" })),
            Self::UnknownSite => (
                StatusCode::MISDIRECTED_REQUEST,
                json!({ "error": "UnknownSite", "reason": "this origin is not one of the sites served here" }),
            ),
            Self::Outage(code) => (
                StatusCode::from_u16(code.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                json!({ "error": code.as_str() }),
            ),
        };
        json_response(status, &body)
    }
}

/// The JSON answer for an outage: `{"error": CODE}` with its status, never cached.
pub fn outage_json(code: ErrorCode) -> Response {
    let mut r = WireError::Outage(code).response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(super) fn encode_param(name: &str, value: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish()
}

pub(super) fn redirect(status: StatusCode, location: &str) -> Response {
    let mut r = http::Response::new(Vec::new());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub(super) fn append_query(r: &mut Response, pair: &str) {
    let Some(location) = r
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    if let Ok(v) = HeaderValue::from_str(&format!("{location}{sep}{pair}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
}

/// Adds `cookie`, if any (a renewed or cleared session cookie), to the response.
pub(super) fn with_cookie(r: &mut Response, cookie: Option<&str>) {
    if let Some(c) = cookie {
        add_cookie(r, c);
    }
}

pub(super) fn add_cookie(r: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub(super) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = http::Response::new(body.to_string().into_bytes());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(super) fn html_response(status: StatusCode, body: String) -> Response {
    let mut r = http::Response::new(body.into_bytes());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(&pages::CSP) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    r
}

/// Headers every auth response carries: never cached, never sniffed, never framed, and no
/// `Referer` (the callback URL holds a code).
pub(super) fn harden(h: &mut HeaderMap) {
    // Only the public key set (`/auth/jwks.json`) chooses its own caching.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// A redirect to the error page of `code`, keeping `callbackUrl` for "Back to sign-in".
pub(super) fn error_redirect(code: ErrorCode, callback: Option<&CallbackUrl>) -> Response {
    let mut target = format!("/auth/error?error={}", code.as_str());
    if let Some(c) = callback {
        target.push('&');
        target.push_str(&encode_param("callbackUrl", c.as_str()));
    }
    redirect(StatusCode::FOUND, &target)
}
