//! Routing and the HTTP server.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use serde_json::{Value, json};
use url::Url;

use crate::authorize::{self, AuthError};
use crate::client_auth::{self, ClientAuthError};
use crate::config::Config;
use crate::id_token::{self, Identity, SigningKey, TokenInput};
use crate::pages;
use crate::params::Params;
use crate::store::{self, AuthRequest, Grant, RedeemError, Redemption, Store};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 64 * 1024;
/// Requests handled at once; a slow one does not hold up the others.
const WORKERS: usize = 8;

pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
pub const AUTH_PATH: &str = "/o/oauth2/v2/auth";
pub const TOKEN_PATH: &str = "/token";
pub const JWKS_PATH: &str = "/oauth2/v3/certs";
pub const USERINFO_PATH: &str = "/v1/userinfo";
const USERINFO_PATH_V3: &str = "/oauth2/v3/userinfo";

/// An HTTP request, reduced to what the provider reads.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub authorization: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "application/json; charset=utf-8".into())],
            body: value.to_string().into_bytes(),
        }
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

/// The provider: one client, one signing key, codes and tokens in memory.
pub struct Provider {
    issuer: String,
    client_id: String,
    client_secret: String,
    key: SigningKey,
    store: Mutex<Store>,
}

impl Provider {
    pub fn new(issuer: String, client_id: String, client_secret: String, key: SigningKey) -> Self {
        Self {
            issuer,
            client_id,
            client_secret,
            key,
            store: Mutex::new(Store::default()),
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
        Response::json(200, &json!({ "keys": [self.key.public_jwk()] }))
            .header("Cache-Control", "public, max-age=3600")
    }

    /// GET `/o/oauth2/v2/auth`: approve at once (`test_email`), refuse (`test_deny`), or show the
    /// account chooser.
    fn authorize(&self, req: &Request<'_>) -> Response {
        let params = match Params::parse(req.query.as_bytes()) {
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
        match authorize::identity_from(&params, "test_") {
            Ok(Some(identity)) => self.approve_as(auth, identity, 302),
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
            Ok(Some(identity)) => self.approve_as(auth, identity, 303),
            Ok(None) => chooser(&auth, None, Some("Enter an email address."), 400),
            Err(message) => chooser(&auth, params.get("email"), Some(&message), 400),
        }
    }

    /// Issues a code for `identity` and sends it back like Google does.
    fn approve_as(&self, auth: AuthRequest, identity: Identity, status: u16) -> Response {
        let redirect_uri = auth.redirect_uri.clone();
        let state = auth.state.clone();
        let granted = auth.scopes.granted();
        let grant = Grant {
            request: auth,
            identity,
            issuance: id_token::Issuance::default(),
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
        let is_form = req.content_type.is_some_and(|ct| {
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
            req.authorization,
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
        let input = TokenInput {
            issuer: &self.issuer,
            client_id: &self.client_id,
            identity: &grant.identity,
            scopes: grant.request.scopes,
            nonce: grant.request.nonce.as_deref(),
            access_token: &access_token,
            issuance: &grant.issuance,
            now: chrono::Utc::now(),
        };
        let id_token = match id_token::build_id_token(&self.key, &input) {
            Ok(token) => token,
            Err(_) => {
                return Response::oauth_error(500, "server_error", "Could not sign the ID token.");
            }
        };
        let body = json!({
            "access_token": access_token,
            "expires_in": store::ACCESS_TOKEN_LIFETIME.as_secs(),
            "token_type": "Bearer",
            "scope": grant.request.scopes.granted(),
            "id_token": id_token,
        });
        Response::json(200, &body)
            .header("Cache-Control", "no-store")
            .header("Pragma", "no-cache")
    }

    /// GET `/v1/userinfo` with `Authorization: Bearer <access token>`.
    fn userinfo(&self, req: &Request<'_>) -> Response {
        let token = req.authorization.and_then(|h| {
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
    addr: SocketAddr,
    provider: Arc<Provider>,
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT` of the listening socket.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn issuer(&self) -> &str {
        self.provider.issuer()
    }

    /// Serves until the process ends.
    pub fn wait(self) {
        for worker in self.workers {
            let _ = worker.join();
        }
    }

    /// Stops accepting requests and waits for the workers.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

/// Generates the signing key, binds, and starts the workers.
pub fn start(config: &Config) -> Result<Running, String> {
    let key = SigningKey::generate()?;
    let server = tiny_http::Server::http((config.host.as_str(), config.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or("not listening on an IP address")?;
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
    let server = Arc::new(server);
    let stopping = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::with_capacity(WORKERS);
    for i in 0..WORKERS {
        let (server, provider, stopping) = (server.clone(), provider.clone(), stopping.clone());
        let worker = std::thread::Builder::new()
            .name(format!("idp-worker-{i}"))
            .spawn(move || {
                loop {
                    match server.recv() {
                        Ok(request) => serve(&provider, request),
                        Err(_) if stopping.load(Ordering::SeqCst) => break,
                        Err(_) => {}
                    }
                }
            })
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        workers.push(worker);
    }
    Ok(Running {
        addr,
        provider,
        server,
        stopping,
        workers,
    })
}

/// Reads one request off the wire, answers it, and logs `METHOD /path STATUS` to stderr
/// (never the query or body: they carry codes, tokens and secrets).
fn serve(provider: &Provider, mut request: tiny_http::Request) {
    let method = request.method().as_str().to_owned();
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let header = |name: &str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().to_owned())
    };
    let authorization = header("Authorization");
    let content_type = header("Content-Type");

    let response = if request.body_length().is_some_and(|n| n > MAX_BODY) {
        Response::oauth_error(413, "invalid_request", "Request body too large.")
    } else {
        let mut body = Vec::new();
        let read = request
            .as_reader()
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut body);
        match read {
            Err(_) => Response::oauth_error(400, "invalid_request", "Unreadable request body."),
            Ok(_) if body.len() > MAX_BODY => {
                Response::oauth_error(413, "invalid_request", "Request body too large.")
            }
            Ok(_) => provider.handle(&Request {
                method: &method,
                path,
                query,
                authorization: authorization.as_deref(),
                content_type: content_type.as_deref(),
                body: &body,
            }),
        }
    };

    let logged_path: String = path
        .chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect();
    eprintln!("{method} {logged_path} {}", response.status);

    let mut out = tiny_http::Response::from_data(response.body).with_status_code(response.status);
    for (name, value) in &response.headers {
        match tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(h) => out.add_header(h),
            Err(()) => eprintln!("dropped invalid {name} header"),
        }
    }
    let _ = request.respond(out);
}
