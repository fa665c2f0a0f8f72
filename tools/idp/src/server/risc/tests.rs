//! The RISC configuration document and `POST /_control/risc`: SETs verified with the served
//! JWKS, parameter checks, and pushes to a tiny receiver on a local port.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_compact::alg::{Rsa, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt as _, UntrustedToken};
use serde_json::Value;

use super::*;
use crate::config::Config;
use crate::id_token::SigningKey;
use crate::server::{CONTROL_PREFIX, Request};

const CID: &str = "cid.apps.googleusercontent.com";
const SUB: &str = "109876543210987654321";

fn provider() -> Provider {
    Provider::new(
        "http://idp.test".into(),
        CID.into(),
        "secret".into(),
        SigningKey::generate().unwrap(),
    )
}

fn call(p: &Provider, method: &str, target: &str, body: &[u8]) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    p.handle(&Request {
        method,
        path,
        query,
        headers: &[],
        body,
    })
}

fn risc(p: &Provider, pairs: &[(&str, &str)]) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    call(p, "POST", &format!("{CONTROL_PREFIX}risc?{query}"), b"")
}

/// The claims of `set`, verified (RS256) with the JWKS the provider serves.
fn verify_with_jwks(p: &Provider, set: &str) -> Option<Value> {
    let jwks = call(p, "GET", JWKS_PATH, b"").json_body().unwrap();
    let untrusted = UntrustedToken::new(set).ok()?;
    let kid = untrusted.header().key_id.clone()?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())?;
    let jwk: JsonWebKey<'_> = serde_json::from_value(jwk.clone()).unwrap();
    let public = RsaPublicKey::try_from(&jwk).unwrap();
    let token = Rsa::rs256()
        .validator::<Value>(&public)
        .validate(&untrusted)
        .ok()?;
    // jwt-compact reads `iat` into its standard claims; put it back.
    let mut claims = token.claims().custom.clone();
    if let Some(iat) = token.claims().issued_at {
        claims["iat"] = iat.timestamp().into();
    }
    Some(claims)
}

fn header_of(set: &str) -> Value {
    let first = set.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first).unwrap()).unwrap()
}

#[test]
fn configuration_document_lists_the_push_method_and_the_jwks() {
    let p = provider();
    let resp = call(&p, "GET", RISC_CONFIG_PATH, b"");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header_value("Cache-Control"),
        Some("public, max-age=3600")
    );
    let doc = resp.json_body().unwrap();
    let b = "http://idp.test";
    assert_eq!(
        doc,
        json!({
            "issuer": "http://idp.test/",
            "jwks_uri": format!("{b}/oauth2/v3/certs"),
            "delivery_methods_supported": [
                "https://schemas.openid.net/secevent/risc/delivery-method/push"
            ],
            "add_subject_endpoint": format!("{b}/v1beta/subjects:add"),
            "remove_subject_endpoint": format!("{b}/v1beta/subjects:remove"),
            "set_stream_endpoint": format!("{b}/v1beta/stream:update"),
            "get_stream_endpoint": format!("{b}/v1beta/stream"),
            "get_status_endpoint": format!("{b}/v1beta/stream/status"),
            "set_status_endpoint": format!("{b}/v1beta/stream/status:update"),
            "verification_endpoint": format!("{b}/v1beta/stream:verify"),
        })
    );
    // The ID-token issuer has no trailing slash; the RISC issuer has one.
    let discovery = call(&p, "GET", "/.well-known/openid-configuration", b"");
    assert_eq!(discovery.json_body().unwrap()["issuer"], "http://idp.test");
    assert_eq!(call(&p, "POST", RISC_CONFIG_PATH, b"").status, 405);
}

