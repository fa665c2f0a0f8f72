//! The whole app natively: a fake Google (real RS256 ID tokens, PKCE and client checks),
//! the in-memory store, a pinned clock.

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
    now: Cell<i64>,
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
        let req = Request {
            method,
            url: Url::parse(&format!("{SITE}{path_and_query}")).unwrap(),
            headers: map,
            body: body.as_bytes().to_vec(),
        };
        self.google.now.set(self.now.get());
        let app = App {
            config: &self.config,
            http: &self.google,
            store: &self.store,
            random: &self.random,
            jwks: &self.jwks,
            sessions: &self.sessions,
            log: &self.logs,
            now: UnixTime(self.now.get()),
        };
        match run(app.handle(&req)) {
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

    fn advance(&self, secs: i64) {
        self.now.set(self.now.get() + secs);
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

#[test]
fn sign_in_sets_a_session_cookie_and_returns_to_the_callback_url() {
    let w = world(&[]);
    let r = w.sign_in_with(google_claims("ada@example.com", "111"));
    assert_eq!((r.status, r.location.as_deref()), (302, Some("/docs/")));
    let session = r
        .cookies
        .iter()
        .find(|c| c.starts_with("__Host-gatehouse_session="))
        .unwrap();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=2592000",
    ] {
        assert!(
            session.split("; ").any(|a| a == attr),
            "{attr} in {session}"
        );
    }
    assert!(session.len() < 1024, "{}", session.len());
    assert_eq!(
        r.cookie("__Host-gatehouse_state").as_deref(),
        Some(""),
        "state cookie cleared"
    );
    let cookie = format!(
        "__Host-gatehouse_session={}",
        r.cookie("__Host-gatehouse_session").unwrap()
    );
    let s = w.session_json(&cookie);
    assert_eq!(s["user"]["email"], "ada@example.com");
    assert_eq!(s["user"]["role"], "user");
    assert_eq!(s["expires"], UnixTime(T0 + 2_592_000).to_rfc3339());
}

#[test]
fn authorization_request_asks_for_openid_with_pkce_s256_and_a_nonce() {
    let w = world(&[]);
    let (_, url) = w.start("/");
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(
        url.as_str().split('?').next(),
        Some("https://accounts.google.com/o/oauth2/v2/auth")
    );
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], "https://site.test/auth/callback/google");
    assert!(q["nonce"].len() >= 43 && q["state"].len() >= 43);
    assert_ne!(q["nonce"], q["state"]);
}

#[test]
fn unsigned_visitors_are_sent_to_sign_in_and_apis_get_401() {
    let w = world(&[]);
    let r = w.get("/docs/?q=1", &[("accept", "text/html")]);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location.as_deref(),
        Some("/auth/login?callbackUrl=%2Fdocs%2F%3Fq%3D1")
    );
    let r = w.get("/docs/", &[("accept", "application/json")]);
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = w.request(Method::POST, "/docs/", &[("accept", "text/html")], "");
    assert_eq!(r.status, 401, "a POST is never redirected");
}

#[test]
fn hot_path_never_reads_the_store() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    for _ in 0..50 {
        w.advance(5);
        let r = w.page("/docs/", &cookie);
        assert!(
            r.forward.as_ref().is_some_and(|f| f.identity.is_some()),
            "admitted"
        );
        assert!(r.cookies.is_empty(), "no renewal while the token is fresh");
    }
    assert_eq!(w.store.reads.get(), 0);
}

#[test]
fn expired_token_is_renewed_with_one_read_and_the_current_role() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&cookie);
    w.store.update_user(&id, |u| u.role = "editor".into());
    w.advance(300);
    let r = w.page("/docs/", &cookie);
    let f = r.forward.expect("admitted after renewal");
    assert_eq!(f.identity.unwrap().role, "editor");
    assert_eq!(w.store.reads.get(), 1);
    assert_eq!(f.set_cookies.len(), 1);
    assert!(
        f.set_cookies[0].contains(&format!("Max-Age={}", 2_592_000 - 300)),
        "{:?}",
        f.set_cookies
    );
}

#[test]
fn parallel_tabs_renewing_the_same_token_both_stay_signed_in() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    w.advance(301);
    let a = w.page("/docs/", &cookie);
    let b = w.page("/docs/", &cookie);
    assert!(a.forward.is_some() && b.forward.is_some());
    let renewed = format!(
        "__Host-gatehouse_session={}",
        a.cookie("__Host-gatehouse_session").unwrap()
    );
    assert!(w.page("/docs/", &renewed).forward.is_some());
}

#[test]
fn revoked_session_ends_at_the_next_renewal() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let other = w.sign_in("ada@example.com", "111");
    let csrf: serde_json::Value =
        serde_json::from_str(&w.get("/auth/csrf", &[("cookie", &cookie)]).body).unwrap();
    let body = format!("csrfToken={}", csrf["csrfToken"].as_str().unwrap());
    let r = w.request(
        Method::POST,
        "/auth/logout",
        &[("cookie", &cookie), ("origin", SITE)],
        &body,
    );
    assert_eq!((r.status, r.location.as_deref()), (303, Some("/")));
    assert!(
        r.cookies
            .iter()
            .any(|c| c.starts_with("__Host-gatehouse_session=;") && c.contains("Max-Age=0"))
    );
    // Within the interval a copy of the token still works (the documented bound)...
    assert!(w.page("/docs/", &cookie).forward.is_some());
    w.advance(300);
    // ...after it, renewal refuses it; the other session is untouched.
    let r = w.page("/docs/", &cookie);
    assert_eq!(r.status, 302);
    assert!(
        r.cookies.iter().any(|c| c.contains("Max-Age=0")),
        "cookie cleared"
    );
    assert!(w.page("/docs/", &other).forward.is_some());
}

#[test]
fn a_form_posted_from_our_no_referrer_page_signs_out() {
    // Chromium sends `Origin: null` from a page with `Referrer-Policy: no-referrer`.
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let csrf: serde_json::Value =
        serde_json::from_str(&w.get("/auth/csrf", &[("cookie", &cookie)]).body).unwrap();
    let body = format!("csrfToken={}", csrf["csrfToken"].as_str().unwrap());
    let headers = [
        ("cookie", cookie.as_str()),
        ("origin", "null"),
        ("sec-fetch-site", "same-origin"),
    ];
    let r = w.request(Method::POST, "/auth/logout", &headers, &body);
    assert_eq!(r.status, 303);
}

#[test]
fn sign_out_everywhere_ends_every_session_of_the_user() {
    let w = world(&[]);
    let a = w.sign_in("ada@example.com", "111");
    let b = w.sign_in("ada@example.com", "111");
    let csrf: serde_json::Value =
        serde_json::from_str(&w.get("/auth/csrf", &[("cookie", &a)]).body).unwrap();
    let body = format!("csrfToken={}", csrf["csrfToken"].as_str().unwrap());
    let r = w.request(
        Method::POST,
        "/auth/logout?all=1",
        &[("cookie", &a), ("origin", SITE)],
        &body,
    );
    assert_eq!(r.status, 303);
    w.advance(300);
    assert_eq!(w.page("/docs/", &b).status, 302);
}

