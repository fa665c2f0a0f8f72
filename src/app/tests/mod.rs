use std::cell::{Cell, RefCell};

use std::future::Future;

use std::pin::pin;

use std::sync::OnceLock;

use std::task::{Context, Poll, Waker};

use base64::Engine as _;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use jwt_compact::alg::{ModulusBits, Rsa, RsaPrivateKey, RsaPublicKey};

use jwt_compact::jwk::JsonWebKey;

use jwt_compact::{AlgorithmExt, Claims, Header};

use sha2::{Digest, Sha256};

use super::*;

use crate::config::tests::config;

use crate::http::{HttpError, HttpRequest, HttpResponse};

use crate::store::memory::MemoryStore;

use crate::store::{
    AdminAction, AdminStore, Applied, AuditEntry, Delivery, Pulled, RiscChange, RiscStore,
    SessionInfo, SessionRecord, SessionStore, SignIn, SignInOutcome, StoreError, UserSummary,
};
use crate::store::{MaintenanceStore, Prunable};

const T0: i64 = 1_800_000_000;

const SITE: &str = "https://site.test";

const CLIENT_SECRET: &str = "shh-secret";

/// Runs a future that never waits (every fake answers at once).
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a fake would have blocked"),
    }
}

fn provider_key() -> &'static (RsaPrivateKey, RsaPublicKey) {
    static KEY: OnceLock<(RsaPrivateKey, RsaPublicKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let (sk, pk) = Rsa::generate(&mut rand::rngs::OsRng, ModulusBits::TwoKibibytes).unwrap();
        (sk.into_inner(), pk.into_inner())
    })
}

/// How the fake provider misbehaves for the next code.
#[derive(Clone, Default)]
struct Twist {
    token_status: Option<u16>,
    no_id_token: bool,
    unreachable: bool,
}

/// A Google stand-in that checks what Google checks.
#[derive(Default)]
struct FakeGoogle {
    pending: RefCell<Vec<(String, String, String, serde_json::Value)>>, // code, challenge, redirect, claims
    twist: RefCell<Twist>,
    jwks_fetches: Cell<usize>,
    risc_configuration_fetches: Cell<usize>,
}

impl FakeGoogle {
    fn id_token(claims: &serde_json::Value) -> String {
        let header = Header::empty().with_key_id("g1").with_token_type("JWT");
        Rsa::rs256()
            .token(&header, &Claims::new(claims.clone()), &provider_key().0)
            .unwrap()
    }

    fn json(status: u16, body: &serde_json::Value) -> HttpResponse {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", "public, max-age=3600")
            .body(body.to_string().into_bytes())
            .unwrap()
    }
}

impl HttpClient for FakeGoogle {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let twist = self.twist.borrow().clone();
        if twist.unreachable {
            return Err(HttpError("connection refused".into()));
        }
        let uri = req.uri().to_string();
        if uri == "https://accounts.google.com/.well-known/risc-configuration" {
            self.risc_configuration_fetches
                .set(self.risc_configuration_fetches.get() + 1);
            return Ok(Self::json(
                200,
                &serde_json::json!({
                    "issuer": "https://accounts.google.com/",
                    "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
                }),
            ));
        }
        if uri == "https://www.googleapis.com/oauth2/v3/certs" {
            self.jwks_fetches.set(self.jwks_fetches.get() + 1);
            let mut jwk = serde_json::to_value(JsonWebKey::from(&provider_key().1)).unwrap();
            jwk["kid"] = "g1".into();
            jwk["alg"] = "RS256".into();
            jwk["use"] = "sig".into();
            return Ok(Self::json(200, &serde_json::json!({ "keys": [jwk] })));
        }
        assert_eq!(uri, "https://oauth2.googleapis.com/token");
        assert_eq!(req.method(), http::Method::POST);
        let basic = req.headers()["authorization"]
            .to_str()
            .unwrap()
            .strip_prefix("Basic ")
            .unwrap();
        let basic = String::from_utf8(STANDARD.decode(basic).unwrap()).unwrap();
        assert_eq!(
            basic,
            format!("client-1:{CLIENT_SECRET}"),
            "client authentication"
        );
        if let Some(status) = twist.token_status {
            return Ok(Self::json(
                status,
                &serde_json::json!({ "error": "server_error" }),
            ));
        }
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(req.body())
                .into_owned()
                .collect();
        assert_eq!(form["grant_type"], "authorization_code");
        let mut pending = self.pending.borrow_mut();
        let Some(i) = pending.iter().position(|(c, ..)| *c == form["code"]) else {
            return Ok(Self::json(
                400,
                &serde_json::json!({ "error": "invalid_grant" }),
            ));
        };
        let (_, challenge, redirect, claims) = pending.remove(i);
        assert_eq!(form["redirect_uri"], redirect);
        let verifier_hash =
            URL_SAFE_NO_PAD.encode(Sha256::digest(form["code_verifier"].as_bytes()));
        if verifier_hash != challenge {
            return Ok(Self::json(
                400,
                &serde_json::json!({ "error": "invalid_grant" }),
            ));
        }
        let mut body = serde_json::json!({ "access_token": "ya29.x", "token_type": "Bearer", "expires_in": 3599 });
        if !twist.no_id_token {
            body["id_token"] = Self::id_token(&claims).into();
        }
        Ok(Self::json(200, &body))
    }
}

