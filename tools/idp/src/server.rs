//! Routing, the provider's state, and the test-only control endpoints.
//!
//! The control endpoints (`/_control/…`) are served on the provider's one listener, so they are
//! reachable exactly where the provider is (its `--host`), and refuse requests that carry an
//! `Origin` or a cross-site `Sec-Fetch-Site` header, i.e. anything a web page could send. See the
//! crate documentation for what each does.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use url::Url;

use crate::authorize::{self, AuthError};
use crate::client_auth::{self, ClientAuthError};
use crate::config::Config;
use crate::http::{self, Delivery};
use crate::id_token::{self, Identity, Issuance, SigningKey, TokenInput};
use crate::pages;
use crate::params::Params;
use crate::store::{self, AuthRequest, Grant, RedeemError, Redemption, Store};
use crate::twist::{self, Kind, Twist};

pub use crate::http::MAX_BODY;

pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
pub const AUTH_PATH: &str = "/o/oauth2/v2/auth";
pub const TOKEN_PATH: &str = "/token";
pub const JWKS_PATH: &str = "/oauth2/v3/certs";
pub const USERINFO_PATH: &str = "/v1/userinfo";
const USERINFO_PATH_V3: &str = "/oauth2/v3/userinfo";
/// Prefix of the test-only control endpoints.
pub const CONTROL_PREFIX: &str = "/_control/";

/// How long `token_stall` and the JWKS `stall` mode wait before answering.
pub const STALL: Duration = Duration::from_secs(30);
/// The pause between body bytes of `token_slow_body`.
pub const TRICKLE_INTERVAL: Duration = Duration::from_secs(1);
/// Size of the `token_huge` body.
pub const HUGE_BODY: usize = 3 * 1024 * 1024;
/// `token_endless` and the JWKS `endless` mode: bytes per chunk, and the pause between chunks
/// (about 3 MB/s, so a relying party's 1 MiB limit is passed within a second).
pub const ENDLESS_CHUNK: usize = 64 * 1024;
pub const ENDLESS_INTERVAL: Duration = Duration::from_millis(20);
/// Default JWKS `Cache-Control: max-age`.
pub const DEFAULT_JWKS_MAX_AGE: u32 = 3600;

/// An HTTP request, reduced to what the provider reads.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The value of header `name` (the first, if repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// How it goes on the wire (hostile mode can delay, trickle, or drop it).
    pub delivery: Delivery,
}

impl Response {
    fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "application/json; charset=utf-8".into())],
            body: value.to_string().into_bytes(),
            delivery: Delivery::Normal,
        }
    }

    /// A bare HTML body (for hostile answers; the provider's own pages use `html`).
    fn raw_html(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
            delivery: Delivery::Normal,
        }
    }

    fn deliver(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// The body as JSON (tests).
    pub fn json_body(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// An OAuth error body (`{"error","error_description"}`), never cached.
    fn oauth_error(status: u16, error: &str, description: &str) -> Self {
        Self::json(
            status,
            &json!({ "error": error, "error_description": description }),
        )
        .header("Cache-Control", "no-store")
    }

    fn html(status: u16, body: String, form_target: Option<&str>) -> Self {
        Self {
            status,
            headers: vec![
                ("Content-Type", "text/html; charset=utf-8".into()),
                ("Cache-Control", "no-store".into()),
                (
                    "Content-Security-Policy",
                    pages::content_security_policy(form_target),
                ),
                ("X-Frame-Options", "DENY".into()),
                ("X-Content-Type-Options", "nosniff".into()),
                ("Referrer-Policy", "no-referrer".into()),
            ],
            body: body.into_bytes(),
            delivery: Delivery::Normal,
        }
    }

    fn redirect(status: u16, location: String) -> Self {
        Self {
            status,
            headers: vec![
                ("Location", location),
                ("Cache-Control", "no-store".into()),
                ("Referrer-Policy", "no-referrer".into()),
            ],
            body: Vec::new(),
            delivery: Delivery::Normal,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of header `name`, if set.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn method_not_allowed(allow: &str) -> Response {
    Response::json(405, &json!({ "error": "method_not_allowed" })).header("Allow", allow)
}

/// How `/oauth2/v3/certs` answers (set with `POST /_control/jwks?mode=…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwksMode {
    /// The current key, honestly.
    Ok,
    /// 500 with an HTML body.
    Error500,
    /// The honest answer, after [`STALL`].
    Stall,
    /// 200 `{"nope":1}`.
    Garbage,
    /// 200, the start of a JSON object, then a body that never ends ([`Delivery::Endless`]).
    Endless,
    /// 200, the honest key set padded to [`HUGE_BODY`] (announced in `Content-Length`), sent one
    /// byte per [`TRICKLE_INTERVAL`].
    HugeSlow,
}

impl JwksMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(Self::Ok),
            "500" => Some(Self::Error500),
            "stall" => Some(Self::Stall),
            "garbage" => Some(Self::Garbage),
            "endless" => Some(Self::Endless),
            "huge_slow" => Some(Self::HugeSlow),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error500 => "500",
            Self::Stall => "stall",
            Self::Garbage => "garbage",
            Self::Endless => "endless",
            Self::HugeSlow => "huge_slow",
        }
    }
}