#[test]
fn disabled_user_is_out_within_the_interval() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&cookie);
    w.store.update_user(&id, |u| u.disabled_at = Some(T0));
    w.advance(300);
    assert_eq!(w.page("/docs/", &cookie).status, 302);
    let r = w.sign_in_with(google_claims("ada@example.com", "111"));
    assert_eq!(error_code(&r), "AccessDenied");
}

#[test]
fn sign_out_without_csrf_token_or_from_another_site_changes_nothing() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let csrf: serde_json::Value =
        serde_json::from_str(&w.get("/auth/csrf", &[("cookie", &cookie)]).body).unwrap();
    let good = format!("csrfToken={}", csrf["csrfToken"].as_str().unwrap());
    for (headers, body) in [
        (
            vec![("cookie", cookie.as_str()), ("origin", SITE)],
            String::new(),
        ),
        (
            vec![("cookie", cookie.as_str()), ("origin", SITE)],
            "csrfToken=forged".to_owned(),
        ),
        (
            vec![("cookie", cookie.as_str()), ("origin", "https://evil.test")],
            good.clone(),
        ),
        (
            vec![
                ("cookie", cookie.as_str()),
                ("sec-fetch-site", "cross-site"),
            ],
            good.clone(),
        ),
        (vec![("cookie", cookie.as_str())], good.clone()),
        (
            vec![("cookie", cookie.as_str()), ("origin", "null")],
            good.clone(),
        ),
        (
            vec![
                ("cookie", cookie.as_str()),
                ("origin", "null"),
                ("sec-fetch-site", "cross-site"),
            ],
            good.clone(),
        ),
    ] {
        let r = w.request(Method::POST, "/auth/logout", &headers, &body);
        assert_eq!(r.status, 403, "{headers:?} {body}");
        assert!(r.cookies.is_empty());
    }
    let r = w.get("/auth/logout", &[("cookie", &cookie)]);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("name=\"csrfToken\""), "{}", r.body);
    w.advance(300);
    assert!(
        w.page("/docs/", &cookie).forward.is_some(),
        "still signed in"
    );
}

#[test]
fn same_person_signing_in_twice_is_one_user() {
    let w = world(&[]);
    let a = w.sign_in("ada@example.com", "111");
    let b = w.sign_in("ADA@example.com", "111");
    assert_eq!(w.store.user_count(), 1);
    assert_eq!(w.user_id(&a), w.user_id(&b));
}

#[test]
fn new_google_account_with_a_taken_email_is_not_linked() {
    let w = world(&[]);
    w.sign_in("ada@example.com", "111");
    let r = w.sign_in_with(google_claims("ada@example.com", "222"));
    assert_eq!(error_code(&r), "OAuthAccountNotLinked");
    assert!(r.cookie("__Host-gatehouse_session").is_none());
    assert_eq!(w.store.user_count(), 1);
}

#[test]
fn admin_emails_get_the_admin_role() {
    let w = world(&[]);
    let cookie = w.sign_in("boss@example.com", "900");
    assert_eq!(w.session_json(&cookie)["user"]["role"], "admin");
}

#[test]
fn role_paths_need_their_role() {
    let w = world(&[("ROLE_PATHS", "/admin/*=admin")]);
    let user = w.sign_in("ada@example.com", "111");
    let boss = w.sign_in("boss@example.com", "900");
    assert_eq!(w.page("/admin/", &user).status, 403);
    let r = w.get(
        "/admin/x",
        &[("cookie", &user), ("accept", "application/json")],
    );
    assert_eq!(
        (r.status, r.body.contains("\"requiredRole\":\"admin\"")),
        (403, true)
    );
    assert!(w.page("/admin/", &boss).forward.is_some());
    assert!(w.page("/docs/", &user).forward.is_some());
}

#[test]
fn public_paths_pass_without_touching_sessions() {
    let w = world(&[("PUBLIC_PATHS", "/public/*")]);
    let r = w.get(
        "/public/a.html",
        &[
            ("accept", "text/html"),
            ("cookie", "__Host-gatehouse_session=garbage"),
        ],
    );
    assert_eq!(
        r.forward,
        Some(Forward {
            identity: None,
            set_cookies: vec![],
            strip_authorization: false,
        })
    );
}

#[test]
fn tampered_and_foreign_cookies_are_refused_and_cleared() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let mut tampered = cookie.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_site = world(&[("AUTH_URL", "https://other.test")]).sign_in("ada@example.com", "111");
    for c in [
        tampered.as_str(),
        other_site.as_str(),
        "__Host-gatehouse_session=%%%",
        "__Host-gatehouse_session=a.b.c",
    ] {
        let r = w.page("/docs/", c);
        assert_eq!(r.status, 302, "{c}");
        assert!(r.cookies.iter().any(|k| k.contains("Max-Age=0")), "{c}");
        assert_eq!(w.session_json(c), serde_json::Value::Null);
    }
}

#[test]
fn bearer_tokens_work_for_apis_but_are_never_renewed() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let token = cookie.split_once('=').unwrap().1.to_owned();
    let bearer = format!("Bearer {token}");
    let f = w
        .get("/api/x", &[("authorization", &bearer)])
        .forward
        .unwrap();
    assert!(
        f.strip_authorization,
        "the site never sees the session token"
    );
    // Another scheme is the site's own business: the cookie still decides.
    let r = w.get(
        "/api/x",
        &[("authorization", "Basic dTpw"), ("cookie", &cookie)],
    );
    assert!(r.forward.is_some_and(|f| !f.strip_authorization));
    w.advance(300);
    let r = w.get("/api/x", &[("authorization", &bearer)]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_eq!(w.store.reads.get(), 0);
}

#[test]
fn id_token_failures_end_on_the_callback_error_without_a_session() {
    type Twister = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Twister)> = vec![
        ("wrong nonce", Box::new(|c| c["nonce"] = "other".into())),
        (
            "wrong issuer",
            Box::new(|c| c["iss"] = "https://evil.test".into()),
        ),
        ("wrong audience", Box::new(|c| c["aud"] = "client-2".into())),
        (
            "several audiences without azp",
            Box::new(|c| {
                c["aud"] = serde_json::json!(["client-1", "client-2"]);
                c.as_object_mut().unwrap().remove("azp");
            }),
        ),
        ("foreign azp", Box::new(|c| c["azp"] = "client-2".into())),
        ("expired", Box::new(|c| c["exp"] = (T0 - 61).into())),
        (
            "issued in the future",
            Box::new(|c| c["iat"] = (T0 + 61).into()),
        ),
        (
            "no email",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("email");
            }),
        ),
    ];
    for (name, twist) in cases {
        let w = world(&[]);
        let mut claims = google_claims("ada@example.com", "111");
        let (state_cookie, authorize) = w.start("/");
        let q = |n: &str| {
            authorize
                .query_pairs()
                .find(|(k, _)| k == n)
                .unwrap()
                .1
                .into_owned()
        };
        claims["nonce"] = q("nonce").into();
        twist(&mut claims);
        let (code, state) = w.approve(&authorize, claims);
        let r = w.callback(&state_cookie, &code, &state);
        assert_eq!(error_code(&r), "OAuthCallbackError", "{name}");
        assert!(r.cookie("__Host-gatehouse_session").is_none(), "{name}");
        assert_eq!(w.store.user_count(), 0, "{name}");
    }
}

