//! The route table: `/auth/*` handlers and the gate. Plain data in, plain data out; the
//! runtime turns [`Outcome`] into a Workers response or a forward to the site.

use std::cell::RefCell;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;
use url::Url;

use crate::admin;
use crate::config::Config;
use crate::error::{AuthError, ErrorCode};
use crate::gate::{self, Decision};
use crate::http::HttpClient;
use crate::oidc::jwks::JwksCache;
use crate::oidc::{self, CallbackQuery};
use crate::pages;
use crate::random::Random;
use crate::redirect::CallbackUrl;
use crate::session::memory::{Renewal, SessionMemory};
use crate::session::token::{self, Reject, Session, SessionClaims, UntrustedSession, Verified};
use crate::session::{cookies, cookies::Jar, csrf};
use crate::site::Site;
use crate::store::{Applied, SignIn, SignInOutcome, UserStore};
use crate::time::UnixTime;

/// The hot path's verdict, decided synchronously from the `Cookie` header alone.
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

/// The hot path: what needs nothing but a signature check (a public path, or an unexpired
/// session token the path admits, for `ASSETS`) is decided here with no I/O and no
/// allocation beyond the URL and the token's claims; everything else gets [`Quick::Full`],
/// where [`App::handle`] decides with the same rules. `url` is the request's URL as the
/// runtime gives it, parsed here with the same parser as the full route's.
pub fn quick_decision(
    config: &Config,
    url: &str,
    cookie: Option<&str>,
    bearer: bool,
    now: UnixTime,
) -> Quick {
    if config.upstream_url.is_some() || bearer {
        return Quick::Full;
    }
    let Ok(url) = Url::parse(url) else {
        return Quick::Full;
    };
    let path = url.path();
    if path == "/auth" || path.starts_with("/auth/") {
        return Quick::Full;
    }
    match gate::admit(&config.gate, path, None) {
        Decision::Public => return Quick::Public,
        Decision::BadPath => return Quick::Full,
        _ => {}
    }
    let site = match &config.auth_url {
        Some(auth) => Site::from_url(auth),
        None => Site::from_url(&url),
    };
    let Some(raw) = cookie.and_then(|h| cookies::read(h, Jar::Session, &site)) else {
        return Quick::Full;
    };
    match token::verify(&config.keys, UntrustedSession(raw), site.origin(), now) {
        Ok(Verified::Current(session))
            if gate::admit(&config.gate, path, Some(&session)) == Decision::Admit =>
        {
            Quick::Admitted {
                until: session.lapses(),
            }
        }
        _ => Quick::Full,
    }
}

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
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Per-isolate memory of recent renewals and ended sessions.
    pub sessions: &'a RefCell<SessionMemory>,
    /// Logs.
    pub log: &'a dyn Log,
    /// Now.
    pub now: UnixTime,
}

/// A session found on a request, and what the response must do to the cookie.
#[derive(Default)]
struct Found {
    session: Option<Session>,
    set_cookie: Option<String>,
    /// A bearer token was sent but is not (or no longer) valid.
    bad_bearer: bool,
    /// The session came from `Authorization: Bearer`.
    from_bearer: bool,
    /// D1 could not be asked whether the session is still live: neither admitted nor ended.
    unavailable: bool,
}

/// The credential of an `Authorization: Bearer` header (the scheme is case-insensitive, as
/// RFC 9110 says), or `None` for no header or another scheme (e.g. Basic, the site's own).
fn bearer(req: &Request) -> Option<&str> {
    let (scheme, credential) = req.header(header::AUTHORIZATION)?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
}