/// Process-wide behaviour set by the control endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Control {
    jwks_mode: JwksMode,
    jwks_max_age: u32,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            jwks_mode: JwksMode::Ok,
            jwks_max_age: DEFAULT_JWKS_MAX_AGE,
        }
    }
}

/// The provider: one client, one (rotatable) signing key, codes and tokens in memory.
pub struct Provider {
    issuer: String,
    client_id: String,
    client_secret: String,
    key: RwLock<Arc<SigningKey>>,
    /// The key of the `foreign_key` twist, made on first use; never in the JWKS.
    foreign_key: Mutex<Option<Arc<SigningKey>>>,
    store: Mutex<Store>,
    control: Mutex<Control>,
    jwks_requests: AtomicU64,
    token_requests: AtomicU64,
}

impl Provider {
    pub fn new(issuer: String, client_id: String, client_secret: String, key: SigningKey) -> Self {
        Self {
            issuer,
            client_id,
            client_secret,
            key: RwLock::new(Arc::new(key)),
            foreign_key: Mutex::new(None),
            store: Mutex::new(Store::default()),
            control: Mutex::new(Control::default()),
            jwks_requests: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic elsewhere cannot leave the maps half-updated in a way that matters here.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key that signs ID tokens now.
    pub fn key(&self) -> Arc<SigningKey> {
        self.key.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn foreign_key(&self) -> Result<Arc<SigningKey>, String> {
        let mut slot = self.foreign_key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = slot.as_ref() {
            return Ok(key.clone());
        }
        let key = Arc::new(SigningKey::generate()?);
        *slot = Some(key.clone());
        Ok(key)
    }

    /// Answers one request.
    pub fn handle(&self, req: &Request<'_>) -> Response {
        let get = matches!(req.method, "GET" | "HEAD");
        let post = req.method == "POST";
        match req.path {
            DISCOVERY_PATH if get => self.discovery(),
            JWKS_PATH if get => self.jwks(),
            AUTH_PATH if get => self.authorize(req),
            pages::APPROVE_PATH if post => self.approve(req),
            TOKEN_PATH if post => self.token(req),
            USERINFO_PATH | USERINFO_PATH_V3 if get || post => self.userinfo(req),
            DISCOVERY_PATH | JWKS_PATH | AUTH_PATH => method_not_allowed("GET, HEAD"),
            pages::APPROVE_PATH | TOKEN_PATH => method_not_allowed("POST"),
            USERINFO_PATH | USERINFO_PATH_V3 => method_not_allowed("GET, HEAD, POST"),
            path if path.starts_with(CONTROL_PREFIX) => self.control_endpoint(req),
            _ => Response::json(404, &json!({ "error": "not_found" })),
        }
    }

    fn discovery(&self) -> Response {
        let iss = &self.issuer;
        let doc = json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}{AUTH_PATH}"),
            "token_endpoint": format!("{iss}{TOKEN_PATH}"),
            "userinfo_endpoint": format!("{iss}{USERINFO_PATH}"),
            "jwks_uri": format!("{iss}{JWKS_PATH}"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": [
                "aud", "email", "email_verified", "exp", "family_name", "given_name",
                "hd", "iat", "iss", "name", "nonce", "picture", "sub"
            ],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code"],
        });
        Response::json(200, &doc).header("Cache-Control", "public, max-age=3600")
    }

    fn jwks(&self) -> Response {
        self.jwks_requests.fetch_add(1, Ordering::Relaxed);
        let control = *self.control();
        let cache = format!("public, max-age={}", control.jwks_max_age);
        let honest = || {
            Response::json(200, &json!({ "keys": [self.key().public_jwk()] }))
                .header("Cache-Control", cache.clone())
        };
        match control.jwks_mode {
            JwksMode::Ok => honest(),
            JwksMode::Stall => honest().deliver(Delivery::After(STALL)),
            JwksMode::Error500 => Response::raw_html(
                500,
                "<html><body><h1>500 Internal Server Error</h1></body></html>",
            ),
            JwksMode::Garbage => {
                Response::json(200, &json!({ "nope": 1 })).header("Cache-Control", cache)
            }
            JwksMode::Endless => Response {
                body: br#"{"keys":[],"padding":""#.to_vec(),
                ..Response::json(200, &json!({}))
            }
            .header("Cache-Control", cache)
            .deliver(Delivery::Endless {
                chunk: ENDLESS_CHUNK,
                interval: ENDLESS_INTERVAL,
            }),
            JwksMode::HugeSlow => {
                let mut set = json!({ "keys": [self.key().public_jwk()], "padding": "" });
                let filler = HUGE_BODY.saturating_sub(set.to_string().len());
                set["padding"] = "x".repeat(filler).into();
                Response::json(200, &set)
                    .header("Cache-Control", cache)
                    .deliver(Delivery::Trickle(TRICKLE_INTERVAL))
            }
        }
    }