#[test]
fn unverified_email_is_not_trusted() {
    let w = world(&[]);
    let mut claims = google_claims("ada@example.com", "111");
    claims["email_verified"] = false.into();
    let r = w.sign_in_with(claims);
    assert_eq!(error_code(&r), "AccessDenied");
    assert_eq!(w.store.user_count(), 0);
}

#[test]
fn allowlists_admit_listed_emails_and_domains_only() {
    let w = world(&[
        ("ALLOWED_EMAIL_DOMAINS", "example.com"),
        ("ALLOWED_EMAILS", "guest@other.test"),
    ]);
    assert_eq!(
        w.sign_in_with(google_claims("ada@example.com", "1")).status,
        302
    );
    assert_eq!(
        w.sign_in_with(google_claims("Guest@Other.test", "2"))
            .location
            .as_deref(),
        Some("/docs/")
    );
    for email in [
        "eve@evil.test",
        "eve@example.com.evil.test",
        "eve@sub.example.com",
    ] {
        let r = w.sign_in_with(google_claims(email, "3"));
        assert_eq!(error_code(&r), "AccessDenied", "{email}");
    }
    assert_eq!(w.store.user_count(), 2);
}

#[test]
fn provider_failures_end_cleanly_and_logs_hold_no_secrets() {
    for (name, twist) in [
        (
            "token endpoint 500",
            Twist {
                token_status: Some(500),
                ..Twist::default()
            },
        ),
        (
            "no id_token",
            Twist {
                no_id_token: true,
                ..Twist::default()
            },
        ),
        (
            "unreachable",
            Twist {
                unreachable: true,
                ..Twist::default()
            },
        ),
    ] {
        let w = world(&[]);
        *w.google.twist.borrow_mut() = twist;
        let (state_cookie, authorize) = w.start("/");
        let (code, state) = w.approve(&authorize, google_claims("ada@example.com", "1"));
        let r = w.callback(&state_cookie, &code, &state);
        assert_eq!(error_code(&r), "OAuthCallbackError", "{name}");
        assert_eq!(
            r.cookie("__Host-gatehouse_state").as_deref(),
            Some(""),
            "{name}: state cleared"
        );
        let logs = w.logs.0.borrow().join("\n");
        assert!(logs.contains("signin_failed"), "{name}: {logs}");
        for secret in [
            code.as_str(),
            CLIENT_SECRET,
            state.as_str(),
            state_cookie.as_str(),
        ] {
            assert!(!logs.contains(secret), "{name}: log leaks {secret}");
        }
    }
}

#[test]
fn state_must_match_and_be_present() {
    let w = world(&[]);
    let (state_cookie, authorize) = w.start("/");
    let (code, _) = w.approve(&authorize, google_claims("ada@example.com", "1"));
    assert_eq!(
        error_code(&w.callback(&state_cookie, &code, "forged")),
        "OAuthCallbackError"
    );
    let r = w.get(&format!("/auth/callback/google?code={code}&state=x"), &[]);
    assert_eq!(error_code(&r), "OAuthCallbackError");
    assert_eq!(
        w.google.jwks_fetches.get(),
        0,
        "no code redeemed before the state check"
    );
}

#[test]
fn provider_error_on_the_callback_is_a_callback_error() {
    let w = world(&[]);
    let (state_cookie, authorize) = w.start("/docs/");
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let cookie = format!("__Host-gatehouse_state={state_cookie}");
    let r = w.get(
        &format!("/auth/callback/google?error=access_denied&state={state}"),
        &[("cookie", &cookie)],
    );
    assert_eq!(error_code(&r), "OAuthCallbackError");
    assert!(r.cookie("__Host-gatehouse_session").is_none());
    // The person's destination survives, and the page says "cancelled" in words.
    let location = r.location.unwrap();
    assert!(
        location.contains("callbackUrl=%2Fdocs%2F") && location.ends_with("&cancelled=1"),
        "{location}"
    );
    let page = w.get(&location, &[]);
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Sign-in was cancelled"));
    assert!(
        page.body
            .contains("href=\"/auth/login?callbackUrl=%2Fdocs%2F\""),
        "{}",
        page.body
    );
}

