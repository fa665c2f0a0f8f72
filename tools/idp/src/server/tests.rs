//! Unit tests of the provider: twists, single-use codes, key rotation, the control endpoints.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use super::*;
use crate::twist::{Kind, Twist};

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
                        assert_eq!(body.unwrap(), json!({ "error": "temporarily_unavailable" }));
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
    assert!(page(&[("test_email", "a@b.c"), ("test_email", "a@b.c")]).contains("more than once"));
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
        json!({ "jwks_requests": 6, "token_requests": 2, "authorization_requests": 1 })
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
        json!({ "jwks_requests": 0, "token_requests": 0, "authorization_requests": 0 })
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