    /// GET `/o/oauth2/v2/auth`: approve at once (`test_email`), refuse (`test_deny`), or show the
    /// account chooser.
    fn authorize(&self, req: &Request<'_>) -> Response {
        let params = match Params::parse_allowing_repeats(req.query.as_bytes(), &["test_twist"]) {
            Ok(p) => p,
            Err(name) => return repeated_parameter(&name),
        };
        let auth = match authorize::validate(&params, &self.client_id) {
            Ok(auth) => auth,
            Err(err) => return auth_error(err, 302),
        };
        if params
            .get("test_deny")
            .is_some_and(|v| v == "1" || v == "true")
        {
            return deny(&auth, 302);
        }
        let twists = match twist::parse_twists(params.get_all("test_twist")) {
            Ok(twists) => twists,
            Err(message) => return error_page("invalid_request", &message),
        };
        let issuance = Issuance {
            twists,
            ..Issuance::default()
        };
        match authorize::identity_from(&params, "test_") {
            Ok(Some(identity)) => self.approve_as(auth, identity, issuance, 302),
            Ok(None) if !issuance.twists.is_empty() => error_page(
                "invalid_request",
                "test_twist only works with automatic approval: add test_email.",
            ),
            Ok(None) => chooser(&auth, params.non_empty("login_hint"), None, 200),
            Err(message) => error_page("invalid_request", &message),
        }
    }

    /// POST `/o/oauth2/v2/auth/approve` from the chooser: the request is checked again exactly
    /// as on GET, since the form fields are whatever the browser sent.
    fn approve(&self, req: &Request<'_>) -> Response {
        let params = match Params::parse(req.body) {
            Ok(p) => p,
            Err(name) => return repeated_parameter(&name),
        };
        let auth = match authorize::validate(&params, &self.client_id) {
            Ok(auth) => auth,
            Err(err) => return auth_error(err, 303),
        };
        if params.has("deny") {
            return deny(&auth, 303);
        }
        match authorize::identity_from(&params, "") {
            Ok(Some(identity)) => self.approve_as(auth, identity, Issuance::default(), 303),
            Ok(None) => chooser(&auth, None, Some("Enter an email address."), 400),
            Err(message) => chooser(&auth, params.get("email"), Some(&message), 400),
        }
    }

    /// Issues a code for `identity` and sends it back like Google does.
    fn approve_as(
        &self,
        auth: AuthRequest,
        identity: Identity,
        issuance: Issuance,
        status: u16,
    ) -> Response {
        let redirect_uri = auth.redirect_uri.clone();
        let state = auth.state.clone();
        let granted = auth.scopes.granted();
        let grant = Grant {
            request: auth,
            identity,
            issuance,
        };
        let code = self.store().issue_code(grant, Instant::now());
        let mut pairs = Vec::new();
        if let Some(state) = state.as_deref() {
            pairs.push(("state", state));
        }
        pairs.extend([
            ("code", code.as_str()),
            ("scope", granted.as_str()),
            ("authuser", "0"),
            ("prompt", "consent"),
        ]);
        match authorize::redirect_with(&redirect_uri, &pairs) {
            Some(location) => Response::redirect(status, location),
            None => server_error(),
        }
    }