#[test]
fn store_failures_never_give_a_session() {
    let w = world(&[]);
    w.store.broken.set(true);
    let r = w.sign_in_with(google_claims("ada@example.com", "1"));
    // An outage is not the operator's configuration: "try again in a moment".
    assert_eq!(error_code(&r), "Unavailable");
    assert!(r.cookie("__Host-gatehouse_session").is_none());
    w.store.broken.set(false);
    let cookie = w.sign_in("ada@example.com", "1");
    w.store.broken.set(true);
    w.advance(300);
    let r = w.page("/docs/", &cookie);
    assert!(r.forward.is_none(), "no session while D1 is down");
    assert_eq!(r.status, 503, "not the sign-in page: {}", r.body);
    assert_eq!(r.headers["retry-after"], "5");
    assert!(
        r.body.contains("Try again") && r.body.contains("href=\"/docs/\""),
        "{}",
        r.body
    );
    assert!(!r.body.contains("not set up correctly"), "{}", r.body);
    assert!(r.cookies.is_empty(), "but the cookie is kept for later");
    let api = w.get(
        "/docs/",
        &[("cookie", &cookie), ("accept", "application/json")],
    );
    assert_eq!(
        (api.status, api.body.as_str()),
        (503, r#"{"error":"Unavailable"}"#)
    );
    let session = w.get("/auth/session", &[("cookie", &cookie)]);
    assert_eq!(
        session.status, 503,
        "not `null`, which would mean signed out"
    );
    assert_eq!(w.get("/auth/csrf", &[("cookie", &cookie)]).status, 503);
    assert_eq!(w.get("/auth/verify", &[("cookie", &cookie)]).status, 503);
    let admin = w.get(
        "/auth/admin",
        &[("cookie", &cookie), ("accept", "text/html")],
    );
    assert_eq!(admin.status, 503);
    w.store.broken.set(false);
    assert!(
        w.page("/docs/", &cookie).forward.is_some(),
        "back once D1 is"
    );
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

/// Issue 13, item 8: a copy of a revoked session's cookie, past its token's `exp`, cannot
/// sign the user out of their newer sessions.
#[test]
fn an_expired_copy_of_a_revoked_session_cannot_sign_out_everywhere() {
    let w = world(&[]);
    let stolen = w.sign_in("ada@example.com", "111");
    // The owner signs that session out (say, after losing the laptop) and signs in again.
    assert_eq!(w.sign_out_from_page(&stolen, "").status, 303);
    let fresh = w.sign_in("ada@example.com", "111");
    w.advance(301);
    // The thief's copy still gets the sign-out page with a CSRF token, but acting on it asks
    // D1 first: nothing is revoked, and the copy's cookie is cleared.
    let r = w.sign_out_from_page(&stolen, "?all=1");
    assert_eq!(r.status, 303);
    assert!(r.cookies.iter().any(|c| c.contains("Max-Age=0")));
    assert!(
        w.page("/docs/", &fresh).forward.is_some(),
        "the owner's new session lives on"
    );
    // A live session whose token expired may still sign out everywhere.
    let w = world(&[]);
    let a = w.sign_in("bo@example.com", "222");
    let b = w.sign_in("bo@example.com", "222");
    w.advance(301);
    assert_eq!(w.sign_out_from_page(&a, "?all=1").status, 303);
    assert_eq!(w.page("/docs/", &b).status, 302, "every session ended");
}

/// Issue 13, item 9: replaying one expired token (a client that never keeps the renewed
/// cookie, or a copy of a revoked session) costs one D1 read, not one per request.
#[test]
fn replaying_an_expired_token_reads_d1_once() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    w.advance(301);
    let first = w.page("/docs/", &cookie);
    let token = first.cookie("__Host-gatehouse_session").expect("renewed");
    for _ in 0..20 {
        let again = w.page("/docs/", &cookie);
        assert!(again.forward.is_some());
        assert_eq!(
            again.cookie("__Host-gatehouse_session"),
            Some(token.clone()),
            "the same renewal"
        );
    }
    assert_eq!(w.store.reads.get(), 1, "one D1 read for 21 requests");
    // The renewal is handed out only while its token is current: then D1 is asked again.
    w.advance(300);
    assert!(w.page("/docs/", &cookie).forward.is_some());
    assert_eq!(w.store.reads.get(), 2);

    // A revoked session is refused from memory for one interval.
    let id = w.user_id(&cookie);
    w.store.update_user(&id, |u| u.disabled_at = Some(T0));
    w.advance(301);
    for _ in 0..20 {
        assert_eq!(w.page("/docs/", &cookie).status, 302);
    }
    assert_eq!(
        w.store.reads.get(),
        3,
        "one read refuses, memory refuses the rest"
    );
    // Re-enabled: back within the interval, not never.
    w.store.update_user(&id, |u| u.disabled_at = None);
    w.advance(300);
    assert!(w.page("/docs/", &cookie).forward.is_some());
    assert_eq!(w.store.reads.get(), 4);
}

/// Issue 13, item 3: a session token never reaches the site.
#[test]
fn bearer_session_tokens_never_reach_the_site() {
    let w = world(&[("PUBLIC_PATHS", "/public/*")]);
    let cookie = w.sign_in("ada@example.com", "111");
    let token = cookie.split_once('=').unwrap().1.to_owned();
    // On a public path, in any scheme spelling.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {token}");
        let r = w.get("/public/x", &[("authorization", &auth)]);
        assert!(
            r.forward.unwrap().strip_authorization,
            "{scheme} on a public path"
        );
        // Next to a valid cookie on a protected path.
        let r = w.get("/docs/", &[("authorization", &auth), ("cookie", &cookie)]);
        assert!(
            r.forward.unwrap().strip_authorization,
            "{scheme} next to a cookie"
        );
    }
    // An expired one too (it is still ours), but not the site's own credentials.
    w.advance(301);
    let r = w.get(
        "/public/x",
        &[("authorization", &format!("bearer {token}"))],
    );
    assert!(r.forward.unwrap().strip_authorization);
    for theirs in ["Bearer site-api-key", "Basic dTpw"] {
        let r = w.get("/public/x", &[("authorization", theirs)]);
        assert!(!r.forward.unwrap().strip_authorization, "{theirs}");
    }
}

#[test]
fn jwks_is_fetched_once_and_cached() {
    let w = world(&[]);
    w.sign_in("a@example.com", "1");
    w.sign_in("b@example.com", "2");
    assert_eq!(w.google.jwks_fetches.get(), 1);
}