/// A store whose every session call is a real wait: it yields once before answering, so two
/// requests polled in turn interleave at each store call, as two requests do in an isolate.
struct Yielding<'a>(&'a MemoryStore);

/// Pending on the first poll, ready on the second.
#[derive(Default)]
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

impl SessionStore for Yielding<'_> {
    async fn sign_in(&self, sign_in: &SignIn) -> Result<SignInOutcome, StoreError> {
        YieldOnce::default().await;
        self.0.sign_in(sign_in).await
    }
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        YieldOnce::default().await;
        self.0.session(id).await
    }
    async fn changes_since(&self, since: UnixTime, limit: usize) -> Result<Pulled, StoreError> {
        YieldOnce::default().await;
        self.0.changes_since(since, limit).await
    }
    async fn seen(&self, ids: &[String], now: UnixTime) -> Result<(), StoreError> {
        YieldOnce::default().await;
        self.0.seen(ids, now).await
    }
    async fn revoke_session(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
        YieldOnce::default().await;
        self.0.revoke_session(id, now).await
    }
    async fn revoke_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<(), StoreError> {
        YieldOnce::default().await;
        self.0.revoke_user_sessions(user_id, now).await
    }
    async fn create_hand_off(
        &self,
        code: &crate::store::HandOff,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        YieldOnce::default().await;
        self.0.create_hand_off(code, now).await
    }
    async fn redeem_hand_off(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<Option<crate::store::HandOff>, StoreError> {
        YieldOnce::default().await;
        self.0.redeem_hand_off(code_hash, now).await
    }
    async fn hand_off_session(&self, s: &crate::store::SiteSession) -> Result<bool, StoreError> {
        YieldOnce::default().await;
        self.0.hand_off_session(s).await
    }
}

impl AdminStore for Yielding<'_> {
    async fn list_users(
        &self,
        search: Option<&str>,
        after: Option<&str>,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<UserSummary>, StoreError> {
        self.0.list_users(search, after, limit, now).await
    }
    async fn user(&self, id: &str, now: UnixTime) -> Result<Option<UserSummary>, StoreError> {
        self.0.user(id, now).await
    }
    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>, StoreError> {
        self.0.user_sessions(user_id).await
    }
    async fn apply(
        &self,
        actor_user_id: &str,
        action: &AdminAction,
        now: UnixTime,
    ) -> Result<Applied, StoreError> {
        self.0.apply(actor_user_id, action, now).await
    }
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.0.audit_log(limit).await
    }
}

impl RiscStore for Yielding<'_> {
    async fn security_event(
        &self,
        jti: &str,
        changes: &[RiscChange<'_>],
        now: UnixTime,
        forget_before: UnixTime,
    ) -> Result<Delivery, StoreError> {
        YieldOnce::default().await;
        self.0
            .security_event(jti, changes, now, forget_before)
            .await
    }
}

impl MaintenanceStore for Yielding<'_> {
    async fn prune_chunk(
        &self,
        what: Prunable,
        before: UnixTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        YieldOnce::default().await;
        self.0.prune_chunk(what, before, limit).await
    }
}

/// Deterministic randomness: each call a new counter value.
#[derive(Default)]
struct Counter(Cell<u8>);

impl Random for Counter {
    fn fill(&self, buf: &mut [u8]) {
        self.0.set(self.0.get().wrapping_add(1));
        buf.fill(self.0.get());
    }
}

#[derive(Default)]
struct Logs(RefCell<Vec<String>>);

impl Log for Logs {
    fn line(&self, line: &str) {
        self.0.borrow_mut().push(line.to_owned());
    }
}

struct World {
    config: Config,
    google: FakeGoogle,
    store: MemoryStore,
    jwks: RefCell<JwksCache>,
    sessions: RefCell<SessionMemory>,
    risc: RiscCache,
    logs: Logs,
    random: Counter,
    now: Cell<i64>,
}

struct Reply {
    status: u16,
    location: Option<String>,
    cookies: Vec<String>,
    body: String,
    headers: HeaderMap,
    forward: Option<Forward>,
}

impl Reply {
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap()[name.len() + 1..].to_owned())
    }
}