    /// POST `/token`: the authorization code grant.
    fn token(&self, req: &Request<'_>) -> Response {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        let is_form = req.header("Content-Type").is_some_and(|ct| {
            ct.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
        if !is_form {
            return Response::oauth_error(
                400,
                "invalid_request",
                "Expected application/x-www-form-urlencoded.",
            );
        }
        let form = match Params::parse(req.body) {
            Ok(f) => f,
            Err(_) => return Response::oauth_error(400, "invalid_request", "Repeated parameter."),
        };
        match client_auth::authenticate(
            req.header("Authorization"),
            &form,
            &self.client_id,
            &self.client_secret,
        ) {
            Ok(()) => {}
            Err(ClientAuthError::InvalidClient) => {
                return Response::oauth_error(401, "invalid_client", "Unauthorized")
                    .header("WWW-Authenticate", "Basic realm=\"gatehouse-idp\"");
            }
            Err(ClientAuthError::TwoMethods) => {
                return Response::oauth_error(
                    400,
                    "invalid_request",
                    "More than one client authentication method.",
                );
            }
        }
        match form.get("grant_type") {
            Some("authorization_code") => {}
            Some(_) => {
                return Response::oauth_error(400, "unsupported_grant_type", "Invalid grant_type.");
            }
            None => return Response::oauth_error(400, "invalid_request", "Missing grant_type."),
        }
        let Some(code) = form.non_empty("code") else {
            return Response::oauth_error(
                400,
                "invalid_request",
                "Missing required parameter: code",
            );
        };
        let access_token = format!("ya29.{}", store::random_urlsafe(48));
        let presented = Redemption {
            client_id: &self.client_id,
            redirect_uri: form.get("redirect_uri"),
            code_verifier: form.get("code_verifier"),
        };
        let redeemed = self
            .store()
            .redeem(code, &presented, &access_token, Instant::now());
        let grant = match redeemed {
            Ok(grant) => grant,
            Err(err) => {
                let description = match err {
                    RedeemError::Unknown => "Malformed auth code.",
                    RedeemError::Reused => "Bad Request",
                    RedeemError::Expired => "Auth code expired.",
                    RedeemError::WrongClient => "Unauthorized",
                    RedeemError::RedirectUriMismatch => {
                        "redirect_uri does not match the authorization request."
                    }
                    RedeemError::PkceFailed => "Missing or invalid code verifier.",
                };
                return Response::oauth_error(400, "invalid_grant", description);
            }
        };
        let twist = grant.issuance.twist_of(Kind::TokenEndpoint);
        match twist {
            Some(Twist::Token500) => {
                return Response::raw_html(
                    500,
                    "<html><body><h1>500 Internal Server Error</h1></body></html>",
                );
            }
            Some(Twist::Token503Json) => {
                return Response::json(503, &json!({ "error": "temporarily_unavailable" }));
            }
            Some(Twist::TokenNotJson) => return Response::raw_html(200, "<html>oops</html>"),
            Some(Twist::TokenErrorJson) => {
                return Response::oauth_error(400, "invalid_grant", "Bad Request");
            }
            Some(Twist::TokenClose) => return server_error().deliver(Delivery::Close),
            _ => {}
        }
        let mut body = json!({
            "access_token": access_token,
            "expires_in": store::ACCESS_TOKEN_LIFETIME.as_secs(),
            "token_type": "Bearer",
            "scope": grant.request.scopes.granted(),
        });
        match twist {
            Some(Twist::TokenNoIdToken) => {}
            Some(Twist::TokenIdTokenNotString) => body["id_token"] = json!(42),
            _ => match self.id_token(&grant, &access_token) {
                Ok(token) => body["id_token"] = token.into(),
                Err(_) => {
                    return Response::oauth_error(
                        500,
                        "server_error",
                        "Could not sign the ID token.",
                    );
                }
            },
        }
        if twist == Some(Twist::TokenEndless) {
            // The start of a JSON object whose string never ends.
            return Response {
                body: br#"{"padding":""#.to_vec(),
                ..Response::json(200, &json!({}))
            }
            .header("Cache-Control", "no-store")
            .deliver(Delivery::Endless {
                chunk: ENDLESS_CHUNK,
                interval: ENDLESS_INTERVAL,
            });
        }
        if matches!(twist, Some(Twist::TokenHuge | Twist::TokenHugeSlowBody)) {
            body["padding"] = "".into();
            let filler = HUGE_BODY.saturating_sub(body.to_string().len());
            body["padding"] = "x".repeat(filler).into();
        }
        let response = Response::json(200, &body)
            .header("Cache-Control", "no-store")
            .header("Pragma", "no-cache");
        match twist {
            Some(Twist::TokenStall) => response.deliver(Delivery::After(STALL)),
            Some(Twist::TokenSlowBody | Twist::TokenHugeSlowBody) => {
                response.deliver(Delivery::Trickle(TRICKLE_INTERVAL))
            }
            _ => response,
        }
    }

    /// The ID token for a redeemed grant, with its twists.
    fn id_token(&self, grant: &Grant, access_token: &str) -> Result<String, String> {
        let input = TokenInput {
            issuer: &self.issuer,
            client_id: &self.client_id,
            identity: &grant.identity,
            scopes: grant.request.scopes,
            nonce: grant.request.nonce.as_deref(),
            access_token,
            issuance: &grant.issuance,
            now: chrono::Utc::now(),
        };
        let foreign = if grant.issuance.has(Twist::ForeignKey) {
            Some(self.foreign_key()?)
        } else {
            None
        };
        id_token::build_id_token(&self.key(), foreign.as_deref(), &input)
    }

