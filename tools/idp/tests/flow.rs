//! End to end: starts the `gatehouse-idp` binary on port 0 and runs the code flow over plain TCP.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jwt_compact::alg::{Rsa, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt as _, UntrustedToken};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use url::Url;

const CLIENT_ID: &str = "test-client.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "GOCSPX-test secret:with+specials";
const REDIRECT_URI: &str = "http://localhost:8787/auth/callback/google";
// RFC 7636, Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct Idp {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Idp {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse-idp"))
        .args(["--port", "0", "--client-id", CLIENT_ID])
        .env("IDP_CLIENT_SECRET", CLIENT_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gatehouse-idp");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut err_pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim_end()
        .strip_prefix("gatehouse-idp listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
        .parse()
        .unwrap();
    Idp {
        child,
        port,
        stderr,
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn location(&self) -> Url {
        Url::parse(self.header("Location").expect("Location")).unwrap()
    }
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Idp {
    fn request(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut head = format!(
            "{method} {target} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        Resp {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn get(&self, target: &str) -> Resp {
        self.request("GET", target, &[], b"")
    }

    fn post_form(&self, path: &str, pairs: &[(&str, &str)], headers: &[(&str, &str)]) -> Resp {
        let body = form(pairs);
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        self.request("POST", path, &all, body.as_bytes())
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn auth_params<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("response_type", "code"),
        ("scope", "openid email profile"),
        ("state", "st/ate+1=&"),
        ("nonce", "nonce-123"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    pairs.extend_from_slice(extra);
    pairs
}

fn auth_url(extra: &[(&str, &str)]) -> String {
    format!("/o/oauth2/v2/auth?{}", form(&auth_params(extra)))
}

fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

fn token_request<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ]
}

/// Signs in with `extra` query parameters and returns the code.
fn code_for(idp: &Idp, extra: &[(&str, &str)]) -> String {
    let resp = idp.get(&auth_url(extra));
    assert_eq!(resp.status, 302, "{}", resp.body);
    let location = resp.location();
    assert_eq!(query(&location, "state").as_deref(), Some("st/ate+1=&"));
    query(&location, "code").expect("code")
}

#[test]
fn code_flow_issues_a_verifiable_google_style_id_token() {
    let idp = start();
    let base = idp.base();

    let discovery = idp.get("/.well-known/openid-configuration");
    assert_eq!(discovery.status, 200);
    let doc = discovery.json();
    assert_eq!(doc["issuer"], base.as_str());
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/o/oauth2/v2/auth")
    );
    assert_eq!(doc["token_endpoint"], format!("{base}/token"));
    assert_eq!(doc["jwks_uri"], format!("{base}/oauth2/v3/certs"));
    assert_eq!(doc["id_token_signing_alg_values_supported"][0], "RS256");

    let certs = idp.get("/oauth2/v3/certs");
    assert_eq!(certs.status, 200);
    assert_eq!(certs.header("Cache-Control"), Some("public, max-age=3600"));
    let jwk = certs.json()["keys"][0].clone();
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert!(jwk.get("d").is_none(), "no private parts");
    let kid = jwk["kid"].as_str().unwrap().to_owned();

    let code = code_for(
        &idp,
        &[
            ("test_email", "ada@example.com"),
            ("test_name", "Ada Lovelace"),
            ("test_hd", "example.com"),
        ],
    );

    let resp = idp.post_form(
        "/token",
        &token_request(&code, VERIFIER),
        &[("Authorization", &basic_auth(CLIENT_ID, CLIENT_SECRET))],
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("Cache-Control"), Some("no-store"));
    let tokens = resp.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3599);
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    let id_token = tokens["id_token"].as_str().unwrap();

    // Signature against the served JWKS.
    let untrusted = UntrustedToken::new(id_token).unwrap();
    assert_eq!(untrusted.algorithm(), "RS256");
    assert_eq!(untrusted.header().key_id.as_deref(), Some(kid.as_str()));
    assert_eq!(untrusted.header().token_type.as_deref(), Some("JWT"));
    let jwk: JsonWebKey<'_> = serde_json::from_value(jwk).unwrap();
    let public = RsaPublicKey::try_from(&jwk).unwrap();
    let token = Rsa::rs256()
        .validator::<Value>(&public)
        .validate(&untrusted)
        .expect("signature verifies");
    let claims = &token.claims().custom;
    assert_eq!(claims["iss"], base.as_str());
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["azp"], CLIENT_ID);
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["nonce"], "nonce-123");
    assert_eq!(claims["name"], "Ada Lovelace");
    assert_eq!(claims["given_name"], "Ada");
    assert_eq!(claims["family_name"], "Lovelace");
    assert_eq!(claims["hd"], "example.com");
    assert!(
        claims["picture"]
            .as_str()
            .unwrap()
            .starts_with("https://lh3.googleusercontent.com/a/")
    );
    let sub = claims["sub"].as_str().unwrap();
    assert!(sub.len() == 21 && sub.bytes().all(|b| b.is_ascii_digit()));
    // jwt-compact reads `iat` and `exp` into its standard claims.
    let iat = token.claims().issued_at.unwrap().timestamp();
    assert_eq!(token.claims().expiration.unwrap().timestamp() - iat, 3600);
    assert!((iat - chrono::Utc::now().timestamp()).abs() < 60);
    let digest = Sha256::digest(access_token.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));

    // The same person gets the same sub on the next sign-in.
    let again = code_for(&idp, &[("test_email", "ADA@example.com")]);
    let resp = idp.post_form(
        "/token",
        &[
            token_request(&again, VERIFIER),
            vec![("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)],
        ]
        .concat(),
        &[],
    );
    assert_eq!(resp.status, 200, "client_secret_post: {}", resp.body);
    let second = UntrustedToken::new(resp.json()["id_token"].as_str().unwrap())
        .unwrap()
        .deserialize_claims_unchecked::<Value>()
        .unwrap();
    assert_eq!(second.custom["sub"], sub);

    // Userinfo with the access token.
    let bearer = format!("Bearer {access_token}");
    let info = idp.request("GET", "/v1/userinfo", &[("Authorization", &bearer)], b"");
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["email"], "ada@example.com");
    assert_eq!(info.json()["sub"], sub);

    // A code is single use; the replay also revokes what the first redemption bought.
    let replay = idp.post_form(
        "/token",
        &token_request(&code, VERIFIER),
        &[("Authorization", &basic_auth(CLIENT_ID, CLIENT_SECRET))],
    );
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json()["error"], "invalid_grant");
    let info = idp.request("GET", "/v1/userinfo", &[("Authorization", &bearer)], b"");
    assert_eq!(info.status, 401);

    // Nothing secret in the log, but one line per request.
    std::thread::sleep(Duration::from_millis(100));
    let log = idp.stderr.lock().unwrap().clone();
    for secret in [
        code.as_str(),
        access_token.as_str(),
        CLIENT_SECRET,
        "nonce-123",
        VERIFIER,
        id_token,
    ] {
        assert!(!log.contains(secret), "log leaks {secret}: {log}");
    }
    assert!(log.contains("GET /oauth2/v3/certs 200"), "{log}");
    assert!(log.contains("POST /token 400"), "{log}");
}