#[test]
fn auth_pages_are_never_cached_and_carry_a_strict_csp() {
    let w = world(&[]);
    for path in [
        "/auth/login",
        "/auth/error?error=AccessDenied",
        "/auth/logout",
        "/auth/session",
    ] {
        let r = w.get(path, &[]);
        assert_eq!(r.headers["cache-control"], "no-store", "{path}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers["referrer-policy"], "no-referrer", "{path}");
    }
    let r = w.get(
        "/auth/login?error=%3Cscript%3E&callbackUrl=%22%3E%3Cscript%3E",
        &[],
    );
    assert!(
        r.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(!r.body.contains("<script>"), "{}", r.body);
    assert_eq!(w.get("/auth/error?error=AccessDenied", &[]).status, 403);
    assert_eq!(w.get("/auth/error?error=Configuration", &[]).status, 500);
    assert_eq!(
        w.get("/auth/error?error=OAuthCallbackError", &[]).status,
        400
    );
}

#[test]
fn public_key_set_is_cacheable_and_never_holds_a_symmetric_key() {
    let w = world(&[]);
    let r = w.get("/auth/jwks.json", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["cache-control"], "public, max-age=300");
    assert_eq!(r.body, r#"{"keys":[]}"#);
}

#[test]
fn private_cache_control_keeps_stricter_directives() {
    assert_eq!(private_cache_control(None), "private");
    assert_eq!(
        private_cache_control(Some("public, max-age=3600")),
        "private, max-age=3600"
    );
    assert_eq!(private_cache_control(Some("no-store")), "private, no-store");
    assert_eq!(
        private_cache_control(Some("s-maxage=60, max-age=0, must-revalidate")),
        "private, max-age=0, must-revalidate"
    );
}

#[test]
fn shared_cache_headers_name_every_cdn_directive_header() {
    // Lower case, valid names: js/entry.mjs and the runtime compare and delete them as given.
    for name in SHARED_CACHE_HEADERS {
        let parsed = header::HeaderName::from_bytes(name.as_bytes()).unwrap();
        assert_eq!(parsed.as_str(), name);
    }
    for name in [
        "CDN-Cache-Control",
        "Cloudflare-CDN-Cache-Control",
        "Surrogate-Control",
    ] {
        assert!(
            SHARED_CACHE_HEADERS.contains(&name.to_ascii_lowercase().as_str()),
            "{name}"
        );
    }
}

#[test]
fn private_vary_adds_cookie_once() {
    assert_eq!(private_vary(None), "Cookie");
    assert_eq!(private_vary(Some(" ")), "Cookie");
    assert_eq!(
        private_vary(Some("Accept-Encoding")),
        "Accept-Encoding, Cookie"
    );
    for covered in ["Cookie", "accept-encoding, cookie", "*", "Accept, *"] {
        assert_eq!(private_vary(Some(covered)), covered);
    }
    // "Cookies" or "Set-Cookie" are other headers.
    assert_eq!(private_vary(Some("Set-Cookie")), "Set-Cookie, Cookie");
}

/// js/entry.mjs forwards ASSETS' response untouched when both answers equal what it already
/// says (a site that marks its own pages private, e.g. with `_headers`): so each must be
/// idempotent, and "unchanged" must mean "already private and varying on Cookie".
#[test]
fn marking_private_is_idempotent_and_unchanged_only_when_already_private() {
    for cc in [
        None,
        Some("public, max-age=60"),
        Some("no-store"),
        Some("private"),
        Some("private, max-age=60"),
        Some("Private"),
        Some("max-age=60, private"),
        Some("s-maxage=60"),
    ] {
        let once = private_cache_control(cc);
        assert_eq!(private_cache_control(Some(&once)), once, "{cc:?}");
        if cc == Some(once.as_str()) {
            assert!(once.starts_with("private"), "{cc:?}");
        }
    }
    assert_eq!(
        private_cache_control(Some("private, max-age=60")),
        "private, max-age=60"
    );
    for vary in [None, Some("Accept-Encoding"), Some("Cookie"), Some("*")] {
        let once = private_vary(vary);
        assert_eq!(private_vary(Some(&once)), once, "{vary:?}");
    }
}

#[test]
fn upstream_redirects_to_its_own_origin_point_back_at_the_site() {
    let up = Url::parse("https://my-site.pages.dev/").unwrap();
    for (loc, want) in [
        (
            "https://my-site.pages.dev/docs/?a=1",
            Some("https://site.test/docs/?a=1"),
        ),
        ("//my-site.pages.dev/x#f", Some("https://site.test/x#f")),
        // Scheme and host are case-insensitive.
        ("HTTPS://MY-SITE.pages.dev/x", Some("https://site.test/x")),
        (
            "Https://My-Site.Pages.Dev/x?q#f",
            Some("https://site.test/x?q#f"),
        ),
        // The other scheme on its own default port is still the upstream's host.
        ("http://my-site.pages.dev/x", Some("https://site.test/x")),
        (
            "HTTP://my-site.pages.dev/x?a=1",
            Some("https://site.test/x?a=1"),
        ),
        // The upstream's port, said out loud.
        (
            "https://my-site.pages.dev:443/x",
            Some("https://site.test/x"),
        ),
        // `\` is `/` in http(s) URLs: browsers follow these to the upstream's host.
        ("/\\my-site.pages.dev/x", Some("https://site.test/x")),
        ("\\\\my-site.pages.dev/x", Some("https://site.test/x")),
        (
            "\\/my-site.pages.dev/x?y#z",
            Some("https://site.test/x?y#z"),
        ),
        (
            "https:\\\\my-site.pages.dev\\a\\b",
            Some("https://site.test/a/b"),
        ),
        ("//MY-SITE.PAGES.DEV", Some("https://site.test/")),
        // A fully qualified name (trailing dot) is the same host.
        ("https://my-site.pages.dev./x", Some("https://site.test/x")),
        // Userinfo does not make it another host.
        (
            "https://user:pw@my-site.pages.dev/x",
            Some("https://site.test/x"),
        ),
        // Leading and trailing blanks are stripped by URL parsing, as browsers do.
        (
            "  https://my-site.pages.dev/x ",
            Some("https://site.test/x"),
        ),
        // Another port of that host is another service; other hosts are left alone.
        ("https://my-site.pages.dev:8443/x", None),
        (
            "http://my-site.pages.dev:443/x",
            Some("https://site.test/x"),
        ),
        ("https://other.test/x", None),
        ("//other.test/x", None),
        ("/\\other.test/x", None),
        ("https://my-site.pages.dev.evil.test/x", None),
        ("https://evil.test/my-site.pages.dev", None),
        ("ftp://my-site.pages.dev/x", None),
        ("javascript:alert(1)", None),
        // Relative references stay as they are (they already lead to the public site).
        ("/relative", None),
        ("relative", None),
        ("?q=1", None),
        ("#f", None),
        ("", None),
    ] {
        assert_eq!(rewrite_location(loc, &up, SITE).as_deref(), want, "{loc}");
    }
}

#[test]
fn upstream_on_a_port_is_matched_with_that_port_in_either_scheme() {
    let up = Url::parse("http://127.0.0.1:9000/").unwrap();
    let site = "http://127.0.0.1:8787";
    for (loc, want) in [
        (
            "http://127.0.0.1:9000/a?b",
            Some("http://127.0.0.1:8787/a?b"),
        ),
        ("HTTPS://127.0.0.1:9000/a", Some("http://127.0.0.1:8787/a")),
        ("//127.0.0.1:9000/a#c", Some("http://127.0.0.1:8787/a#c")),
        ("/\\127.0.0.1:9000/a", Some("http://127.0.0.1:8787/a")),
        // The upstream's host on a default port is not the upstream.
        ("http://127.0.0.1/a", None),
        ("https://127.0.0.1/a", None),
        // The public site itself, and relative references, are left as they are.
        ("http://127.0.0.1:8787/a", None),
        ("/a", None),
        ("//127.0.0.1:8787/a", None),
    ] {
        assert_eq!(rewrite_location(loc, &up, site).as_deref(), want, "{loc}");
    }
}

#[test]
fn hot_path_decides_only_what_a_signature_check_can() {
    let w = world(&[
        ("PUBLIC_PATHS", "/public/*"),
        ("ROLE_PATHS", "/admin/*=admin"),
    ]);
    let cookie = w.sign_in("ada@example.com", "111");
    let now = UnixTime(T0 + 10);
    let quick = |path: &str, cookie: Option<&str>, at: UnixTime| {
        quick_decision(&w.config, &format!("{SITE}{path}"), cookie, at)
    };
    let until = UnixTime(T0 + 300);
    assert_eq!(
        quick("/docs/", Some(&cookie), now),
        Quick::Admitted { until }
    );
    // `until` is exact: js/entry.mjs reuses the verdict while now < until, and so does this.
    assert_eq!(
        quick("/docs/", Some(&cookie), UnixTime(until.secs() - 1)),
        Quick::Admitted { until }
    );
    assert_eq!(quick("/docs/", Some(&cookie), until), Quick::Full);
    assert_eq!(quick("/public/x", None, now), Quick::Public);
    for (path, c, at, why) in [
        ("/docs/", None, now, "no session"),
        (
            "/docs/",
            Some(cookie.as_str()),
            UnixTime(T0 + 300),
            "expired: renewal needs D1",
        ),
        ("/admin/", Some(cookie.as_str()), now, "wrong role"),
        ("/auth/session", Some(cookie.as_str()), now, "auth routes"),
        ("/docs/%00", Some(cookie.as_str()), now, "odd path"),
        (
            "/docs/",
            Some("__Host-gatehouse_session=x.y.z"),
            now,
            "bad token",
        ),
    ] {
        assert_eq!(quick(path, c, at), Quick::Full, "{why}");
    }
    // What the runtime would never send, refused rather than guessed at.
    for url in ["not a url", "", "/docs/"] {
        assert_eq!(
            quick_decision(&w.config, url, Some(&cookie), now),
            Quick::Full,
            "{url}"
        );
    }
    // The query does not change the verdict; the path is the URL's, not the query's.
    assert!(matches!(
        quick("/docs/?next=/admin/", Some(&cookie), now),
        Quick::Admitted { .. }
    ));
    assert_eq!(quick("/admin/?x=/docs/", Some(&cookie), now), Quick::Full);
    let up = world(&[("UPSTREAM_URL", "https://my-site.pages.dev")]);
    assert_eq!(
        quick_decision(&up.config, &format!("{SITE}/docs/"), Some(&cookie), now),
        Quick::Full
    );
    // The full route agrees wherever the hot path admits.
    assert!(w.page("/docs/", &cookie).forward.is_some());
}

/// Which requests the hot path may decide at all: one filter for js/entry.mjs and the gate.
#[test]
fn only_plain_gets_without_credentials_or_identity_headers_take_the_hot_path() {
    let names = |list: &'static [&'static str]| list.iter().copied();
    assert!(hot_path_may_decide("GET", names(&["cookie", "accept"])));
    assert!(hot_path_may_decide("HEAD", names(&[])));
    for (method, headers) in [
        ("POST", &["cookie"][..]),
        ("GET", &["Authorization"][..]),
        ("GET", &["authorization", "cookie"][..]),
        ("GET", &["x-auth-role"][..]),
        ("GET", &["X-Auth-Anything"][..]),
        ("HEAD", &["x-AUTH-email"][..]),
    ] {
        assert!(
            !hot_path_may_decide(method, names(headers)),
            "{method} {headers:?}"
        );
    }
    assert!(
        hot_path_may_decide("GET", names(&["x-authority"])),
        "not an identity header"
    );
    assert_eq!(IDENTITY_HEADER_PREFIX, "x-auth-");
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

#[test]
fn admin_page_is_for_admins_only() {
    let w = world(&[]);
    let user = w.sign_in("ada@example.com", "111");
    let boss = w.sign_in("boss@example.com", "900");
    let r = w.get("/auth/admin", &[("accept", "text/html")]);
    assert_eq!(
        (r.status, r.location.as_deref()),
        (302, Some("/auth/login?callbackUrl=%2Fauth%2Fadmin"))
    );
    assert_eq!(w.page("/auth/admin", &user).status, 403);
    let r = w.page("/auth/admin", &boss);
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("ada@example.com") && r.body.contains("boss@example.com"),
        "{}",
        r.body
    );
    assert_eq!(r.headers["cache-control"], "no-store");
}

#[test]
fn admin_rights_come_from_d1_not_from_the_token() {
    let w = world(&[]);
    let ada = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&ada);
    // Promoted in D1: the token still says "user", but the admin page asks D1.
    w.store.update_user(&id, |u| u.role = "admin".into());
    assert_eq!(w.page("/auth/admin", &ada).status, 200);
    // Demoted in D1: a fresh token that still says "admin" is not enough.
    let boss = w.sign_in("carol@example.com", "333");
    let carol = w.user_id(&boss);
    w.store.update_user(&carol, |u| u.role = "admin".into());
    w.advance(300);
    let boss = format!(
        "__Host-gatehouse_session={}",
        w.page("/docs/", &boss)
            .cookie("__Host-gatehouse_session")
            .unwrap()
    );
    w.store.update_user(&carol, |u| u.role = "user".into());
    assert_eq!(w.page("/auth/admin", &boss).status, 403);
}

#[test]
fn admin_actions_change_d1_write_the_audit_log_and_end_sessions_within_the_interval() {
    let w = world(&[("ROLE_PATHS", "/finance/*=finance")]);
    let boss = w.sign_in("boss@example.com", "900");
    let ada = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&ada);

    let r = admin_post(
        &w,
        &boss,
        &[
            ("action", "set-role"),
            ("user_id", &id),
            ("role", "finance"),
        ],
    );
    assert_eq!(
        (r.status, r.location.as_deref()),
        (
            303,
            Some(format!("/auth/admin?user={id}&done=set-role").as_str())
        )
    );
    w.advance(300);
    let ada = format!(
        "__Host-gatehouse_session={}",
        w.page("/finance/", &ada)
            .cookie("__Host-gatehouse_session")
            .unwrap()
    );
    assert_eq!(w.session_json(&ada)["user"]["role"], "finance");

    let r = admin_post(&w, &boss, &[("action", "disable"), ("user_id", &id)]);
    assert_eq!(r.status, 303);
    w.advance(300);
    assert_eq!(
        w.page("/docs/", &ada).status,
        302,
        "a disabled user is out after the interval"
    );
    assert_eq!(
        error_code(&w.sign_in_with(google_claims("ada@example.com", "111"))),
        "AccessDenied"
    );
    admin_post(&w, &boss, &[("action", "enable"), ("user_id", &id)]);
    let ada = w.sign_in("ada@example.com", "111");

    let page = w.page(&format!("/auth/admin?user={id}"), &boss);
    assert!(page.body.contains("End session"), "{}", page.body);
    let boss = after_visit(&w, &boss);
    let r = admin_post(&w, &boss, &[("action", "revoke-all"), ("user_id", &id)]);
    assert_eq!(r.status, 303);
    w.advance(300);
    assert_eq!(w.page("/docs/", &ada).status, 302);

    let page = w.page("/auth/admin", &boss);
    for action in ["set-role", "disable", "enable", "revoke-all"] {
        assert!(
            page.body.contains(&format!("<td>{action}</td>")),
            "audit shows {action}"
        );
    }
}