fn world(extra: &[(&str, &str)]) -> World {
    let mut vars = vec![("AUTH_URL", SITE), ("ADMIN_EMAILS", "boss@example.com")];
    vars.extend_from_slice(extra);
    World {
        config: config(&vars),
        google: FakeGoogle::default(),
        store: MemoryStore::default(),
        jwks: RefCell::default(),
        sessions: RefCell::default(),
        risc: RiscCache::default(),
        logs: Logs::default(),
        random: Counter::default(),
        now: Cell::new(T0),
    }
}

fn google_claims(email: &str, sub: &str) -> serde_json::Value {
    serde_json::json!({
        "iss": "https://accounts.google.com", "aud": "client-1", "azp": "client-1", "sub": sub,
        "email": email, "email_verified": true, "name": "Ada Lovelace",
        "picture": "https://lh3.googleusercontent.com/a/x", "iat": T0, "exp": T0 + 3600,
    })
}

impl World {
    fn request(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        // A path is on SITE; an absolute URL (another site of `SITES`) as it is.
        let url = if path_and_query.starts_with('/') {
            format!("{SITE}{path_and_query}")
        } else {
            path_and_query.to_owned()
        };
        let req = Request {
            method,
            url: Url::parse(&url).unwrap(),
            headers: map,
            body: body.as_bytes().to_vec(),
        };
        let reply = Self::reply(run(self.app(&self.store).handle(&req)));
        self.write_seen();
        reply
    }

    /// What the runtime does after a response: writes the queued `last_seen_at` batch (there
    /// after a delay, in `waitUntil`; here at once).
    fn write_seen(&self) {
        if self.sessions.borrow_mut().schedule_seen() {
            let ids = self.sessions.borrow_mut().take_seen();
            run(self.store.seen(&ids, UnixTime(self.now.get()))).unwrap();
        }
    }

    fn app<'w, S: UserStore>(&'w self, store: &'w S) -> App<'w, FakeGoogle, S> {
        App {
            config: &self.config,
            http: &self.google,
            store,
            random: &self.random,
            jwks: &self.jwks,
            rs256: &crate::oidc::rs256::NativeRs256,
            sessions: &self.sessions,
            risc: &self.risc,
            log: &self.logs,
            now: UnixTime(self.now.get()),
        }
    }

    /// Two page requests in flight at once, as two tabs send them: every store call yields
    /// once, and the two requests are polled in turn until both are done.
    fn pages_together(&self, path: &str, cookie: &str) -> (Reply, Reply) {
        let store = Yielding(&self.store);
        let app = self.app(&store);
        let req = || {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
            headers.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
            Request {
                method: Method::GET,
                url: Url::parse(&format!("{SITE}{path}")).unwrap(),
                headers,
                body: Vec::new(),
            }
        };
        let (ra, rb) = (req(), req());
        let (mut a, mut b) = (pin!(app.handle(&ra)), pin!(app.handle(&rb)));
        let (mut done_a, mut done_b) = (None, None);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..100 {
            if done_a.is_none()
                && let Poll::Ready(o) = a.as_mut().poll(&mut cx)
            {
                done_a = Some(o);
            }
            if done_b.is_none()
                && let Poll::Ready(o) = b.as_mut().poll(&mut cx)
            {
                done_b = Some(o);
            }
            if let (Some(_), Some(_)) = (&done_a, &done_b) {
                return (Self::reply(done_a.unwrap()), Self::reply(done_b.unwrap()));
            }
        }
        panic!("two requests did not finish in 100 turns");
    }

