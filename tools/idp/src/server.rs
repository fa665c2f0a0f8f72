//! Routing, requests and responses, the provider's state, and starting the server.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Config;
use crate::http::{self, Delivery};
use crate::id_token::SigningKey;
use crate::pages;
use crate::store::Store;

mod authorization;
mod control;
mod discovery;
mod risc;
mod token;
mod userinfo;

pub use crate::http::MAX_BODY;
pub use risc::{
    PUSH_BODY_LIMIT, PUSH_DELIVERY_METHOD, PUSH_TIMEOUT, RISC_CONFIG_PATH, SET_CONTENT_TYPE, push,
};

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
    authorization_requests: AtomicU64,
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
            authorization_requests: AtomicU64::new(0),
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
            RISC_CONFIG_PATH if get => self.risc_configuration(),
            AUTH_PATH if get => self.authorize(req),
            pages::APPROVE_PATH if post => self.approve(req),
            TOKEN_PATH if post => self.token(req),
            USERINFO_PATH | USERINFO_PATH_V3 if get || post => self.userinfo(req),
            DISCOVERY_PATH | JWKS_PATH | AUTH_PATH | RISC_CONFIG_PATH => {
                method_not_allowed("GET, HEAD")
            }
            pages::APPROVE_PATH | TOKEN_PATH => method_not_allowed("POST"),
            USERINFO_PATH | USERINFO_PATH_V3 => method_not_allowed("GET, HEAD, POST"),
            path if path.starts_with(CONTROL_PREFIX) => self.control_endpoint(req),
            _ => Response::json(404, &json!({ "error": "not_found" })),
        }
    }
}

fn server_error() -> Response {
    Response::json(500, &json!({ "error": "server_error" }))
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
mod tests;