#[test]
fn token_endpoint_refuses_bad_requests() {
    let idp = start();
    let basic = basic_auth(CLIENT_ID, CLIENT_SECRET);
    let auth = [("Authorization", basic.as_str())];

    let code = code_for(&idp, &[("test_email", "grace@example.com")]);
    let wrong_secret = idp.post_form(
        "/token",
        &token_request(&code, VERIFIER),
        &[("Authorization", &basic_auth(CLIENT_ID, "nope"))],
    );
    assert_eq!(wrong_secret.status, 401);
    assert_eq!(wrong_secret.json()["error"], "invalid_client");
    let no_auth = idp.post_form("/token", &token_request(&code, VERIFIER), &[]);
    assert_eq!(no_auth.status, 401);
    let garbage = idp.post_form(
        "/token",
        &token_request(&code, VERIFIER),
        &[("Authorization", "Basic %%%")],
    );
    assert_eq!(garbage.status, 401);

    let grant_type = idp.post_form(
        "/token",
        &[("grant_type", "refresh_token"), ("code", &code)],
        &auth,
    );
    assert_eq!(grant_type.json()["error"], "unsupported_grant_type");

    // Client authentication failures did not burn the code; a wrong verifier does.
    let wrong_verifier = idp.post_form("/token", &token_request(&code, &"x".repeat(43)), &auth);
    assert_eq!(wrong_verifier.status, 400);
    assert_eq!(wrong_verifier.json()["error"], "invalid_grant");
    let burned = idp.post_form("/token", &token_request(&code, VERIFIER), &auth);
    assert_eq!(burned.json()["error"], "invalid_grant");

    let code = code_for(&idp, &[("test_email", "grace@example.com")]);
    let mut other_uri = token_request(&code, VERIFIER);
    other_uri[2].1 = "http://localhost:8787/other";
    assert_eq!(
        idp.post_form("/token", &other_uri, &auth).json()["error"],
        "invalid_grant"
    );

    let code = code_for(&idp, &[("test_email", "grace@example.com")]);
    let no_verifier = &token_request(&code, VERIFIER)[..3];
    assert_eq!(
        idp.post_form("/token", no_verifier, &auth).json()["error"],
        "invalid_grant"
    );

    let unknown = idp.post_form("/token", &token_request("4/0Anope", VERIFIER), &auth);
    assert_eq!(unknown.json()["error"], "invalid_grant");

    let huge = vec![b'a'; 70 * 1024];
    let too_big = idp.request(
        "POST",
        "/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &huge,
    );
    assert_eq!(too_big.status, 413);
    let not_form = idp.request(
        "POST",
        "/token",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(not_form.status, 400);
    let malformed = idp.request(
        "POST",
        "/token",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", &basic),
        ],
        b"%%%&&==\xff\xfe&code=%zz",
    );
    assert_eq!(malformed.status, 400);
    assert_eq!(idp.get("/token").status, 405);
    let missing = idp.get("/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "not_found");
}

#[test]
fn authorization_endpoint_checks_before_redirecting() {
    let idp = start();

    // Untrusted client or redirect_uri: an error page, never a redirect.
    for (name, value) in [
        ("client_id", "someone-else"),
        ("redirect_uri", "https://evil.example/cb"),
    ] {
        let pairs: Vec<_> = auth_params(&[("test_email", "ada@example.com")])
            .into_iter()
            .map(|(k, v)| if k == name { (k, value) } else { (k, v) })
            .collect();
        let resp = idp.get(&format!("/o/oauth2/v2/auth?{}", form(&pairs)));
        assert_eq!(resp.status, 400, "{name}");
        assert!(resp.header("Location").is_none());
        assert!(resp.body.contains("<html lang=\"en\">"));
    }

    // Everything else goes back to the client with the state.
    for (extra, error) in [
        (("code_challenge_method", "plain"), "invalid_request"),
        (("response_type", "token"), "unsupported_response_type"),
        (("scope", "email profile"), "invalid_scope"),
    ] {
        let pairs: Vec<_> = auth_params(&[("test_email", "ada@example.com")])
            .into_iter()
            .map(|(k, v)| if k == extra.0 { extra } else { (k, v) })
            .collect();
        let resp = idp.get(&format!("/o/oauth2/v2/auth?{}", form(&pairs)));
        assert_eq!(resp.status, 302);
        let location = resp.location();
        assert_eq!(query(&location, "error").as_deref(), Some(error));
        assert_eq!(query(&location, "state").as_deref(), Some("st/ate+1=&"));
        assert!(query(&location, "code").is_none());
    }

    let denied = idp.get(&auth_url(&[("test_deny", "1")])).location();
    assert_eq!(query(&denied, "error").as_deref(), Some("access_denied"));

    // The chooser page, then its forms.
    let page = idp.get(&auth_url(&[("login_hint", "\"><script>x</script>")]));
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("Development identity provider — not Google")
    );
    assert!(!page.body.contains("<script>"));
    assert!(
        page.header("Content-Security-Policy")
            .unwrap()
            .contains("form-action 'self' http://localhost:8787")
    );
    assert_eq!(page.header("Cache-Control"), Some("no-store"));

    let approve = |extra: &[(&str, &str)]| {
        let mut pairs: Vec<_> = auth_params(&[]);
        pairs.extend_from_slice(extra);
        idp.post_form("/o/oauth2/v2/auth/approve", &pairs, &[])
    };
    let resp = approve(&[
        ("email", "grace@example.com"),
        ("name", "Grace Hopper"),
        ("email_verified", "false"),
    ]);
    assert_eq!(resp.status, 303);
    let code = query(&resp.location(), "code").unwrap();
    let tokens = idp
        .post_form(
            "/token",
            &token_request(&code, VERIFIER),
            &[("Authorization", &basic_auth(CLIENT_ID, CLIENT_SECRET))],
        )
        .json();
    let claims = UntrustedToken::new(tokens["id_token"].as_str().unwrap())
        .unwrap()
        .deserialize_claims_unchecked::<Value>()
        .unwrap();
    assert_eq!(claims.custom["email"], "grace@example.com");
    assert_eq!(claims.custom["email_verified"], false);

    let cancel = approve(&[("deny", "1")]);
    assert_eq!(cancel.status, 303);
    assert_eq!(
        query(&cancel.location(), "error").as_deref(),
        Some("access_denied")
    );

    let no_email = approve(&[("email", "")]);
    assert_eq!(no_email.status, 400);
    assert!(no_email.body.contains("Enter an email address."));

    // The approval re-checks the request.
    let mut tampered = auth_params(&[("email", "ada@example.com")]);
    tampered[1].1 = "https://evil.example/cb";
    let resp = idp.post_form("/o/oauth2/v2/auth/approve", &tampered, &[]);
    assert_eq!(resp.status, 400);
    assert!(resp.header("Location").is_none());
}

#[test]
fn a_stalled_request_does_not_block_others() {
    let idp = start();
    // Promise a body and never send it: one worker waits on it.
    let mut stalled = TcpStream::connect(("127.0.0.1", idp.port)).unwrap();
    stalled
        .write_all(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ncode=")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..3 {
        assert_eq!(idp.get("/oauth2/v3/certs").status, 200);
    }
    drop(stalled);
}

#[test]
fn in_process_server_uses_the_configured_issuer_and_stops() {
    let config = gatehouse_idp::config::Config {
        host: "127.0.0.1".into(),
        port: 0,
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        issuer: Some("http://idp.localhost:9999".into()),
    };
    let running = gatehouse_idp::server::start(&config).unwrap();
    assert_eq!(running.issuer(), "http://idp.localhost:9999");
    let port = running.addr().port();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /.well-known/openid-configuration HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(
        raw.starts_with("HTTP/1.0 200") || raw.starts_with("HTTP/1.1 200"),
        "{raw}"
    );
    assert!(raw.contains("\"token_endpoint\":\"http://idp.localhost:9999/token\""));
    running.stop();
}