#[test]
fn admin_posts_need_csrf_same_origin_and_no_self_lockout() {
    let w = world(&[]);
    let boss = w.sign_in("boss@example.com", "900");
    let me = w.user_id(&boss);
    let ada = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&ada);
    let body = format!("action=disable&user_id={id}");
    let r = w.request(
        Method::POST,
        "/auth/admin",
        &[("cookie", &boss), ("origin", SITE)],
        &body,
    );
    assert_eq!(r.status, 403, "no CSRF token");
    let r = w.request(
        Method::POST,
        "/auth/admin",
        &[("cookie", &boss), ("origin", "https://evil.test")],
        &body,
    );
    assert_eq!(r.status, 403, "cross-site");
    let r = admin_post(&w, &ada, &[("action", "disable"), ("user_id", &me)]);
    assert_eq!(r.status, 403, "not an admin");
    let r = admin_post(&w, &boss, &[("action", "disable"), ("user_id", &me)]);
    assert_eq!(
        r.location.as_deref(),
        Some(format!("/auth/admin?user={me}&refused=self-lockout").as_str())
    );
    let r = admin_post(
        &w,
        &boss,
        &[("action", "set-role"), ("user_id", &me), ("role", "user")],
    );
    assert!(r.location.unwrap().ends_with("refused=self-lockout"));
    let r = admin_post(
        &w,
        &boss,
        &[("action", "set-role"), ("user_id", &id), ("role", "root")],
    );
    assert!(r.location.unwrap().ends_with("refused=role-not-allowed"));
    let r = admin_post(&w, &boss, &[("action", "disable"), ("user_id", "nobody")]);
    assert!(r.location.unwrap().ends_with("refused=unknown-user"));
    w.advance(300);
    assert!(w.page("/docs/", &ada).forward.is_some(), "nothing changed");
    assert_eq!(w.session_json(&boss)["user"]["role"], "admin");
}