    /// `/_control/…`: test-only switches and counters.
    fn control_endpoint(&self, req: &Request<'_>) -> Response {
        let cross_site = req
            .header("Sec-Fetch-Site")
            .is_some_and(|s| !s.eq_ignore_ascii_case("none"));
        if req.header("Origin").is_some() || cross_site {
            return Response::json(403, &json!({ "error": "forbidden" }))
                .header("Cache-Control", "no-store");
        }
        let param = |name: &str| -> Option<String> {
            let from = |raw: &[u8]| {
                Params::parse(raw)
                    .ok()
                    .and_then(|p| p.get(name).map(str::to_owned))
            };
            from(req.query.as_bytes()).or_else(|| from(req.body))
        };
        let post = req.method == "POST";
        let get = matches!(req.method, "GET" | "HEAD");
        let bad = |message: &str| {
            Response::json(
                400,
                &json!({ "error": "invalid_request", "error_description": message }),
            )
            .header("Cache-Control", "no-store")
        };
        let response = match &req.path[CONTROL_PREFIX.len()..] {
            "rotate" if post => {
                let previous = self.key().kid().to_owned();
                match self.rotate() {
                    Ok(()) => {
                        let mut state = self.control_state();
                        state["previous_kid"] = previous.into();
                        Response::json(200, &state)
                    }
                    Err(_) => server_error(),
                }
            }
            "jwks" if post => match param("mode").as_deref().and_then(JwksMode::parse) {
                Some(mode) => {
                    self.control().jwks_mode = mode;
                    Response::json(200, &self.control_state())
                }
                None => return bad("mode must be ok, 500, stall, garbage, endless or huge_slow"),
            },
            "jwks_max_age" if post => match param("secs").and_then(|s| s.parse::<u32>().ok()) {
                Some(secs) => {
                    self.control().jwks_max_age = secs;
                    Response::json(200, &self.control_state())
                }
                None => return bad("secs must be a whole number of seconds"),
            },
            "reset" if post => {
                *self.control() = Control::default();
                self.jwks_requests.store(0, Ordering::Relaxed);
                self.token_requests.store(0, Ordering::Relaxed);
                Response::json(200, &self.control_state())
            }
            "stats" if get => Response::json(200, &self.stats()),
            "twists" if get => {
                let list: Vec<Value> = Twist::ALL
                    .iter()
                    .map(|t| {
                        json!({
                            "name": t.name(),
                            "kind": t.kind().name(),
                            "acceptable": t.is_acceptable(),
                        })
                    })
                    .collect();
                Response::json(200, &json!({ "twists": list }))
            }
            "rotate" | "jwks" | "jwks_max_age" | "reset" => return method_not_allowed("POST"),
            "stats" | "twists" => return method_not_allowed("GET, HEAD"),
            _ => Response::json(404, &json!({ "error": "not_found" })),
        };
        response.header("Cache-Control", "no-store")
    }

    /// Replaces the signing key with a fresh one (new `kid`); the old one leaves the JWKS.
    pub fn rotate(&self) -> Result<(), String> {
        let key = Arc::new(SigningKey::generate()?);
        *self.key.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }

    /// `{"jwks_requests": N, "token_requests": N}` since start or the last reset.
    pub fn stats(&self) -> Value {
        json!({
            "jwks_requests": self.jwks_requests.load(Ordering::Relaxed),
            "token_requests": self.token_requests.load(Ordering::Relaxed),
        })
    }

    fn control_state(&self) -> Value {
        let control = *self.control();
        json!({
            "kid": self.key().kid(),
            "jwks_mode": control.jwks_mode.name(),
            "jwks_max_age": control.jwks_max_age,
        })
    }

    /// GET `/v1/userinfo` with `Authorization: Bearer <access token>`.
    fn userinfo(&self, req: &Request<'_>) -> Response {
        let token = req.header("Authorization").and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        let Some(token) = token else {
            return Response::json(401, &json!({ "error": "invalid_request" }))
                .header("WWW-Authenticate", "Bearer")
                .header("Cache-Control", "no-store");
        };
        let store = self.store();
        match store.access_token(token, Instant::now()) {
            Some((identity, scopes)) => Response::json(200, &id_token::userinfo(identity, scopes))
                .header("Cache-Control", "no-store"),
            None => Response::json(401, &json!({ "error": "invalid_token" }))
                .header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
                .header("Cache-Control", "no-store"),
        }
    }
}

fn server_error() -> Response {
    Response::json(500, &json!({ "error": "server_error" }))
}

fn error_page(error: &str, message: &str) -> Response {
    Response::html(400, pages::error_page(error, message), None)
}

fn repeated_parameter(name: &str) -> Response {
    error_page(
        "invalid_request",
        &format!("Parameter included more than once: {name}"),
    )
}

fn auth_error(err: AuthError, status: u16) -> Response {
    match err {
        AuthError::Page { error, message } => error_page(error, &message),
        AuthError::Redirect {
            redirect_uri,
            state,
            error,
        } => match authorize::error_redirect(&redirect_uri, error, state.as_deref()) {
            Some(location) => Response::redirect(status, location),
            None => server_error(),
        },
    }
}

fn deny(auth: &AuthRequest, status: u16) -> Response {
    match authorize::error_redirect(&auth.redirect_uri, "access_denied", auth.state.as_deref()) {
        Some(location) => Response::redirect(status, location),
        None => server_error(),
    }
}

fn chooser(
    auth: &AuthRequest,
    login_hint: Option<&str>,
    error: Option<&str>,
    status: u16,
) -> Response {
    let target = Url::parse(&auth.redirect_uri).ok();
    let origin = target.as_ref().map(|u| u.origin().ascii_serialization());
    let client_name = target
        .as_ref()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| auth.client_id.clone());
    Response::html(
        status,
        pages::chooser(auth, &client_name, login_hint, error),
        origin.as_deref(),
    )
}

/// A running server.
pub struct Running {
    provider: Arc<Provider>,
    server: http::Server,
}

impl Running {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://HOST:PORT` of the listening socket.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn issuer(&self) -> &str {
        self.provider.issuer()
    }

    /// The provider behind the server.
    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    /// Serves until the process ends.
    pub fn wait(self) {
        self.server.wait();
    }

    /// Stops accepting requests, cuts stalled answers short, and closes open connections.
    pub fn stop(self) {
        self.server.stop();
    }
}

