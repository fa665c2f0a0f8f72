//! SETs: claims and header of each event, each twist, and the refused combinations.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_compact::alg::RsaPublicKey;
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt as _, UntrustedToken};

use super::*;

const ISS: &str = "http://idp.test/";
const AUD: &str = "cid.apps.googleusercontent.com";
const JTI: &str = "0123456789abcdef0123456789abcdef";
const SUB: &str = "109876543210987654321";
const NOW: i64 = 1_700_000_000;

fn input(event: Event) -> SetInput<'static> {
    SetInput {
        issuer: ISS,
        aud: AUD,
        jti: JTI,
        event,
        sub: Some(SUB).filter(|_| event.has_subject()),
        reason: None,
        state: None,
        twist: None,
        now: NOW,
    }
}

fn decode(token: &str) -> (Value, Value, Vec<u8>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let json = |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    (
        json(parts[0]),
        json(parts[1]),
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
    )
}

fn public(key: &SigningKey) -> RsaPublicKey {
    let jwk: JsonWebKey<'_> = serde_json::from_value(key.public_jwk().clone()).unwrap();
    RsaPublicKey::try_from(&jwk).unwrap()
}

/// The claims, if `token` is RS256 and verifies with `key`.
fn verified(token: &str, key: &SigningKey) -> Option<Value> {
    let untrusted = UntrustedToken::new(token).ok()?;
    let token = Rsa::rs256()
        .validator::<Value>(&public(key))
        .validate(&untrusted)
        .ok()?;
    // jwt-compact reads `iat` into its standard claims; put it back.
    let mut claims = token.claims().custom.clone();
    if let Some(iat) = token.claims().issued_at {
        claims["iat"] = iat.timestamp().into();
    }
    Some(claims)
}

fn subject(iss: &str) -> Value {
    json!({ "subject_type": "iss-sub", "iss": iss, "sub": SUB })
}

#[test]
fn names_and_uris() {
    for event in Event::ALL {
        assert_eq!(Event::parse(event.name()), Some(event));
    }
    for twist in SetTwist::ALL {
        assert_eq!(SetTwist::parse(twist.name()), Some(twist));
    }
    assert_eq!(Event::parse("sessions_revoked"), None);
    assert_eq!(SetTwist::parse("alg-none"), None);
    assert_eq!(
        Event::TokensRevoked.uri(),
        "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked"
    );
    assert_eq!(
        Event::Unknown.uri(),
        "https://schemas.openid.net/secevent/risc/event-type/made-up"
    );
    for event in Event::ALL
        .into_iter()
        .filter(|e| *e != Event::TokensRevoked)
    {
        assert_eq!(
            event.uri(),
            format!(
                "https://schemas.openid.net/secevent/risc/event-type/{}",
                if event == Event::Unknown {
                    "made-up"
                } else {
                    event.name()
                }
            )
        );
    }
}

#[test]
fn each_event_is_a_signed_set_with_googles_claims() {
    let key = SigningKey::generate().unwrap();
    for event in Event::ALL {
        let token = build_set(&key, &input(event)).unwrap();
        let (header, _, _) = decode(&token);
        assert_eq!(
            header,
            json!({ "alg": "RS256", "kid": key.kid(), "typ": "secevent+jwt" }),
            "{event}"
        );
        let claims = verified(&token, &key).unwrap_or_else(|| panic!("{event} verifies"));
        let body = if event.has_subject() {
            json!({ "subject": subject(ISS) })
        } else {
            json!({})
        };
        assert_eq!(
            claims,
            json!({
                "iss": ISS, "aud": AUD, "iat": NOW, "jti": JTI,
                "events": { event.uri(): body },
            }),
            "{event}"
        );
    }

    let disabled = SetInput {
        reason: Some("hijacking"),
        ..input(Event::AccountDisabled)
    };
    let claims = verified(&build_set(&key, &disabled).unwrap(), &key).unwrap();
    assert_eq!(
        claims["events"][Event::AccountDisabled.uri()],
        json!({ "subject": subject(ISS), "reason": "hijacking" })
    );

    let verification = SetInput {
        state: Some("state-123"),
        ..input(Event::Verification)
    };
    let claims = verified(&build_set(&key, &verification).unwrap(), &key).unwrap();
    assert_eq!(
        claims["events"],
        json!({ Event::Verification.uri(): { "state": "state-123" } })
    );
    assert!(claims.get("exp").is_none());
}