#[test]
fn admin_list_searches_and_pages_by_email() {
    let w = world(&[]);
    let boss = w.sign_in("boss@example.com", "900");
    for i in 0..60 {
        w.sign_in(&format!("user{i:02}@example.com"), &format!("s{i}"));
    }
    let page = w.page("/auth/admin", &boss);
    assert_eq!(page.body.matches("<tr><td><a href").count(), 50);
    assert!(page.body.contains("Next page"));
    let next = page
        .body
        .split("href=\"/auth/admin?after=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let page2 = w.page(
        &format!(
            "/auth/admin?after={}",
            next.replace("&#64;", "@").replace("%40", "@")
        ),
        &boss,
    );
    assert_eq!(
        page2.body.matches("<tr><td><a href").count(),
        11,
        "61 users: 50 + 11"
    );
    let found = w.page("/auth/admin?q=USER1", &boss);
    assert_eq!(found.body.matches("<tr><td><a href").count(), 10);
}

/// Another site cookie holding UTF-8 (`pref=café`) must not hide the session from the full
/// route: renewal, `/auth/session` and sign-out all read the same `Cookie` header the hot path
/// reads.
#[test]
fn a_utf8_site_cookie_does_not_hide_the_session() {
    let w = world(&[]);
    let session = w.sign_in("ada@example.com", "111");
    let cookie = format!("pref=café; {session}; 名=値");
    assert_eq!(
        w.session_json(&cookie)["user"]["email"],
        "ada@example.com",
        "/auth/session"
    );
    w.advance(300);
    let r = w.page("/docs/", &cookie);
    let f = r.forward.expect("admitted after renewal");
    assert!(f.identity.is_some());
    assert_eq!(f.set_cookies.len(), 1, "renewed: {:?}", f.set_cookies);
    let csrf: serde_json::Value =
        serde_json::from_str(&w.get("/auth/csrf", &[("cookie", &cookie)]).body).unwrap();
    let body = format!("csrfToken={}", csrf["csrfToken"].as_str().unwrap());
    let r = w.request(
        Method::POST,
        "/auth/logout",
        &[("cookie", &cookie), ("origin", SITE)],
        &body,
    );
    assert_eq!((r.status, r.location.as_deref()), (303, Some("/")));
    w.advance(300);
    assert_eq!(w.page("/docs/", &cookie).status, 302, "signed out");
}

#[test]
fn admin_actions_on_ids_that_match_nothing_are_refused_and_not_audited() {
    fn refs<'a>(f: &'a [(&'static str, String); 3]) -> [(&'static str, &'a str); 3] {
        f.each_ref().map(|(k, v)| (*k, v.as_str()))
    }
    let w = world(&[]);
    let boss = w.sign_in("boss@example.com", "900");
    let ada = w.sign_in("ada@example.com", "111");
    let bob = w.sign_in("bob@example.com", "222");
    let ada_id = w.user_id(&ada);
    let sid = |cookie: &str| {
        let token = cookie.split_once('=').unwrap().1;
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["sid"].as_str().unwrap().to_owned()
    };
    let (session_of_ada, session_of_bob) = (sid(&ada), sid(&bob));
    let before = w.store.audit_count();
    let refused = |fields: &[(&str, &str)], code: &str| {
        let r = admin_post(&w, &boss, fields);
        assert_eq!(r.status, 303);
        let location = r.location.unwrap();
        assert!(
            location.ends_with(&format!("refused={code}")),
            "{fields:?}: {location}"
        );
        let page = w.page(&location, &boss);
        assert!(page.body.contains("nothing was changed"), "{}", page.body);
    };
    let revoke = |session: &str| -> [(&str, String); 3] {
        [
            ("action", "revoke-session".into()),
            ("user_id", ada_id.clone()),
            ("session_id", session.into()),
        ]
    };
    // No such session; another user's session.
    refused(&refs(&revoke("no-such-session")), "unknown-session");
    refused(&refs(&revoke(&session_of_bob)), "unknown-session");
    assert!(
        !w.store.is_revoked(&session_of_bob),
        "bob's session is untouched"
    );
    // A real one is done once; then it has ended.
    let own = revoke(&session_of_ada);
    let r = admin_post(&w, &boss, &refs(&own));
    assert!(r.location.unwrap().ends_with("done=revoke-session"));
    refused(&refs(&own), "unknown-session");
    // Nothing live left to end.
    refused(
        &[("action", "revoke-all"), ("user_id", &ada_id)],
        "no-sessions",
    );
    assert_eq!(
        w.store.audit_count(),
        before + 1,
        "only the real revocation"
    );
    let audit = w.page("/auth/admin", &boss);
    assert_eq!(audit.body.matches("<td>revoke-session</td>").count(), 1);
    assert!(!audit.body.contains("<td>revoke-all</td>"));
    let warned = w.logs.0.borrow();
    assert!(
        warned
            .iter()
            .any(|l| l.contains("admin_refused") && l.contains("unknown-session")),
        "{warned:?}"
    );
}

#[test]
fn the_stored_email_follows_the_google_account() {
    let w = world(&[]);
    let old = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&old);
    // Google now says another address for the same account; it is listed in ADMIN_EMAILS.
    let new = w.sign_in("boss@example.com", "111");
    assert_eq!(w.store.user_count(), 1);
    let me = w.session_json(&new);
    assert_eq!(
        (me["user"]["id"].as_str(), me["user"]["email"].as_str()),
        (Some(id.as_str()), Some("boss@example.com"))
    );
    assert_eq!(me["user"]["role"], "admin");
    let identity = w.page("/docs/", &new).forward.unwrap().identity.unwrap();
    assert_eq!(
        (identity.email.as_str(), identity.role.as_str()),
        ("boss@example.com", "admin")
    );
    // The older session gets the current address at its next renewal.
    w.advance(300);
    let old = after_visit(&w, &old);
    assert_eq!(w.session_json(&old)["user"]["email"], "boss@example.com");
    assert!(
        !w.logs
            .0
            .borrow()
            .iter()
            .any(|l| l.contains("email_conflict")),
        "no conflict here"
    );
}