impl<H: HttpClient, S: UserStore> App<'_, H, S> {
    /// Handles one request.
    pub async fn handle(&self, req: &Request) -> Outcome {
        let site = self.site(req);
        let path = req.url.path();
        if path == "/auth" || path.starts_with("/auth/") {
            let mut response = self.auth_route(req, &site).await;
            harden(response.headers_mut());
            if req.method == Method::HEAD {
                response.body_mut().clear();
            }
            return Outcome::Respond(response);
        }
        self.gate(req, &site).await
    }

    fn site(&self, req: &Request) -> Site {
        Site::from_url(self.config.auth_url.as_ref().unwrap_or(&req.url))
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
            ("/auth/logout", true, _) => self.logout_page(req, site).await,
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
                | "/auth/logout",
                _,
                _,
            ) => json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({ "error": "MethodNotAllowed" }),
            ),
            _ => json_response(StatusCode::NOT_FOUND, &json!({ "error": "NotFound" })),
        }
    }

    fn login_page(&self, req: &Request, site: &Site) -> Response {
        let callback = CallbackUrl::parse(&req.query("callbackUrl").unwrap_or_default(), site);
        let start = format!(
            "/auth/login/google?{}",
            encode_param("callbackUrl", callback.as_str())
        );
        let error = req.query("error").map(|e| ErrorCode::parse(&e));
        html_response(
            StatusCode::OK,
            pages::login(&self.site_name(site), &start, error),
        )
    }

    fn start(&self, req: &Request, site: &Site) -> Response {
        let callback = CallbackUrl::parse(&req.query("callbackUrl").unwrap_or_default(), site);
        match oidc::start(self.config, site, &callback, self.random, self.now) {
            Ok((url, state)) => {
                let mut r = redirect(StatusCode::FOUND, &url);
                add_cookie(
                    &mut r,
                    &cookies::set(Jar::State, site, &state, oidc::state::STATE_MAX_AGE),
                );
                r
            }
            Err(e) => {
                self.event("error", "signin_start_failed", req, Some(&e.reason()));
                self.error_redirect(ErrorCode::OAuthSignin, None)
            }
        }
    }

    async fn callback(&self, req: &Request, site: &Site) -> Response {
        let query = CallbackQuery {
            code: req.query("code"),
            state: req.query("state"),
            error: req.query("error"),
        };
        let state_cookie = req
            .header(header::COOKIE)
            .and_then(|h| cookies::read(h, Jar::State, site));
        let result = self.finish_sign_in(req, site, &query, state_cookie).await;
        // The state cookie is single use: cleared by every callback, success or failure.
        let mut response = match result {
            Ok((token, callback, max_age)) => {
                self.event("info", "signin", req, None);
                let mut r = redirect(StatusCode::FOUND, callback.as_str());
                add_cookie(&mut r, &cookies::set(Jar::Session, site, &token, max_age));
                r
            }
            Err(e) => {
                let level = if matches!(e.code(), ErrorCode::Configuration | ErrorCode::Unavailable)
                {
                    "error"
                } else {
                    "warn"
                };
                self.event(level, "signin_failed", req, Some(&e.reason()));
                let callback =
                    oidc::state::peek_callback(&self.config.keys, state_cookie, site.origin())
                        .map(|c| CallbackUrl::parse(&c, site));
                let cancelled =
                    matches!(&e, AuthError::ProviderDenied(code) if code == "access_denied");
                let mut r = self.error_redirect(e.code(), callback.as_ref());
                if cancelled {
                    // The person pressed "Cancel" at Google: say so in words, not as a failure.
                    append_query(&mut r, "cancelled=1");
                }
                r
            }
        };
        add_cookie(&mut response, &cookies::clear(Jar::State, site));
        response
    }

    async fn finish_sign_in(
        &self,
        req: &Request,
        site: &Site,
        query: &CallbackQuery,
        state_cookie: Option<&str>,
    ) -> Result<(String, CallbackUrl, i64), AuthError> {
        let provider = oidc::Provider {
            config: self.config,
            site,
            http: self.http,
            jwks: self.jwks,
            now: self.now,
        };
        let verified = provider.finish(query, state_cookie).await?;
        let claims = verified.claims;
        // An email is trusted (for allowlists, account creation, linking) only once verified.
        if claims.email_verified != Some(true) {
            return Err(AuthError::EmailNotVerified);
        }
        let email = claims.email.clone().unwrap_or_default();
        if !oidc::allowed(self.config, &email, claims.hd.as_deref()) {
            return Err(AuthError::NotAllowed);
        }
        let expires_at = self.now.plus(self.config.session_max_age);
        let sign_in = SignIn {
            provider: "google",
            subject: claims.sub.clone(),
            make_admin: self.is_admin_email(&email),
            email,
            name: claims.name.clone(),
            image: claims.picture.clone(),
            new_user_id: self.random.token(16),
            session_id: self.random.token(16),
            now: self.now,
            expires_at,
            user_agent: req
                .header(header::USER_AGENT)
                .map(|ua| ua.chars().take(256).collect()),
        };
        let user = match self
            .store
            .sign_in(&sign_in)
            .await
            .map_err(AuthError::Store)?
        {
            SignInOutcome::SignedIn { user, email_kept } => {
                if email_kept {
                    // No email in the line: the user id is enough to look the account up.
                    let why = format!(
                        "user {}: the Google account's new email belongs to another user; the stored email is kept",
                        user.id
                    );
                    self.event("warn", "email_conflict", req, Some(&why));
                }
                user
            }
            SignInOutcome::NotLinked => return Err(AuthError::SubjectNotLinked),
            SignInOutcome::Disabled => return Err(AuthError::UserDisabled),
        };
        let session_claims = SessionClaims {
            iss: site.origin().to_owned(),
            aud: site.origin().to_owned(),
            role: self.role_of(&user.email, &user.role),
            sub: user.id,
            sid: sign_in.session_id,
            email: user.email,
            name: user.name,
            picture: user.image,
            sxp: expires_at.secs(),
        };
        let token = token::issue(
            &self.config.keys,
            session_claims,
            self.now,
            self.config.session_check_interval,
        )
        .ok_or(AuthError::Signing)?;
        let callback = CallbackUrl::parse(verified.state.callback_url(), site);
        Ok((token, callback, self.config.session_max_age))
    }

    fn is_admin_email(&self, email: &str) -> bool {
        let email = email.to_lowercase();
        self.config.admin_emails.contains(&email)
    }

    /// `ADMIN_EMAILS` makes an admin at sign-in and at every renewal.
    fn role_of(&self, email: &str, stored: &str) -> String {
        if self.is_admin_email(email) {
            "admin".into()
        } else {
            stored.to_owned()
        }
    }

    /// The session of a request: a bearer token (never renewed), else the cookie (renewed
    /// with one D1 read once its token has expired).
    async fn find_session(&self, req: &Request, site: &Site) -> Found {
        // Another scheme (e.g. Basic for the site itself) is not ours: fall back to the cookie.
        if let Some(token) = bearer(req) {
            return match token::verify(
                &self.config.keys,
                UntrustedSession(token),
                site.origin(),
                self.now,
            ) {
                Ok(Verified::Current(session)) => Found {
                    session: Some(session),
                    from_bearer: true,
                    ..Found::default()
                },
                Ok(Verified::Expired(_)) | Err(_) => Found {
                    bad_bearer: true,
                    ..Found::default()
                },
            };
        }
        let Some(raw) = req
            .header(header::COOKIE)
            .and_then(|h| cookies::read(h, Jar::Session, site))
        else {
            return Found::default();
        };
        match token::verify(
            &self.config.keys,
            UntrustedSession(raw),
            site.origin(),
            self.now,
        ) {
            Ok(Verified::Current(session)) => Found {
                session: Some(session),
                ..Found::default()
            },
            Ok(Verified::Expired(session)) => self.renew(req, site, &session).await,
            Err(reject) => {
                self.event(
                    "info",
                    "session_rejected",
                    req,
                    Some(&format!("{reject:?}")),
                );
                Found {
                    set_cookie: Some(cookies::clear(Jar::Session, site)),
                    ..Found::default()
                }
            }
        }
    }

    /// One D1 read: a live session of a user who is not disabled gets a fresh token with the
    /// current role. Other tabs' tokens stay valid, so parallel renewals never log anyone out.
    /// What D1 said is remembered in this isolate ([`SessionMemory`]): the same renewal is
    /// handed out again until its token expires, and an ended session is refused for one
    /// interval, without asking D1 again.
    async fn renew(&self, req: &Request, site: &Site, expired: &Session) -> Found {
        let old = expired.claims();
        let ended = || Found {
            set_cookie: Some(cookies::clear(Jar::Session, site)),
            ..Found::default()
        };
        if self.sessions.borrow().is_ended(&old.sid, self.now) {
            self.event("info", "session_ended", req, Some("remembered"));
            return ended();
        }
        let remembered = self
            .sessions
            .borrow()
            .renewal(&old.sid, &old.sub, self.now)
            .map(|r| r.token.clone());
        if let Some(token) = remembered {
            return self.renewed_session(site, &token);
        }
        let record = match self.store.session(&old.sid).await {
            Ok(record) => record,
            Err(e) => {
                // The store is down: no session now, but the cookie is kept for a retry.
                self.event("error", "renewal_store_error", req, Some(&e.0));
                return Found {
                    unavailable: true,
                    ..Found::default()
                };
            }
        };
        let Some(record) = record.filter(|r| r.is_live(self.now) && r.user.id == old.sub) else {
            self.event("info", "session_ended", req, None);
            self.sessions.borrow_mut().remember_end(
                &old.sid,
                self.now.plus(self.config.session_check_interval),
                self.now,
            );
            return ended();
        };
        let claims = SessionClaims {
            iss: site.origin().to_owned(),
            aud: site.origin().to_owned(),
            sub: record.user.id.clone(),
            sid: record.id.clone(),
            role: self.role_of(&record.user.email, &record.user.role),
            email: record.user.email.clone(),
            name: record.user.name.clone(),
            picture: record.user.image.clone(),
            sxp: record.expires_at,
        };
        let Some(token) = token::issue(
            &self.config.keys,
            claims,
            self.now,
            self.config.session_check_interval,
        ) else {
            self.event("error", "renewal_signing_failed", req, None);
            return Found::default();
        };
        if let Err(e) = self.store.renewed(&record.id, self.now).await {
            self.event("warn", "renewal_touch_failed", req, Some(&e.0));
        }
        let found = self.renewed_session(site, &token);
        if let Some(session) = &found.session {
            self.sessions.borrow_mut().remember_renewal(
                &record.id,
                Renewal {
                    sub: record.user.id.clone(),
                    token,
                    until: session.token_expires(),
                },
                self.now,
            );
        }
        found
    }

    /// The session of a token this deployment just issued, and the cookie that carries it.
    fn renewed_session(&self, site: &Site, token: &str) -> Found {
        let Ok(Verified::Current(session)) = token::verify(
            &self.config.keys,
            UntrustedSession(token),
            site.origin(),
            self.now,
        ) else {
            return Found::default();
        };
        let max_age = session.claims().sxp - self.now.secs();
        Found {
            session: Some(session),
            set_cookie: Some(cookies::set(Jar::Session, site, token, max_age)),
            ..Found::default()
        }
    }

    /// Whether `token` is signed by this deployment's keys (valid or not for this request):
    /// such a token is a Gatehouse credential and never reaches the site.
    fn is_ours(&self, token: &str, site: &Site) -> bool {
        !matches!(
            token::verify(
                &self.config.keys,
                UntrustedSession(token),
                site.origin(),
                self.now
            ),
            Err(Reject::Key(_))
        )
    }

    async fn gate(&self, req: &Request, site: &Site) -> Outcome {
        let rules = &self.config.gate;
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
        let set_cookies: Vec<String> = found.set_cookie.iter().cloned().collect();
        let mut response = match gate::admit(rules, req.url.path(), found.session.as_ref()) {
            Decision::Public | Decision::Admit => {
                let identity = found.session.as_ref().map(|s| Identity {
                    user_id: s.claims().sub.clone(),
                    email: s.claims().email.clone(),
                    role: s.claims().role.clone(),
                });
                return Outcome::Forward(Forward {
                    identity,
                    set_cookies,
                    strip_authorization: found.from_bearer,
                });
            }
            Decision::NeedSession if found.unavailable => self.unavailable(req, site),
            Decision::NeedSession if req.is_navigation() => {
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
            Decision::NeedSession => {
                let mut r = json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({ "error": "SessionRequired" }),
                );
                let challenge = if found.bad_bearer {
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
                json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({ "error": "BadRequest", "reason": "unreadable path" }),
                )
            }
            Decision::WrongRole { required } => {
                let email = found
                    .session
                    .as_ref()
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
                    json_response(
                        StatusCode::FORBIDDEN,
                        &json!({ "error": "AccessDenied", "requiredRole": required }),
                    )
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

    async fn session_json(&self, req: &Request, site: &Site) -> Response {
        let found = self.find_session(req, site).await;
        if found.unavailable {
            return outage_json(ErrorCode::Unavailable);
        }
        let body = match &found.session {
            Some(s) => {
                let c = s.claims();
                json!({
                    "user": { "id": c.sub, "email": c.email, "name": c.name, "image": c.picture, "role": c.role },
                    "expires": UnixTime(c.sxp).to_rfc3339(),
                })
            }
            None => serde_json::Value::Null,
        };
        let mut r = json_response(StatusCode::OK, &body);
        if let Some(c) = &found.set_cookie {
            add_cookie(&mut r, c);
        }
        r
    }

    async fn csrf(&self, req: &Request, site: &Site) -> Response {
        let found = self.find_session(req, site).await;
        if found.unavailable {
            return outage_json(ErrorCode::Unavailable);
        }
        let mut r = match &found.session {
            Some(s) => json_response(
                StatusCode::OK,
                &json!({ "csrfToken": csrf::token(&self.config.keys, &s.claims().sid) }),
            ),
            None => json_response(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": "SessionRequired" }),
            ),
        };
        if let Some(c) = &found.set_cookie {
            add_cookie(&mut r, c);
        }
        r
    }

    async fn verify(&self, req: &Request, site: &Site) -> Response {
        let found = self.find_session(req, site).await;
        if found.unavailable {
            return outage_json(ErrorCode::Unavailable);
        }
        let Some(s) = &found.session else {
            let mut r = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": "SessionRequired" }),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        };
        let mut r = json_response(StatusCode::OK, &json!({ "ok": true }));
        let c = s.claims();
        for (name, value) in [
            ("x-auth-user-id", &c.sub),
            ("x-auth-email", &c.email),
            ("x-auth-role", &c.role),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                r.headers_mut().insert(name, v);
            }
        }
        if let Some(c) = &found.set_cookie {
            add_cookie(&mut r, c);
        }
        r
    }

    /// A session signed by us, even if its token has expired (then `false`): enough to show
    /// the sign-out page. Acting on an expired one needs D1's word first (see `logout`).
    fn signed_session(&self, req: &Request, site: &Site) -> Option<(Session, bool)> {
        let raw = req
            .header(header::COOKIE)
            .and_then(|h| cookies::read(h, Jar::Session, site))?;
        match token::verify(
            &self.config.keys,
            UntrustedSession(raw),
            site.origin(),
            self.now,
        ) {
            Ok(Verified::Current(s)) => Some((s, true)),
            Ok(Verified::Expired(s)) => Some((s, false)),
            Err(_) => None,
        }
    }

    async fn logout_page(&self, req: &Request, site: &Site) -> Response {
        let session = self.signed_session(req, site).map(|(s, _)| s);
        let callback = CallbackUrl::parse(&req.query("callbackUrl").unwrap_or_default(), site);
        let action = format!(
            "/auth/logout?{}",
            encode_param("callbackUrl", callback.as_str())
        );
        let action_all = format!("{action}&all=1");
        let token = session
            .as_ref()
            .map(|s| csrf::token(&self.config.keys, &s.claims().sid));
        let signed_in = session
            .as_ref()
            .zip(token.as_deref())
            .map(|(s, t)| (s.claims().email.as_str(), t));
        html_response(
            StatusCode::OK,
            pages::logout(&self.site_name(site), signed_in, &action, &action_all),
        )
    }

    async fn logout(&self, req: &Request, site: &Site) -> Response {
        let same_origin = same_origin(req, site);
        if !same_origin {
            self.event("warn", "logout_refused", req, Some("cross-origin"));
            return self.forbidden_json("cross-origin request");
        }
        let callback = CallbackUrl::parse(
            &req.query("callbackUrl")
                .or_else(|| req.form("callbackUrl"))
                .unwrap_or_default(),
            site,
        );
        let signed_out = || {
            // Nothing to revoke; make sure no stale cookie stays behind.
            let mut r = redirect(StatusCode::SEE_OTHER, callback.as_str());
            add_cookie(&mut r, &cookies::clear(Jar::Session, site));
            r
        };
        let Some((session, current)) = self.signed_session(req, site) else {
            return signed_out();
        };
        let presented = req.form("csrfToken").or_else(|| {
            req.header(header::HeaderName::from_static("x-csrf-token"))
                .map(str::to_owned)
        });
        if !presented.is_some_and(|t| csrf::check(&self.config.keys, &session.claims().sid, &t)) {
            self.event(
                "warn",
                "logout_refused",
                req,
                Some("missing or wrong CSRF token"),
            );
            return self.forbidden_json("missing or wrong CSRF token");
        }
        let all = req
            .query("all")
            .or_else(|| req.form("all"))
            .is_some_and(|v| v == "1" || v == "true");
        // Security decision: an expired token proves only that the session existed. A copy of a
        // revoked session's cookie must not sign the user out of their newer sessions, so an
        // action taken with an expired token first asks D1 whether the session is still live.
        if !current {
            match self.store.session(&session.claims().sid).await {
                Ok(Some(r)) if r.is_live(self.now) && r.user.id == session.claims().sub => {}
                Ok(_) => {
                    self.event("info", "logout_of_ended_session", req, None);
                    return signed_out();
                }
                Err(e) => return self.store_failed(req, site, "logout_store_error", &e),
            }
        }
        let revoked = if all {
            self.store
                .revoke_user_sessions(&session.claims().sub, self.now)
                .await
        } else {
            self.store
                .revoke_session(&session.claims().sid, self.now)
                .await
        };
        if let Err(e) = revoked {
            return self.store_failed(req, site, "logout_store_error", &e);
        }
        // This isolate stops handing out a remembered renewal of the session at once.
        self.sessions.borrow_mut().remember_end(
            &session.claims().sid,
            self.now.plus(self.config.session_check_interval),
            self.now,
        );
        self.event("info", if all { "logout_all" } else { "logout" }, req, None);
        let mut r = redirect(StatusCode::SEE_OTHER, callback.as_str());
        add_cookie(&mut r, &cookies::clear(Jar::Session, site));
        r
    }

    /// An admin's session. The token's role may be up to `SESSION_CHECK_INTERVAL` old, so
    /// admin rights are read from D1 (one read per admin request; admin pages are rare).
    async fn admin_session(
        &self,
        req: &Request,
        site: &Site,
    ) -> Result<(Session, String, Option<String>), Response> {
        let found = self.find_session(req, site).await;
        let need_session = |set_cookie: Option<&String>| {
            let mut r = if req.is_navigation() {
                let target = match req.url.query() {
                    Some(q) => format!("/auth/admin?{q}"),
                    None => "/auth/admin".to_owned(),
                };
                redirect(
                    StatusCode::FOUND,
                    &format!("/auth/login?{}", encode_param("callbackUrl", &target)),
                )
            } else {
                json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({ "error": "SessionRequired" }),
                )
            };
            if let Some(c) = set_cookie {
                add_cookie(&mut r, c);
            }
            r
        };
        if found.unavailable {
            return Err(self.unavailable(req, site));
        }
        let Some(session) = found.session else {
            return Err(need_session(found.set_cookie.as_ref()));
        };
        let record = match self.store.session(&session.claims().sid).await {
            Ok(Some(r)) if r.is_live(self.now) && r.user.id == session.claims().sub => r,
            Ok(_) => return Err(need_session(Some(&cookies::clear(Jar::Session, site)))),
            Err(e) => {
                return Err(self.store_failed(req, site, "admin_store_error", &e));
            }
        };
        if self.role_of(&record.user.email, &record.user.role) != "admin" {
            self.event("warn", "admin_refused", req, Some("not an admin"));
            let mut r = if req.is_navigation() {
                html_response(
                    StatusCode::FORBIDDEN,
                    pages::forbidden(&self.site_name(site), "admin", &record.user.email),
                )
            } else {
                json_response(
                    StatusCode::FORBIDDEN,
                    &json!({ "error": "AccessDenied", "requiredRole": "admin" }),
                )
            };
            if let Some(c) = &found.set_cookie {
                add_cookie(&mut r, c);
            }
            return Err(r);
        }
        Ok((session, record.user.email, found.set_cookie))
    }

    async fn admin_page(&self, req: &Request, site: &Site) -> Response {
        let (session, email, set_cookie) = match self.admin_session(req, site).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let mut r = match self.render_admin(req, site, &session, &email).await {
            Ok(html) => html_response(StatusCode::OK, html),
            Err(e) => self.store_failed(req, site, "admin_store_error", &e),
        };
        if let Some(c) = &set_cookie {
            add_cookie(&mut r, c);
        }
        r
    }

    async fn render_admin(
        &self,
        req: &Request,
        site: &Site,
        session: &Session,
        email: &str,
    ) -> Result<String, crate::store::StoreError> {
        let search = req.query("q").unwrap_or_default();
        let search = search.trim();
        let mut users = Vec::new();
        let mut next_url = None;
        let mut detail = None;
        let chosen = match req.query("user") {
            Some(id) => self.store.user(&id, self.now).await?,
            None => None,
        };
        if let Some(u) = chosen {
            let sessions = self.store.user_sessions(&u.user.id).await?;
            detail = Some(pages::UserDetail {
                id: u.user.id,
                email: u.user.email,
                name: u.user.name,
                role: u.user.role,
                created: admin::when(u.created_at),
                disabled: u.user.disabled_at.is_some(),
                sessions: sessions
                    .into_iter()
                    .map(|s| pages::SessionRow {
                        state: if s.revoked_at.is_some() {
                            "revoked"
                        } else if s.expires_at <= self.now.secs() {
                            "expired"
                        } else {
                            "active"
                        },
                        id: s.id,
                        created: admin::when(s.created_at),
                        last_seen: admin::when(s.last_seen_at),
                        user_agent: s.user_agent.unwrap_or_default(),
                    })
                    .collect(),
            });
        }
        if detail.is_none() {
            let after = req.query("after");
            let mut page = self
                .store
                .list_users(
                    (!search.is_empty()).then_some(search),
                    after.as_deref(),
                    admin::PAGE_SIZE + 1,
                    self.now,
                )
                .await?;
            if page.len() > admin::PAGE_SIZE as usize {
                page.truncate(admin::PAGE_SIZE as usize);
                if let Some(last) = page.last() {
                    let mut q = url::form_urlencoded::Serializer::new(String::new());
                    if !search.is_empty() {
                        q.append_pair("q", search);
                    }
                    q.append_pair("after", &last.user.email);
                    next_url = Some(format!("/auth/admin?{}", q.finish()));
                }
            }
            users = page
                .into_iter()
                .map(|u| pages::UserRow {
                    link: format!("/auth/admin?{}", encode_param("user", &u.user.id)),
                    email: u.user.email,
                    name: u.user.name.unwrap_or_default(),
                    role: u.user.role,
                    created: admin::when(u.created_at),
                    last_seen: u
                        .last_seen_at
                        .map_or_else(|| "never".to_owned(), admin::when),
                    active_sessions: u.active_sessions,
                    disabled: u.user.disabled_at.is_some(),
                })
                .collect();
        }
        let audit = self
            .store
            .audit_log(20)
            .await?
            .into_iter()
            .map(|a| pages::AuditRow {
                when: admin::when(a.created_at),
                actor: a.actor.unwrap_or_else(|| "command line".to_owned()),
                action: a.action,
                target: a.target.unwrap_or_default(),
            })
            .collect();
        let roles = admin::allowed_roles(self.config);
        let csrf_token = csrf::token(&self.config.keys, &session.claims().sid);
        let done = req.query("done");
        let refused = req.query("refused");
        let site_name = self.site_name(site);
        Ok(pages::admin(&pages::Admin {
            site_name: &site_name,
            actor_email: email,
            csrf_token: &csrf_token,
            interval: admin::duration(self.config.session_check_interval),
            message: done.as_deref().and_then(admin::done_message),
            refusal: refused.as_deref().and_then(admin::Refusal::message),
            search,
            users,
            next_url,
            detail,
            roles: &roles,
            audit,
        }))
    }

    async fn admin_post(&self, req: &Request, site: &Site) -> Response {
        if !same_origin(req, site) {
            self.event("warn", "admin_refused", req, Some("cross-origin"));
            return self.forbidden_json("cross-origin request");
        }
        let (session, _, set_cookie) = match self.admin_session(req, site).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let presented = req.form("csrfToken");
        if !presented.is_some_and(|t| csrf::check(&self.config.keys, &session.claims().sid, &t)) {
            self.event(
                "warn",
                "admin_refused",
                req,
                Some("missing or wrong CSRF token"),
            );
            return self.forbidden_json("missing or wrong CSRF token");
        }
        let roles = admin::allowed_roles(self.config);
        let actor = session.claims().sub.clone();
        let decided = admin::decide(|name| req.form(name), &actor, &roles);
        let target = req.form("user_id").unwrap_or_default();
        let back = |key: &str, value: &str| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            if !target.is_empty() {
                q.append_pair("user", &target);
            }
            q.append_pair(key, value);
            redirect(
                StatusCode::SEE_OTHER,
                &format!("/auth/admin?{}", q.finish()),
            )
        };
        let action = match decided {
            Ok(a) => a,
            Err(refusal) => {
                self.event("warn", "admin_refused", req, Some(refusal.code()));
                return back("refused", refusal.code());
            }
        };
        let mut r = match self.store.user(action.user_id(), self.now).await {
            Ok(None) => back("refused", admin::Refusal::UnknownUser.code()),
            Ok(Some(_)) => match self.store.apply(&actor, &action, self.now).await {
                Ok(Applied::Done) => {
                    self.event("info", "admin_action", req, Some(action.name()));
                    back("done", action.name())
                }
                // Nothing matched (say, a session that is not this user's): refused, not audited.
                Ok(Applied::NoMatch) => {
                    let refusal = admin::Refusal::no_match(&action);
                    self.event("warn", "admin_refused", req, Some(refusal.code()));
                    back("refused", refusal.code())
                }
                Err(e) => self.store_failed(req, site, "admin_store_error", &e),
            },
            Err(e) => self.store_failed(req, site, "admin_store_error", &e),
        };
        if let Some(c) = &set_cookie {
            add_cookie(&mut r, c);
        }
        r
    }

    /// D1 failed: a 503 "try again in a moment" (a JSON body for scripts), or the
    /// `Configuration` page when D1 says its tables are missing (migrations not applied).
    fn store_failed(
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
    fn unavailable(&self, req: &Request, site: &Site) -> Response {
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

    fn forbidden_json(&self, reason: &str) -> Response {
        json_response(
            StatusCode::FORBIDDEN,
            &json!({ "error": "Forbidden", "reason": reason }),
        )
    }

    fn error_redirect(&self, code: ErrorCode, callback: Option<&CallbackUrl>) -> Response {
        let mut target = format!("/auth/error?error={}", code.as_str());
        if let Some(c) = callback {
            target.push('&');
            target.push_str(&encode_param("callbackUrl", c.as_str()));
        }
        redirect(StatusCode::FOUND, &target)
    }

    fn error_page(
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

/// The JSON answer for an outage: `{"error": CODE}` with its status, never cached.
pub fn outage_json(code: ErrorCode) -> Response {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut r = json_response(status, &json!({ "error": code.as_str() }));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Whether a POST comes from a page of this site: the browser's `Origin` must be this site.
/// Browsers send `Origin: null` when the page's Referrer-Policy is `no-referrer` (ours is); then,
/// as when there is no `Origin`, `Sec-Fetch-Site: same-origin` (which no page can forge) must
/// say so. Together with the CSRF token this stops cross-site form posts.
fn same_origin(req: &Request, site: &Site) -> bool {
    let fetch_site = req.header(header::HeaderName::from_static("sec-fetch-site"));
    match req.header(header::ORIGIN) {
        Some("null") | None => fetch_site == Some("same-origin"),
        Some(origin) => origin == site.origin(),
    }
}

fn encode_param(name: &str, value: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish()
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut r = http::Response::new(Vec::new());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn append_query(r: &mut Response, pair: &str) {
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

fn add_cookie(r: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = http::Response::new(body.to_string().into_bytes());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn html_response(status: StatusCode, body: String) -> Response {
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
fn harden(h: &mut HeaderMap) {
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

#[cfg(test)]
mod tests;