    fn reply(outcome: Outcome) -> Reply {
        match outcome {
            Outcome::Respond(r) => Reply {
                status: r.status().as_u16(),
                location: r
                    .headers()
                    .get("location")
                    .map(|v| v.to_str().unwrap().to_owned()),
                cookies: r
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_owned())
                    .collect(),
                body: String::from_utf8(r.body().clone()).unwrap(),
                headers: r.headers().clone(),
                forward: None,
            },
            Outcome::Forward(f) => Reply {
                status: 0,
                location: None,
                cookies: f.set_cookies.clone(),
                body: String::new(),
                headers: HeaderMap::new(),
                forward: Some(f),
            },
        }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request(Method::GET, path, headers, "")
    }

    /// Starts a sign-in; returns the state cookie and the authorization URL.
    fn start(&self, callback: &str) -> (String, Url) {
        let r = self.get(&format!("/auth/login/google?callbackUrl={callback}"), &[]);
        assert_eq!(r.status, 302);
        (
            r.cookie("__Host-gatehouse_state").unwrap(),
            Url::parse(r.location.as_ref().unwrap()).unwrap(),
        )
    }

    /// The provider's side: approves with `claims` (nonce filled from the request).
    fn approve(&self, authorize: &Url, mut claims: serde_json::Value) -> (String, String) {
        let q = |name: &str| {
            authorize
                .query_pairs()
                .find(|(k, _)| k == name)
                .unwrap()
                .1
                .into_owned()
        };
        if claims.get("nonce").is_none() {
            claims["nonce"] = q("nonce").into();
        }
        let code = format!(
            "code-{}",
            self.google.pending.borrow().len() + usize::try_from(self.now.get()).unwrap()
        );
        self.google.pending.borrow_mut().push((
            code.clone(),
            q("code_challenge"),
            q("redirect_uri"),
            claims,
        ));
        (code, q("state"))
    }

    fn callback(&self, state_cookie: &str, code: &str, state: &str) -> Reply {
        let cookie = format!("__Host-gatehouse_state={state_cookie}");
        self.get(
            &format!("/auth/callback/google?code={code}&state={state}"),
            &[("cookie", &cookie)],
        )
    }

    fn sign_in_with(&self, claims: serde_json::Value) -> Reply {
        let (state_cookie, authorize) = self.start("/docs/");
        let (code, state) = self.approve(&authorize, claims);
        self.callback(&state_cookie, &code, &state)
    }

    /// Signs in and returns the `Cookie` header value.
    fn sign_in(&self, email: &str, sub: &str) -> String {
        let r = self.sign_in_with(google_claims(email, sub));
        assert_eq!(
            r.status,
            302,
            "{:?} {}",
            r.location,
            self.logs.0.borrow().join("\n")
        );
        format!(
            "__Host-gatehouse_session={}",
            r.cookie("__Host-gatehouse_session")
                .expect("session cookie")
        )
    }

    fn page(&self, path: &str, cookie: &str) -> Reply {
        self.get(path, &[("cookie", cookie), ("accept", "text/html")])
    }

    fn session_json(&self, cookie: &str) -> serde_json::Value {
        serde_json::from_str(&self.get("/auth/session", &[("cookie", cookie)]).body).unwrap()
    }

    /// The pinned clock.
    fn now(&self) -> UnixTime {
        UnixTime(self.now.get())
    }

    fn advance(&self, secs: i64) {
        self.now.set(self.now.get() + secs);
    }

    /// The session id (`sid`) of the token in `cookie`, current or expired.
    fn session_id(&self, cookie: &str) -> String {
        let token = cookie.split_once('=').unwrap().1;
        match crate::session::token::verify(
            &self.config.keys,
            crate::session::token::UntrustedSession(token),
            SITE,
            self.now(),
        )
        .unwrap()
        {
            crate::session::token::Verified::Current(s)
            | crate::session::token::Verified::Expired(s) => s.claims().sid.clone(),
        }
    }

    fn user_id(&self, cookie: &str) -> String {
        self.session_json(cookie)["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn error_code(r: &Reply) -> &str {
    r.location
        .as_deref()
        .and_then(|l| l.strip_prefix("/auth/error?error="))
        .map_or("(no error redirect)", |rest| {
            rest.split('&').next().unwrap_or_default()
        })
}

impl World {
    /// Signs out with the CSRF token that the sign-out page shows to `cookie`.
    fn sign_out_from_page(&self, cookie: &str, query: &str) -> Reply {
        let page = self.get(
            "/auth/logout",
            &[("cookie", cookie), ("accept", "text/html")],
        );
        let marker = "name=\"csrfToken\" value=\"";
        let start = page.body.find(marker).expect("a CSRF token on the page") + marker.len();
        let token = page.body[start..].split('"').next().unwrap().to_owned();
        self.request(
            Method::POST,
            &format!("/auth/logout{query}"),
            &[("cookie", cookie), ("origin", SITE)],
            &format!("csrfToken={token}"),
        )
    }
}

/// The cookie a browser holds after visiting a page (renewed or not).
fn after_visit(w: &World, cookie: &str) -> String {
    w.page("/docs/", cookie)
        .cookie("__Host-gatehouse_session")
        .filter(|c| !c.is_empty())
        .map_or_else(
            || cookie.to_owned(),
            |c| format!("__Host-gatehouse_session={c}"),
        )
}

fn admin_post(w: &World, cookie: &str, fields: &[(&str, &str)]) -> Reply {
    let csrf: serde_json::Value =
        serde_json::from_str(&w.get("/auth/csrf", &[("cookie", cookie)]).body).unwrap();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("csrfToken", csrf["csrfToken"].as_str().unwrap());
    for (k, v) in fields {
        form.append_pair(k, v);
    }
    w.request(
        Method::POST,
        "/auth/admin",
        &[("cookie", cookie), ("origin", SITE)],
        &form.finish(),
    )
}

mod admin;
mod gate;
mod model;
mod one_gate;
mod risc;
mod sessions;
mod sign_in;
mod sites;