/// Generates the signing key, binds, and starts serving.
pub fn start(config: &Config) -> Result<Running, String> {
    let key = SigningKey::generate()?;
    let listener = TcpListener::bind((config.host.as_str(), config.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let issuer = config.issuer.clone().unwrap_or_else(|| {
        format!(
            "http://{}",
            crate::config::url_authority(&config.host, addr.port())
        )
    });
    let provider = Arc::new(Provider::new(
        issuer,
        config.client_id.clone(),
        config.client_secret.clone(),
        key,
    ));
    let handler = provider.clone();
    let server = http::Server::start(
        listener,
        Arc::new(move |req: &Request<'_>| handler.handle(req)),
    )
    .map_err(|e| format!("cannot start the server: {e}"))?;
    Ok(Running { provider, server })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const CID: &str = "cid.apps.googleusercontent.com";
    const SECRET: &str = "secret";
    // RFC 7636, Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn provider() -> Provider {
        Provider::new(
            "http://idp.test".into(),
            CID.into(),
            SECRET.into(),
            SigningKey::generate().unwrap(),
        )
    }

    fn call(
        p: &Provider,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        p.handle(&Request {
            method,
            path,
            query,
            headers: &headers,
            body,
        })
    }

    fn authorize(p: &Provider, extra: &[(&str, &str)]) -> Response {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.extend_pairs([
            ("client_id", CID),
            ("redirect_uri", "http://localhost:8787/cb"),
            ("response_type", "code"),
            ("scope", "openid email profile"),
            ("nonce", "nonce-1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]);
        query.extend_pairs(extra);
        call(
            p,
            "GET",
            &format!("{AUTH_PATH}?{}", query.finish()),
            &[],
            b"",
        )
    }

    fn code_for(p: &Provider, twists: &[&str]) -> String {
        let mut extra = vec![("test_email", "ada@example.com")];
        extra.extend(twists.iter().map(|t| ("test_twist", *t)));
        let resp = authorize(p, &extra);
        assert_eq!(resp.status, 302, "{}", String::from_utf8_lossy(&resp.body));
        let location = Url::parse(resp.header_value("Location").unwrap()).unwrap();
        location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    }

    fn redeem(p: &Provider, code: &str) -> Response {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", "http://localhost:8787/cb"),
                ("code_verifier", VERIFIER),
                ("client_id", CID),
                ("client_secret", SECRET),
            ])
            .finish();
        call(
            p,
            "POST",
            TOKEN_PATH,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    }

    fn sign_in(p: &Provider, twists: &[&str]) -> Response {
        let code = code_for(p, twists);
        redeem(p, &code)
    }

    fn part(token: &str, i: usize) -> Value {
        let segment = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    fn id_token_of(resp: &Response) -> String {
        resp.json_body().unwrap()["id_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn every_twist_reaches_the_token_response() {
        let p = provider();
        let kid = p.key().kid().to_owned();
        let honest = sign_in(&p, &[]);
        assert_eq!(honest.status, 200);
        assert_eq!(honest.delivery, Delivery::Normal);
        let honest_token = id_token_of(&honest);
        assert_eq!(part(&honest_token, 0)["kid"], kid.as_str());
        assert_eq!(part(&honest_token, 1)["aud"], CID);

        for twist in Twist::ALL {
            let resp = sign_in(&p, &[twist.name()]);
            let body = resp.json_body();
            match twist.kind() {
                Kind::Signing | Kind::Claims => {
                    assert_eq!(resp.status, 200, "{twist}");
                    assert_eq!(resp.delivery, Delivery::Normal, "{twist}");
                    let token = id_token_of(&resp);
                    assert_ne!(token.split('.').nth(2), honest_token.split('.').nth(2));
                    if *twist == Twist::Garbage {
                        assert_eq!(token, "not-a-jwt");
                    } else if twist.kind() == Kind::Claims {
                        assert_eq!(part(&token, 0)["kid"], kid.as_str(), "{twist}");
                        assert_eq!(part(&token, 0)["alg"], "RS256", "{twist}");
                    }
                }
                Kind::TokenEndpoint => {
                    let content_type = resp.header_value("Content-Type").unwrap_or_default();
                    match twist {
                        Twist::Token500 => {
                            assert_eq!(resp.status, 500);
                            assert!(content_type.starts_with("text/html"));
                            assert!(body.is_none());
                        }
                        Twist::Token503Json => {
                            assert_eq!(resp.status, 503);
                            assert_eq!(
                                body.unwrap(),
                                json!({ "error": "temporarily_unavailable" })
                            );
                        }
                        Twist::TokenNotJson => {
                            assert_eq!(resp.status, 200);
                            assert!(content_type.starts_with("text/html"));
                            assert_eq!(resp.body, b"<html>oops</html>");
                        }
                        Twist::TokenErrorJson => {
                            assert_eq!(resp.status, 400);
                            assert_eq!(
                                body.unwrap(),
                                json!({ "error": "invalid_grant", "error_description": "Bad Request" })
                            );
                        }
                        Twist::TokenNoIdToken => {
                            let body = body.unwrap();
                            assert_eq!(resp.status, 200);
                            assert!(body.get("id_token").is_none());
                            assert_eq!(body["token_type"], "Bearer");
                        }
                        Twist::TokenIdTokenNotString => {
                            assert_eq!(resp.status, 200);
                            assert_eq!(body.unwrap()["id_token"], 42);
                        }
                        Twist::TokenStall => {
                            assert_eq!(resp.status, 200);
                            assert_eq!(resp.delivery, Delivery::After(STALL));
                            assert_eq!(STALL, Duration::from_secs(30));
                            id_token_of(&resp);
                        }
                        Twist::TokenClose => assert_eq!(resp.delivery, Delivery::Close),
                        Twist::TokenHuge => {
                            assert_eq!(resp.status, 200);
                            assert_eq!(resp.body.len(), 3 * 1024 * 1024);
                            let token = id_token_of(&resp);
                            assert_eq!(part(&token, 0)["kid"], kid.as_str());
                        }
                        Twist::TokenSlowBody => {
                            assert_eq!(resp.status, 200);
                            assert_eq!(resp.delivery, Delivery::Trickle(Duration::from_secs(1)));
                            id_token_of(&resp);
                        }
                        Twist::TokenHugeSlowBody => {
                            assert_eq!(resp.status, 200);
                            assert_eq!(resp.body.len(), 3 * 1024 * 1024);
                            assert_eq!(resp.delivery, Delivery::Trickle(Duration::from_secs(1)));
                            id_token_of(&resp);
                        }
                        Twist::TokenEndless => {
                            assert_eq!(resp.status, 200);
                            assert_eq!(resp.body, br#"{"padding":""#);
                            assert!(matches!(resp.delivery, Delivery::Endless { .. }));
                        }
                        other => panic!("{other} is not a token endpoint twist"),
                    }
                    if *twist != Twist::TokenClose {
                        assert_eq!(
                            resp.delivery == Delivery::Normal,
                            !matches!(
                                twist,
                                Twist::TokenStall
                                    | Twist::TokenSlowBody
                                    | Twist::TokenHugeSlowBody
                                    | Twist::TokenEndless
                            )
                        );
                    }
                }
            }
        }
        // Twists combine across slots and are tied to their code only.
        let resp = sign_in(&p, &["wrong_iss,expired", "token_stall"]);
        assert_eq!(resp.delivery, Delivery::After(STALL));
        let claims = part(&id_token_of(&resp), 1);
        assert_eq!(claims["iss"], "https://evil.example");
        assert!(claims["exp"].as_i64().unwrap() < chrono::Utc::now().timestamp());
        let again = sign_in(&p, &[]);
        assert_eq!(again.delivery, Delivery::Normal);
        assert_eq!(part(&id_token_of(&again), 1)["iss"], "http://idp.test");
    }

    #[test]
    fn twisted_codes_are_still_single_use_and_checked() {
        let p = provider();
        let code = code_for(&p, &["token_500"]);
        assert_eq!(redeem(&p, &code).status, 500);
        let replay = redeem(&p, &code);
        assert_eq!(replay.status, 400);
        assert_eq!(replay.json_body().unwrap()["error"], "invalid_grant");
        // Client authentication comes first, twist or not.
        let code = code_for(&p, &["token_close"]);
        let resp = call(
            &p,
            "POST",
            TOKEN_PATH,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            format!("grant_type=authorization_code&code={code}&client_id={CID}&client_secret=x")
                .as_bytes(),
        );
        assert_eq!(resp.status, 401);
        assert_eq!(resp.delivery, Delivery::Normal);
    }

    #[test]
    fn bad_twist_requests_get_an_error_page() {
        let p = provider();
        let page = |extra: &[(&str, &str)]| {
            let resp = authorize(&p, extra);
            assert_eq!(resp.status, 400);
            assert!(resp.header_value("Location").is_none());
            String::from_utf8(resp.body).unwrap()
        };
        assert!(page(&[("test_email", "a@b.c"), ("test_twist", "nope")]).contains("nope"));
        assert!(
            page(&[
                ("test_email", "a@b.c"),
                ("test_twist", "no_iss"),
                ("test_twist", "wrong_iss")
            ])
            .contains("pick one")
        );
        assert!(page(&[("test_twist", "expired")]).contains("test_email"));
        // Other parameters still may not repeat.
        assert!(
            page(&[("test_email", "a@b.c"), ("test_email", "a@b.c")]).contains("more than once")
        );
    }

    fn control(p: &Provider, method: &str, target: &str) -> Response {
        call(p, method, &format!("{CONTROL_PREFIX}{target}"), &[], b"")
    }

    fn jwks_kids(p: &Provider) -> Vec<String> {
        call(p, "GET", JWKS_PATH, &[], b"").json_body().unwrap()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn rotate_replaces_the_key_everywhere() {
        let p = provider();
        let old = p.key().kid().to_owned();
        assert_eq!(jwks_kids(&p), std::slice::from_ref(&old));
        // A code issued before the rotation is signed with the key of its redemption.
        let code = code_for(&p, &[]);
        let resp = control(&p, "POST", "rotate");
        assert_eq!(resp.status, 200);
        let state = resp.json_body().unwrap();
        let new = state["kid"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert_eq!(state["previous_kid"], old.as_str());
        assert_eq!(jwks_kids(&p), std::slice::from_ref(&new));
        assert_eq!(
            part(&id_token_of(&redeem(&p, &code)), 0)["kid"],
            new.as_str()
        );
        // The foreign key is never the served one, before or after a rotation.
        let foreign = sign_in(&p, &["foreign_key"]);
        assert_eq!(part(&id_token_of(&foreign), 0)["kid"], new.as_str());
        assert_ne!(p.foreign_key().unwrap().kid(), new);
        // Reset keeps the current key.
        control(&p, "POST", "reset");
        assert_eq!(jwks_kids(&p), [new]);
        assert_eq!(control(&p, "GET", "rotate").status, 405);
    }

    #[test]
    fn jwks_modes_max_age_stats_and_reset() {
        let p = provider();
        let certs = || call(&p, "GET", JWKS_PATH, &[], b"");
        assert_eq!(
            certs().header_value("Cache-Control"),
            Some("public, max-age=3600")
        );
        assert_eq!(control(&p, "POST", "jwks_max_age?secs=5").status, 200);
        assert_eq!(
            certs().header_value("Cache-Control"),
            Some("public, max-age=5")
        );
        assert_eq!(control(&p, "POST", "jwks_max_age?secs=-1").status, 400);

        control(&p, "POST", "jwks?mode=500");
        let resp = certs();
        assert_eq!(resp.status, 500);
        assert!(resp.json_body().is_none());
        control(&p, "POST", "jwks?mode=garbage");
        let resp = certs();
        assert_eq!(
            (resp.status, resp.json_body().unwrap()),
            (200, json!({ "nope": 1 }))
        );
        control(&p, "POST", "jwks?mode=stall");
        let resp = certs();
        assert_eq!(resp.delivery, Delivery::After(STALL));
        assert_eq!(resp.json_body().unwrap()["keys"][0]["kid"], p.key().kid());
        // The mode may also come in a form body.
        let resp = call(&p, "POST", "/_control/jwks", &[], b"mode=ok");
        assert_eq!(resp.json_body().unwrap()["jwks_mode"], "ok");
        assert_eq!(certs().delivery, Delivery::Normal);
        assert_eq!(control(&p, "POST", "jwks?mode=nope").status, 400);

        sign_in(&p, &[]);
        redeem(&p, "4/0Anope");
        let stats = control(&p, "GET", "stats");
        assert_eq!(stats.header_value("Cache-Control"), Some("no-store"));
        assert_eq!(
            stats.json_body().unwrap(),
            json!({ "jwks_requests": 6, "token_requests": 2 })
        );

        control(&p, "POST", "jwks?mode=endless");
        let resp = certs();
        assert_eq!(resp.status, 200);
        assert!(matches!(resp.delivery, Delivery::Endless { .. }));
        control(&p, "POST", "jwks?mode=huge_slow");
        let resp = certs();
        assert_eq!(resp.body.len(), HUGE_BODY);
        assert_eq!(resp.delivery, Delivery::Trickle(TRICKLE_INTERVAL));
        assert_eq!(resp.json_body().unwrap()["keys"][0]["kid"], p.key().kid());

        control(&p, "POST", "jwks?mode=500");
        let reset = control(&p, "POST", "reset").json_body().unwrap();
        assert_eq!(reset["jwks_mode"], "ok");
        assert_eq!(reset["jwks_max_age"], 3600);
        assert_eq!(
            control(&p, "GET", "stats").json_body().unwrap(),
            json!({ "jwks_requests": 0, "token_requests": 0 })
        );
        let resp = certs();
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header_value("Cache-Control"),
            Some("public, max-age=3600")
        );
    }

    #[test]
    fn control_endpoints_refuse_browsers_and_list_twists() {
        let p = provider();
        for header in [
            ("Origin", "http://localhost:8787"),
            ("Sec-Fetch-Site", "cross-site"),
        ] {
            let resp = call(&p, "POST", "/_control/rotate", &[header], b"");
            assert_eq!(resp.status, 403);
        }
        let direct = call(
            &p,
            "GET",
            "/_control/stats",
            &[("Sec-Fetch-Site", "none")],
            b"",
        );
        assert_eq!(direct.status, 200);
        assert_eq!(control(&p, "GET", "nope").status, 404);
        assert_eq!(control(&p, "POST", "stats").status, 405);
        let list = control(&p, "GET", "twists").json_body().unwrap();
        let list = list["twists"].as_array().unwrap();
        assert_eq!(list.len(), Twist::ALL.len());
        assert_eq!(
            list[0],
            json!({ "name": "foreign_key", "kind": "signing", "acceptable": false })
        );
        let acceptable: Vec<_> = list
            .iter()
            .filter(|t| t["acceptable"] == true)
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            acceptable,
            [
                "aud_array_with_azp",
                "expired_within_leeway",
                "iat_future_within_leeway"
            ]
        );
    }
}
