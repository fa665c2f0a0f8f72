//! `POST /auth/risc`: Google's security events end, or disable, the sessions of the user whose
//! Google account they name, within the interval; refused SETs change nothing.

use super::*;

const RISC_ISSUER: &str = "https://accounts.google.com/";
const DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
const REVOKED: &str = "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked";
const ENABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/risc/event-type/verification";

fn risc_world() -> World {
    world(&[("RISC_ENABLED", "true"), ("SESSION_CHECK_INTERVAL", "60")])
}

fn set(w: &World, jti: &str, kind: &str, body: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "iss": RISC_ISSUER, "aud": "client-1", "iat": w.now.get(), "jti": jti,
        "events": { kind: body },
    })
}

fn about(sub: &str) -> serde_json::Value {
    serde_json::json!({ "subject": { "subject_type": "iss-sub", "iss": RISC_ISSUER, "sub": sub } })
}

fn push(w: &World, token: &str) -> Reply {
    w.request(
        Method::POST,
        "/auth/risc",
        &[("content-type", "application/secevent+jwt")],
        token,
    )
}

fn signed(claims: &serde_json::Value) -> String {
    FakeGoogle::id_token(claims)
}

#[test]
fn the_receiver_is_off_unless_enabled() {
    let w = world(&[]);
    let token = signed(&set(&w, "j1", REVOKED, &about("111")));
    let r = push(&w, &token);
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn account_disabled_signs_the_person_out_everywhere_within_the_interval() {
    let w = risc_world();
    let ada = w.sign_in("ada@example.com", "111");
    let other = w.sign_in("bob@example.com", "222");
    let mut claims = set(&w, "j1", DISABLED, &about("111"));
    claims["events"][DISABLED]["reason"] = "hijacking".into();
    let r = push(&w, &signed(&claims));
    assert_eq!((r.status, r.body.as_str()), (202, ""));
    // Within the interval the token still works (the documented bound)…
    assert!(w.page("/docs/", &ada).forward.is_some());
    w.advance(60);
    // …after it, the renewal refuses the session, and signing in again is refused.
    let r = w.page("/docs/", &ada);
    assert_eq!(r.status, 302, "{:?}", r.location);
    assert!(
        w.page("/docs/", &other).forward.is_some(),
        "other users stay"
    );
    let again = w.sign_in_with(google_claims("ada@example.com", "111"));
    assert_eq!(error_code(&again), "AccessDenied");
    // The admin page shows who did it.
    let boss = w.sign_in("boss@example.com", "900");
    let page = w.page("/auth/admin", &boss);
    assert!(
        page.body.contains("Google RISC") && page.body.contains("risc:account-disabled"),
        "{}",
        page.body
    );
    assert!(page.body.contains("reason=hijacking"));
    let log = w.logs.0.borrow().join("\n");
    assert!(log.contains(r#""event":"risc_event""#), "{log}");
    assert!(
        !log.contains("\"111\""),
        "no Google account id in the log: {log}"
    );
}

#[test]
fn sessions_revoked_ends_sessions_but_the_person_may_sign_in_again() {
    let w = risc_world();
    let ada = w.sign_in("ada@example.com", "111");
    assert_eq!(
        push(&w, &signed(&set(&w, "j1", REVOKED, &about("111")))).status,
        202
    );
    w.advance(60);
    assert_eq!(w.page("/docs/", &ada).status, 302);
    let again = w.sign_in("ada@example.com", "111");
    assert!(w.page("/docs/", &again).forward.is_some());
}

#[test]
fn account_enabled_and_unknown_accounts_change_nothing() {
    let w = risc_world();
    let ada = w.sign_in("ada@example.com", "111");
    for (jti, token) in [
        ("j1", signed(&set(&w, "j1", ENABLED, &about("111")))),
        (
            "j2",
            signed(&set(&w, "j2", REVOKED, &about("no-such-account"))),
        ),
        (
            "j3",
            signed(&set(
                &w,
                "j3",
                "https://schemas.openid.net/secevent/risc/event-type/made-up",
                &about("111"),
            )),
        ),
    ] {
        assert_eq!(push(&w, &token).status, 202, "{jti}");
    }
    w.advance(60);
    let r = w.page("/docs/", &ada);
    assert!(r.forward.is_some(), "still signed in after the interval");
    let boss = w.sign_in("boss@example.com", "900");
    let page = w.page("/auth/admin", &boss);
    assert!(
        page.body.contains("risc:account-enabled"),
        "an audit row only"
    );
}

#[test]
fn a_verification_event_is_logged_with_its_state() {
    let w = risc_world();
    let token = signed(&set(
        &w,
        "j1",
        VERIFICATION,
        &serde_json::json!({ "state": "check-4f2a" }),
    ));
    assert_eq!(push(&w, &token).status, 202);
    let log = w.logs.0.borrow().join("\n");
    assert!(
        log.contains(r#""event":"risc_verification""#) && log.contains("check-4f2a"),
        "{log}"
    );
}

#[test]
fn refused_sets_change_nothing_and_get_one_generic_answer() {
    let w = risc_world();
    let ada = w.sign_in("ada@example.com", "111");
    let good = signed(&set(&w, "j1", DISABLED, &about("111")));
    assert_eq!(push(&w, &good).status, 202);
    let bob = w.sign_in("bob@example.com", "222");
    let mut hostile: Vec<(&str, String)> = vec![("replayed jti", good.clone())];
    let mut with = |what: &'static str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = set(&w, &format!("x-{what}"), DISABLED, &about("222"));
        f(&mut c);
        hostile.push((what, signed(&c)));
    };
    with("wrong aud", &|c| c["aud"] = "someone-else".into());
    with("wrong iss", &|c| {
        c["iss"] = "https://accounts.google.com".into();
    });
    with("stale iat", &|c| c["iat"] = (T0 - 8 * 86_400).into());
    with("future iat", &|c| c["iat"] = (T0 + 3600).into());
    with("no jti", &|c| {
        c.as_object_mut().unwrap().remove("jti");
    });
    // Signed with one of our own session keys (HS256): never a key the receiver accepts.
    // (config::tests::TEST_KEYS: kid k1, 32 bytes of 1.)
    let session_key = [1_u8; 32];
    let forged = jwt_compact::alg::Hs256
        .token(
            &Header::empty().with_key_id("k1"),
            &Claims::new(set(&w, "x-hs256", DISABLED, &about("222"))),
            &jwt_compact::alg::Hs256Key::new(session_key),
        )
        .unwrap();
    hostile.push(("signed with a session key", forged));
    let mut tampered = signed(&set(&w, "x-sig", DISABLED, &about("222"))).into_bytes();
    let i = tampered.len() - 20;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    hostile.push(("bad signature", String::from_utf8(tampered).unwrap()));
    hostile.push(("garbage", "not a token".into()));
    for (what, token) in &hostile {
        let r = push(&w, token);
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert_eq!(
            r.body,
            r#"{"description":"The security event token was not accepted.","err":"invalid_request"}"#,
            "{what}"
        );
    }
    // The right token, sent as something else.
    let r = w.request(
        Method::POST,
        "/auth/risc",
        &[("content-type", "application/json")],
        &signed(&set(&w, "x-ct", DISABLED, &about("222"))),
    );
    assert_eq!(r.status, 400);
    w.advance(60);
    assert!(w.page("/docs/", &bob).forward.is_some(), "bob untouched");
    assert_eq!(w.page("/docs/", &ada).status, 302, "the one good SET acted");
    let log = w.logs.0.borrow().join("\n");
    assert!(
        log.contains("jti already received") && log.contains("aud is not our client id"),
        "{log}"
    );
}

#[test]
fn an_unreachable_issuer_or_d1_gives_503_so_google_retries() {
    let w = risc_world();
    w.google.twist.borrow_mut().unreachable = true;
    let token = signed(&set(&w, "j1", REVOKED, &about("111")));
    let r = push(&w, &token);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.headers["retry-after"], "60");
    w.google.twist.borrow_mut().unreachable = false;
    w.advance(61);
    w.store.broken.set(true);
    let r = push(&w, &token);
    assert_eq!(r.status, 503, "{}", r.body);
    w.store.broken.set(false);
    assert_eq!(
        push(&w, &token).status,
        202,
        "the retry is accepted once D1 is back"
    );
    let next = signed(&set(&w, "j2", REVOKED, &about("111")));
    assert_eq!(push(&w, &next).status, 202);
    // Fetched once it could be (the failed attempt never reached the provider), then cached.
    assert_eq!(w.google.risc_configuration_fetches.get(), 1);
}