#[test]
fn each_twist_produces_what_it_says() {
    let key = SigningKey::generate().unwrap();
    let honest = set_claims(&input(Event::SessionsRevoked));
    let uri = Event::SessionsRevoked.uri();
    for twist in SetTwist::ALL {
        let twisted = SetInput {
            twist: Some(twist),
            ..input(Event::SessionsRevoked)
        };
        let token = build_set(&key, &twisted).unwrap();
        let (header, claims, signature) = decode(&token);
        // What differs from the honest claims, and whether the token still verifies.
        let mut expected = honest.clone();
        let mut verifies = true;
        match twist {
            SetTwist::BadSignature => {
                verifies = false;
                // Flipping the byte back makes it verify: only that byte is wrong.
                let repaired = flip_last_signature_byte(&token).unwrap();
                assert!(verified(&repaired, &key).is_some());
            }
            SetTwist::WrongAud => expected["aud"] = WRONG_AUDIENCE.into(),
            SetTwist::StaleIat => expected["iat"] = (NOW - 30 * 24 * 3600).into(),
            SetTwist::FutureIat => expected["iat"] = (NOW + 3600).into(),
            SetTwist::WrongIss => expected["iss"] = "https://evil.example/".into(),
            SetTwist::UnknownKid => {
                verifies = false;
                assert_ne!(header["kid"], key.kid());
                assert_eq!(header["kid"].as_str().unwrap().len(), 20);
                // The real key signed it all the same.
                let untrusted = UntrustedToken::new(&token).unwrap();
                assert!(
                    Rsa::rs256()
                        .validator::<Value>(&public(&key))
                        .validate(&untrusted)
                        .is_ok()
                );
            }
            SetTwist::AlgNone => {
                verifies = false;
                assert_eq!(
                    header,
                    json!({ "alg": "none", "kid": key.kid(), "typ": "secevent+jwt" })
                );
                assert!(signature.is_empty());
                assert!(token.ends_with('.'));
            }
            SetTwist::NoJti => drop(expected.as_object_mut().unwrap().remove("jti")),
            SetTwist::NoEvents => drop(expected.as_object_mut().unwrap().remove("events")),
            SetTwist::SubjectOtherIss => {
                expected["events"][uri]["subject"]["iss"] = "https://evil.example/".into();
            }
        }
        assert_eq!(claims, expected, "{twist}");
        if twist != SetTwist::AlgNone {
            assert_eq!(header["alg"], "RS256", "{twist}");
            assert_eq!(header["typ"], "secevent+jwt", "{twist}");
        }
        if twist != SetTwist::UnknownKid {
            assert_eq!(header["kid"], key.kid(), "{twist}");
        }
        // Claim twists are honestly signed; the others are not verifiable with the JWKS.
        let by_jwks = verified(&token, &key).is_some() && header["kid"] == key.kid();
        assert_eq!(by_jwks, verifies, "{twist}");
    }
    assert!(
        verified(
            &build_set(&key, &input(Event::AccountEnabled)).unwrap(),
            &key
        )
        .is_some()
    );
}

#[test]
fn meaningless_combinations_are_refused() {
    assert!(input(Event::SessionsRevoked).check().is_ok());
    assert!(input(Event::Verification).check().is_ok());
    let refused = [
        SetInput {
            sub: None,
            ..input(Event::SessionsRevoked)
        },
        SetInput {
            sub: Some(SUB),
            ..input(Event::Verification)
        },
        SetInput {
            reason: Some("hijacking"),
            ..input(Event::SessionsRevoked)
        },
        SetInput {
            state: Some("s"),
            ..input(Event::AccountDisabled)
        },
        SetInput {
            twist: Some(SetTwist::SubjectOtherIss),
            ..input(Event::Verification)
        },
        SetInput {
            sub: Some(""),
            ..input(Event::SessionsRevoked)
        },
        SetInput {
            jti: "",
            ..input(Event::SessionsRevoked)
        },
        SetInput {
            aud: "",
            ..input(Event::SessionsRevoked)
        },
    ];
    for bad in refused {
        assert!(bad.check().is_err(), "{bad:?}");
    }
    assert!(
        SetInput {
            reason: Some("bulk-account"),
            ..input(Event::AccountDisabled)
        }
        .check()
        .is_ok()
    );
    assert!(
        SetInput {
            twist: Some(SetTwist::NoEvents),
            ..input(Event::Verification)
        }
        .check()
        .is_ok()
    );
}