#[test]
fn a_new_email_of_another_user_is_not_taken_and_is_logged() {
    let w = world(&[]);
    w.sign_in("ada@example.com", "111");
    w.sign_in("boss@example.com", "900");
    let bob = w.sign_in("bob@example.com", "222");
    let bob_id = w.user_id(&bob);
    // Bob's Google account now says Ada's address (other letter case): signed in as before.
    let again = w.sign_in("ADA@example.com", "222");
    let me = w.session_json(&again);
    assert_eq!(me["user"]["id"], bob_id.as_str());
    assert_eq!(me["user"]["email"], "bob@example.com");
    let identity = w.page("/docs/", &again).forward.unwrap().identity.unwrap();
    assert_eq!(identity.email, "bob@example.com");
    // An address in ADMIN_EMAILS that belongs to another user makes no admin.
    let again = w.sign_in("boss@example.com", "222");
    let me = w.session_json(&again);
    assert_eq!(
        (me["user"]["email"].as_str(), me["user"]["role"].as_str()),
        (Some("bob@example.com"), Some("user"))
    );
    assert_eq!(w.store.user_count(), 3);
    let logs = w.logs.0.borrow();
    let conflicts: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("\"event\":\"email_conflict\""))
        .collect();
    assert_eq!(conflicts.len(), 2, "{logs:?}");
    for line in conflicts {
        let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(parsed["level"], "warn");
        assert!(
            parsed["reason"].as_str().unwrap().contains(&bob_id),
            "{line}"
        );
        assert!(
            !line.to_lowercase().contains("@example.com"),
            "no email: {line}"
        );
    }
}

/// The hot path and the full route are one rule set: whatever `quick_decision` decides on its
/// own (public, or admitted until a time), `App::handle` decides the same for the same URL and
/// cookie, for generated paths (percent-encodings, dot segments, `;`, `\\`, `//`, Unicode,
/// Static Assets aliases), cookies (current, expired, forged, several, none) and rule sets.
mod one_gate {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as RunnerConfig, TestRunner};

    use super::*;

    const SEGMENTS: &[&str] = &[
        "public",
        "admin",
        "docs",
        "finance",
        "a",
        "q3.html",
        "index.html",
        "index",
        "x.html",
        ".",
        "..",
        "%2e",
        "%2E%2e",
        ".%2e",
        "..;",
        ";x",
        "a;b",
        "%3b",
        "%2F",
        "%2f",
        "%5C",
        "\\",
        "",
        "%61dmin",
        "%64ocs",
        "caf%C3%A9",
        "café",
        "%00",
        "%ff",
        "%252e%252e",
        "%20",
        "~",
        "favicon.ico",
        "auth",
    ];

    const PUBLIC: &[&str] = &[
        "",
        "/public/*",
        "/public/*,/favicon.ico",
        "/*",
        "/docs.html",
    ];
    const ROLES: &[&str] = &[
        "",
        "/admin/*=admin",
        "/docs/*=staff,/admin/*=admin",
        "/finance/q3.html=finance",
        "/=staff",
    ];

    fn path() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(proptest::sample::select(SEGMENTS), 0..6),
            any::<bool>(),
            proptest::option::of(proptest::sample::select(&["x=1", "a=%2F..%2F", ""][..])),
        )
            .prop_map(|(segments, trailing, query)| {
                let mut p = format!("/{}", segments.join("/"));
                if trailing && !p.ends_with('/') {
                    p.push('/');
                }
                if let Some(q) = query {
                    p.push('?');
                    p.push_str(q);
                }
                p
            })
    }

    #[test]
    fn the_hot_path_never_decides_what_the_full_route_would_not() {
        let mut worlds = Vec::new();
        for public in PUBLIC {
            for roles in ROLES {
                let w = world(&[("PUBLIC_PATHS", public), ("ROLE_PATHS", roles)]);
                let user = w.sign_in("ada@example.com", "1");
                let admin = w.sign_in("boss@example.com", "2");
                let forged = format!("{user}x");
                let expired = w.sign_in("eve@example.com", "3");
                worlds.push((w, [user, admin, forged, expired]));
            }
        }
        // The expired cookie's token lapses: every world moves past its interval, then the
        // two current cookies are issued anew.
        for (w, cookies) in &mut worlds {
            w.advance(301);
            cookies[0] = w.sign_in("ada@example.com", "1");
            cookies[1] = w.sign_in("boss@example.com", "2");
        }
        let mut runner = TestRunner::new(RunnerConfig {
            cases: 2000,
            failure_persistence: None,
            ..RunnerConfig::default()
        });
        let strategy = (
            0..worlds.len(),
            path(),
            proptest::option::of(0..4usize),
            proptest::option::of(0..4usize),
        );
        runner
            .run(&strategy, |(i, raw, first, second)| {
                let (w, cookies) = &worlds[i];
                // The runtime hands the gate its URL parser's reading of the request line.
                let Ok(url) = Url::parse(&format!("{SITE}{raw}")) else {
                    return Ok(());
                };
                let path_and_query = &url[url::Position::BeforePath..];
                let cookie = match (first, second) {
                    (Some(a), Some(b)) => Some(format!(
                        "theme=dark; {}; pref=café; {}",
                        cookies[a], cookies[b]
                    )),
                    (Some(a), None) | (None, Some(a)) => Some(cookies[a].clone()),
                    (None, None) => None,
                };
                let now = UnixTime(w.now.get());
                let quick = quick_decision(&w.config, url.as_str(), cookie.as_deref(), now);
                let mut headers = vec![("accept", "text/html")];
                if let Some(c) = &cookie {
                    headers.push(("cookie", c.as_str()));
                }
                let full = w.get(path_and_query, &headers);
                match quick {
                    Quick::Full => {}
                    Quick::Public => prop_assert!(
                        full.forward.as_ref().is_some_and(|f| f.identity.is_none()),
                        "{raw}: hot path public, full route {}",
                        full.status
                    ),
                    Quick::Admitted { until } => {
                        prop_assert!(until > now, "{raw}: admitted until the past");
                        prop_assert!(
                            full.forward.as_ref().is_some_and(|f| f.identity.is_some()),
                            "{raw} with {cookie:?}: hot path admitted, full route {}",
                            full.status
                        );
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}