#[test]
fn each_event_is_a_set_the_served_jwks_verifies() {
    let p = provider();
    for event in Event::ALL {
        let mut pairs = vec![("event", event.name())];
        if event.has_subject() {
            pairs.push(("sub", SUB));
        }
        let resp = risc(&p, &pairs);
        assert_eq!(resp.status, 200, "{event}");
        assert_eq!(resp.header_value("Cache-Control"), Some("no-store"));
        let answer = resp.json_body().unwrap();
        assert_eq!(answer.as_object().unwrap().len(), 2, "{answer}");
        let jti = answer["jti"].as_str().unwrap();
        assert!(jti.len() == 32 && jti.bytes().all(|b| b.is_ascii_hexdigit()));
        let set = answer["set"].as_str().unwrap();
        assert_eq!(
            header_of(set),
            json!({ "alg": "RS256", "kid": p.key().kid(), "typ": "secevent+jwt" })
        );
        let claims = verify_with_jwks(&p, set).unwrap_or_else(|| panic!("{event} verifies"));
        let iat = claims["iat"].as_i64().unwrap();
        assert!((iat - chrono::Utc::now().timestamp()).abs() < 60);
        let body = if event.has_subject() {
            json!({ "subject": { "subject_type": "iss-sub", "iss": "http://idp.test/", "sub": SUB } })
        } else {
            json!({})
        };
        assert_eq!(
            claims,
            json!({
                "iss": "http://idp.test/", "aud": CID, "iat": iat, "jti": jti,
                "events": { event.uri(): body },
            })
        );
    }

    // Chosen jti and aud, reason, state; parameters in a form body work too.
    let resp = risc(
        &p,
        &[
            ("event", "account-disabled"),
            ("sub", SUB),
            ("reason", "bulk-account"),
            ("jti", "replayed-jti"),
            ("aud", "other.apps.googleusercontent.com"),
        ],
    );
    let answer = resp.json_body().unwrap();
    assert_eq!(answer["jti"], "replayed-jti");
    let claims = verify_with_jwks(&p, answer["set"].as_str().unwrap()).unwrap();
    assert_eq!(claims["jti"], "replayed-jti");
    assert_eq!(claims["aud"], "other.apps.googleusercontent.com");
    assert_eq!(
        claims["events"][Event::AccountDisabled.uri()]["reason"],
        "bulk-account"
    );
    let resp = call(
        &p,
        "POST",
        "/_control/risc",
        b"event=verification&state=abc%20def",
    );
    let set = resp.json_body().unwrap()["set"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = verify_with_jwks(&p, &set).unwrap();
    assert_eq!(
        claims["events"],
        json!({ Event::Verification.uri(): { "state": "abc def" } })
    );

    // After a rotation SETs are signed with the new key, as ID tokens are.
    let old = p.key().kid().to_owned();
    p.rotate().unwrap();
    let set = risc(&p, &[("event", "tokens-revoked"), ("sub", SUB)])
        .json_body()
        .unwrap()["set"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(header_of(&set)["kid"], old.as_str());
    assert!(verify_with_jwks(&p, &set).is_some());
}

#[test]
fn twists_through_the_endpoint() {
    let p = provider();
    for twist in SetTwist::ALL {
        let resp = risc(
            &p,
            &[
                ("event", "sessions-revoked"),
                ("sub", SUB),
                ("twist", twist.name()),
            ],
        );
        assert_eq!(resp.status, 200, "{twist}");
        let answer = resp.json_body().unwrap();
        let set = answer["set"].as_str().unwrap();
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(set.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        let signed_honestly = verify_with_jwks(&p, set).is_some();
        let subject = &claims["events"][Event::SessionsRevoked.uri()]["subject"];
        match twist {
            SetTwist::BadSignature | SetTwist::UnknownKid | SetTwist::AlgNone => {
                assert!(!signed_honestly, "{twist}");
            }
            _ => assert!(signed_honestly, "{twist}"),
        }
        match twist {
            SetTwist::WrongAud => {
                assert_eq!(claims["aud"], "someone-else.apps.googleusercontent.com");
            }
            SetTwist::StaleIat => {
                let age = chrono::Utc::now().timestamp() - claims["iat"].as_i64().unwrap();
                assert!((age - 30 * 86400).abs() < 60, "{age}");
            }
            SetTwist::FutureIat => {
                let ahead = claims["iat"].as_i64().unwrap() - chrono::Utc::now().timestamp();
                assert!((ahead - 3600).abs() < 60, "{ahead}");
            }
            SetTwist::WrongIss => {
                assert_eq!(claims["iss"], "https://evil.example/");
                assert_eq!(subject["iss"], "http://idp.test/");
            }
            SetTwist::SubjectOtherIss => {
                assert_eq!(claims["iss"], "http://idp.test/");
                assert_eq!(subject["iss"], "https://evil.example/");
            }
            SetTwist::AlgNone => assert_eq!(header_of(set)["alg"], "none"),
            SetTwist::NoJti => {
                assert!(claims.get("jti").is_none());
                assert_eq!(answer["jti"], Value::Null);
            }
            SetTwist::NoEvents => assert!(claims.get("events").is_none()),
            SetTwist::BadSignature | SetTwist::UnknownKid => {}
        }
        if twist != SetTwist::NoJti {
            assert_eq!(claims["jti"], answer["jti"], "{twist}");
        }
    }
}

#[test]
fn bad_requests_are_refused() {
    let p = provider();
    for pairs in [
        &[][..],
        &[("event", "nope"), ("sub", SUB)],
        &[("event", "sessions-revoked")],
        &[("event", "sessions-revoked"), ("sub", "")],
        &[("event", "verification"), ("sub", SUB)],
        &[("event", "sessions-revoked"), ("sub", SUB), ("reason", "x")],
        &[("event", "account-disabled"), ("sub", SUB), ("state", "x")],
        &[
            ("event", "sessions-revoked"),
            ("sub", SUB),
            ("twist", "nope"),
        ],
        &[("event", "verification"), ("twist", "subject_other_iss")],
        &[("event", "sessions-revoked"), ("sub", SUB), ("jti", "")],
        &[
            ("event", "sessions-revoked"),
            ("sub", SUB),
            ("receiver", "https://127.0.0.1:1/auth/risc"),
        ],
        &[
            ("event", "sessions-revoked"),
            ("sub", SUB),
            ("receiver", "not a url"),
        ],
    ] {
        let resp = risc(&p, pairs);
        assert_eq!(resp.status, 400, "{pairs:?}");
        assert_eq!(resp.json_body().unwrap()["error"], "invalid_request");
    }
    assert_eq!(
        call(&p, "GET", "/_control/risc?event=verification", b"").status,
        405
    );
}

/// What the tiny receiver saw: request line, headers (lowercase names), body.
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A receiver on a local port that answers one request with `status` and `body`, and reports
/// what it received.
fn receiver(status: u16, body: String) -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut bytes = vec![0; length];
        reader.read_exact(&mut bytes).unwrap();
        let mut stream = reader.into_inner();
        write!(
            stream,
            "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let _ = tx.send(Received {
            request_line: request_line.trim_end().to_owned(),
            headers,
            body: String::from_utf8(bytes).unwrap(),
        });
    });
    (port, rx)
}

