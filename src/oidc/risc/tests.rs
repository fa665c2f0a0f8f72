//! One test per rule of the receiver, then the events.
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_compact::alg::{Hs256, Hs256Key, ModulusBits, Rsa, RsaPrivateKey, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Header};
use serde_json::{Value, json};

use super::*;

const NOW: UnixTime = UnixTime(1_800_000_000);
const CLIENT: &str = "client-1";
const ISSUER: &str = "https://accounts.google.com/";

fn key() -> &'static (RsaPrivateKey, RsaPublicKey) {
    static KEY: OnceLock<(RsaPrivateKey, RsaPublicKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let (sk, pk) = Rsa::generate(&mut rand::rngs::OsRng, ModulusBits::TwoKibibytes).unwrap();
        (sk.into_inner(), pk.into_inner())
    })
}

fn jwks() -> ProviderKeys {
    let mut jwk = serde_json::to_value(JsonWebKey::from(&key().1)).unwrap();
    jwk["kid"] = "k1".into();
    ProviderKeys::parse(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap()
}

fn subject(sub: &str) -> Value {
    json!({ "subject_type": "iss-sub", "iss": ISSUER, "sub": sub })
}

fn set(events: &Value) -> Value {
    json!({ "iss": ISSUER, "aud": CLIENT, "iat": NOW.secs() - 5, "jti": "756e6971", "events": events })
}

fn sign(claims: &Value) -> String {
    let header = Header::empty()
        .with_key_id("k1")
        .with_token_type("secevent+jwt");
    Rsa::rs256()
        .token(&header, &jwt_compact::Claims::new(claims.clone()), &key().0)
        .unwrap()
}

fn check(token: &str) -> Result<SecurityEvent, SetError> {
    validate(
        token,
        &jwks(),
        Expected {
            issuer: ISSUER,
            client_id: CLIENT,
            now: NOW,
        },
    )
}

fn with(f: impl FnOnce(&mut Value)) -> Result<SecurityEvent, SetError> {
    let mut c = set(&json!({ SESSIONS_REVOKED: { "subject": subject("111") } }));
    f(&mut c);
    check(&sign(&c))
}

#[test]
fn a_set_as_google_sends_it_is_accepted() {
    assert_eq!(
        with(|_| {}),
        Ok(SecurityEvent {
            jti: "756e6971".into(),
            events: vec![Event::SessionsRevoked { sub: "111".into() }],
        })
    );
    // `aud` may be a list that contains us.
    assert!(with(|c| c["aud"] = json!(["other", CLIENT])).is_ok());
}

#[test]
fn only_rs256_with_a_key_of_the_issuer_is_accepted() {
    let token = sign(&set(
        &json!({ SESSIONS_REVOKED: { "subject": subject("1") } }),
    ));
    let payload = token.split('.').nth(1).unwrap();
    let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
    assert_eq!(
        check(&format!("{none}.{payload}.")),
        Err(SetError::WrongAlg("none".into()))
    );
    // HS256, keyed with anything (the issuer's public modulus, or one of our session keys).
    let forged = Hs256
        .token(
            &Header::empty().with_key_id("k1"),
            &jwt_compact::Claims::new(set(
                &json!({ SESSIONS_REVOKED: { "subject": subject("1") } }),
            )),
            &Hs256Key::new(b"a session key of 32 bytes, say..."),
        )
        .unwrap();
    assert_eq!(check(&forged), Err(SetError::WrongAlg("HS256".into())));
    // A kid the issuer does not have; a signature that does not verify; garbage.
    let unknown = token.replacen(
        token.split('.').next().unwrap(),
        &URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k9"}"#),
        1,
    );
    assert_eq!(check(&unknown), Err(SetError::UnknownKid));
    // One character in the middle of the signature changed.
    let mut bad = token.clone().into_bytes();
    let i = token.len() - 20;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    assert_eq!(check(&bad), Err(SetError::BadSignature));
    assert_eq!(check("not a token"), Err(SetError::Malformed));
}

#[test]
fn iss_aud_iat_jti_and_events_are_checked() {
    assert_eq!(
        with(|c| c["iss"] = "https://accounts.google.com".into()),
        Err(SetError::WrongIssuer),
        "the RISC issuer has its trailing slash"
    );
    assert_eq!(
        with(|c| c["aud"] = "someone-else".into()),
        Err(SetError::WrongAudience)
    );
    assert_eq!(
        with(|c| c["iat"] = (NOW.secs() + LEEWAY_SECS + 1).into()),
        Err(SetError::BadIssuedAt)
    );
    assert!(with(|c| c["iat"] = (NOW.secs() + LEEWAY_SECS).into()).is_ok());
    assert_eq!(
        with(|c| c["iat"] = (NOW.secs() - MAX_AGE_SECS - 1).into()),
        Err(SetError::BadIssuedAt)
    );
    assert!(with(|c| c["iat"] = (NOW.secs() - MAX_AGE_SECS).into()).is_ok());
    assert_eq!(
        with(|c| {
            c.as_object_mut().unwrap().remove("iat");
        }),
        Err(SetError::BadIssuedAt)
    );
    for jti in [json!(null), json!(""), json!("x".repeat(257))] {
        assert_eq!(
            with(|c| c["jti"] = jti.clone()),
            Err(SetError::BadJti),
            "{jti}"
        );
    }
    assert_eq!(with(|c| c["events"] = json!({})), Err(SetError::NoEvents));
    assert_eq!(
        with(|c| {
            c.as_object_mut().unwrap().remove("events");
        }),
        Err(SetError::NoEvents)
    );
}

#[test]
fn each_event_type_is_read_and_has_its_effect() {
    let read = |kind: &str, body: Value| {
        let set = with(|c| c["events"] = json!({ kind: body })).unwrap();
        set.events.into_iter().next().unwrap()
    };
    let cases = [
        (SESSIONS_REVOKED, Some(Effect::RevokeSessions)),
        (TOKENS_REVOKED, Some(Effect::RevokeSessions)),
        (CREDENTIAL_CHANGE_REQUIRED, Some(Effect::RevokeSessions)),
        (ACCOUNT_DISABLED, Some(Effect::Disable)),
        (ACCOUNT_ENABLED, Some(Effect::Record)),
    ];
    for (kind, effect) in cases {
        let event = read(
            kind,
            json!({ "subject": subject("42"), "reason": "hijacking" }),
        );
        assert_eq!(
            event.effect().map(|(sub, e, _)| (sub.to_owned(), e)),
            effect.map(|e| ("42".to_owned(), e)),
            "{kind}"
        );
        assert!(kind.ends_with(event.name()), "{kind} {}", event.name());
    }
    assert_eq!(
        read(
            ACCOUNT_DISABLED,
            json!({ "subject": subject("42"), "reason": "hijacking" })
        ),
        Event::AccountDisabled {
            sub: "42".into(),
            reason: Some("hijacking".into())
        }
    );
    assert_eq!(
        read(VERIFICATION, json!({ "state": "abc" })),
        Event::Verification {
            state: Some("abc".into())
        }
    );
    assert_eq!(read(VERIFICATION, json!({})).effect(), None);
    let unknown = read(
        "https://schemas.openid.net/secevent/risc/event-type/made-up",
        json!({}),
    );
    assert!(matches!(unknown, Event::Ignored { .. }), "{unknown:?}");
    assert_eq!(unknown.effect(), None);
}

#[test]
fn a_subject_that_is_not_an_account_of_this_issuer_is_ignored() {
    for subject in [
        json!({ "subject_type": "iss-sub", "iss": "https://evil.example/", "sub": "42" }),
        json!({ "subject_type": "email", "email": "ada@example.com" }),
        json!({ "subject_type": "iss-sub", "iss": ISSUER, "sub": "" }),
        json!({ "subject_type": "iss-sub", "iss": ISSUER }),
        json!("42"),
    ] {
        let set =
            with(|c| c["events"] = json!({ ACCOUNT_DISABLED: { "subject": subject } })).unwrap();
        assert!(
            matches!(set.events[0], Event::Ignored { .. }),
            "{:?}",
            set.events
        );
        assert_eq!(set.events[0].effect(), None);
    }
}

#[test]
fn the_configuration_document_names_an_issuer_and_a_secure_jwks() {
    let doc = |jwks: &str| {
        RiscConfiguration::parse(
            json!({ "issuer": ISSUER, "jwks_uri": jwks })
                .to_string()
                .as_bytes(),
        )
    };
    assert_eq!(
        doc("https://www.googleapis.com/oauth2/v3/certs").map(|c| c.issuer),
        Some(ISSUER.into())
    );
    assert!(
        doc("http://127.0.0.1:9000/oauth2/v3/certs").is_some(),
        "the local provider"
    );
    assert!(doc("http://www.googleapis.com/oauth2/v3/certs").is_none());
    assert!(doc("not a url").is_none());
    assert!(RiscConfiguration::parse(b"{}").is_none());
    assert!(RiscConfiguration::parse(br#"{"issuer":"","jwks_uri":"https://x.test/"}"#).is_none());
}