/// One HTTP/1.0 exchange with a running provider: status and JSON body.
fn exchange(port: u16, method: &str, target: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "{method} {target} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

fn risc_target(pairs: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{CONTROL_PREFIX}risc?{query}")
}

#[test]
fn push_reaches_the_receiver_and_reports_its_answer() {
    let running = crate::server::start(&Config {
        host: "127.0.0.1".into(),
        port: 0,
        client_id: CID.into(),
        client_secret: "secret".into(),
        issuer: None,
    })
    .unwrap();
    let port = running.addr().port();

    let (to, seen) = receiver(202, String::new());
    let url = format!("http://127.0.0.1:{to}/auth/risc?x=1");
    let target = risc_target(&[
        ("event", "sessions-revoked"),
        ("sub", SUB),
        ("receiver", &url),
    ]);
    let (status, answer) = exchange(port, "POST", &target);
    assert_eq!(status, 200, "{answer}");
    let got = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(got.request_line, "POST /auth/risc?x=1 HTTP/1.1");
    assert_eq!(got.header("content-type"), Some("application/secevent+jwt"));
    assert_eq!(got.header("accept"), Some("application/json"));
    assert_eq!(got.header("host"), Some(format!("127.0.0.1:{to}").as_str()));
    let set = answer["set"].as_str().unwrap();
    assert_eq!(got.body, set);
    assert_eq!(answer["status"], 202);
    assert_eq!(answer["body"], "");
    let claims = verify_with_jwks(running.provider(), set).unwrap();
    assert_eq!(claims["jti"], answer["jti"]);
    assert_eq!(claims["iss"], format!("{}/", running.issuer()));

    // A refusal is reported as it came; a long body is cut to 4 KiB.
    let long = format!(
        "{{\"err\":\"invalid_request\",\"description\":\"{}\"}}",
        "x".repeat(10_000)
    );
    let (to, seen) = receiver(400, long.clone());
    let url = format!("http://127.0.0.1:{to}/auth/risc");
    let target = risc_target(&[
        ("event", "verification"),
        ("state", "s"),
        ("twist", "bad_signature"),
        ("jti", "fixed"),
        ("receiver", &url),
    ]);
    let (status, answer) = exchange(port, "POST", &target);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(seen.recv().unwrap().body, answer["set"].as_str().unwrap());
    assert_eq!(answer["status"], 400);
    assert_eq!(answer["jti"], "fixed");
    assert_eq!(answer["body"], long[..PUSH_BODY_LIMIT]);

    // Nobody listening: 502.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{nobody}/auth/risc");
    let target = risc_target(&[
        ("event", "tokens-revoked"),
        ("sub", SUB),
        ("jti", "lost"),
        ("receiver", &url),
    ]);
    let (status, answer) = exchange(port, "POST", &target);
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"], "receiver_unreachable");
    assert_eq!(answer["jti"], "lost");
    running.stop();
}
