//! Unit tests of identities, scopes, the ID token claims and their twists, and the signing key.

use super::*;

#[test]
fn default_sub_is_stable_numeric_and_case_insensitive() {
    let sub = default_sub("Ada@Example.com");
    assert_eq!(sub.len(), 21);
    assert!(sub.starts_with('1') && sub.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(sub, default_sub("ada@example.com"));
    assert_ne!(sub, default_sub("grace@example.com"));
}

#[test]
fn scopes() {
    assert_eq!(Scopes::parse("openid"), Some(Scopes::default()));
    let all = Scopes {
        email: true,
        profile: true,
    };
    assert_eq!(Scopes::parse("openid email profile"), Some(all));
    assert_eq!(
        Scopes::parse(&format!("{EMAIL_SCOPE_URL} openid  {PROFILE_SCOPE_URL}")),
        Some(all)
    );
    assert_eq!(Scopes::parse("email profile"), None);
    assert_eq!(Scopes::parse("openid drive"), None);
    assert_eq!(Scopes::parse(""), None);
    assert_eq!(
        all.granted(),
        format!("{EMAIL_SCOPE_URL} {PROFILE_SCOPE_URL} openid")
    );
}

#[test]
fn claims_follow_scopes() {
    let mut identity = Identity::for_email("ada@example.com");
    identity.name = Some("Ada King Lovelace".into());
    let issuance = Issuance::default();
    let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let mut input = TokenInput {
        issuer: "http://idp",
        client_id: "cid",
        identity: &identity,
        scopes: Scopes {
            email: true,
            profile: true,
        },
        nonce: Some("n"),
        access_token: "at",
        issuance: &issuance,
        now,
    };
    let full = serde_json::to_value(id_token_claims(&input)).unwrap();
    assert_eq!(full["aud"], "cid");
    assert_eq!(full["azp"], "cid");
    assert_eq!(full["email_verified"], true);
    assert_eq!(full["given_name"], "Ada");
    assert_eq!(full["family_name"], "King Lovelace");
    assert_eq!(full["exp"], 1_700_003_600);
    assert_eq!(full["nonce"], "n");
    assert!(full.get("hd").is_none());

    input.scopes = Scopes::default();
    input.nonce = None;
    let bare = serde_json::to_value(id_token_claims(&input)).unwrap();
    for absent in [
        "email",
        "email_verified",
        "name",
        "picture",
        "given_name",
        "nonce",
    ] {
        assert!(bare.get(absent).is_none(), "{absent} should be absent");
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

const NOW: i64 = 1_700_000_000;

fn claims_with(twists: &[Twist]) -> Value {
    let identity = Identity::for_email("ada@example.com");
    let issuance = Issuance {
        twists: twists.to_vec(),
        ..Issuance::default()
    };
    let input = TokenInput {
        issuer: "http://idp",
        client_id: "cid",
        identity: &identity,
        scopes: Scopes {
            email: true,
            profile: true,
        },
        nonce: Some("n"),
        access_token: "at",
        issuance: &issuance,
        now: DateTime::from_timestamp(NOW, 0).unwrap(),
    };
    twisted_claims(&input).unwrap()
}

#[test]
fn claim_twists_change_exactly_their_claims() {
    let honest = claims_with(&[]);
    assert_eq!(honest["iss"], "http://idp");
    assert_eq!(honest["iat"], NOW);
    assert_eq!(honest["exp"], NOW + 3600);
    let signing = Twist::ALL.iter().filter(|t| t.kind() != Kind::Claims);
    for twist in signing {
        assert_eq!(
            claims_with(&[*twist]),
            honest,
            "{twist} leaves the claims alone"
        );
    }
    let with = |t: Twist| claims_with(&[t]);
    let changed = |t: Twist| {
        let twisted = with(t);
        let mut names: Vec<String> = honest
            .as_object()
            .unwrap()
            .keys()
            .chain(twisted.as_object().unwrap().keys())
            .filter(|k| honest.get(k.as_str()) != twisted.get(k.as_str()))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    };
    for twist in Twist::ALL
        .iter()
        .copied()
        .filter(|t| t.kind() == Kind::Claims)
    {
        let c = with(twist);
        let expect: &[&str] = match twist {
            Twist::WrongIss => {
                assert_eq!(c["iss"], EVIL_ISSUER);
                &["iss"]
            }
            Twist::NoIss => {
                assert!(c.get("iss").is_none());
                &["iss"]
            }
            Twist::WrongAud => {
                assert_eq!(c["aud"], WRONG_AUDIENCE);
                assert_eq!(c["azp"], "cid");
                &["aud"]
            }
            Twist::AudArrayWithAzp => {
                assert_eq!(c["aud"], json!(["cid", OTHER_CLIENT]));
                assert_eq!(c["azp"], "cid");
                &["aud"]
            }
            Twist::AudArrayNoAzp => {
                assert_eq!(c["aud"], json!(["cid", OTHER_CLIENT]));
                assert!(c.get("azp").is_none());
                &["aud", "azp"]
            }
            Twist::AudArrayWrongAzp => {
                assert_eq!(c["aud"], json!(["cid", OTHER_CLIENT]));
                assert_eq!(c["azp"], OTHER_CLIENT);
                &["aud", "azp"]
            }
            Twist::WrongAzp => {
                assert_eq!(c["aud"], "cid");
                assert_eq!(c["azp"], OTHER_CLIENT);
                &["azp"]
            }
            Twist::Expired => {
                assert_eq!(
                    (&c["iat"], &c["exp"]),
                    (&json!(NOW - 3720), &json!(NOW - 120))
                );
                &["exp", "iat"]
            }
            Twist::ExpiredWithinLeeway => {
                assert_eq!(
                    (&c["iat"], &c["exp"]),
                    (&json!(NOW - 3630), &json!(NOW - 30))
                );
                &["exp", "iat"]
            }
            Twist::NoExp => {
                assert!(c.get("exp").is_none());
                &["exp"]
            }
            Twist::IatFuture => {
                assert_eq!(
                    (&c["iat"], &c["exp"]),
                    (&json!(NOW + 300), &json!(NOW + 3900))
                );
                &["exp", "iat"]
            }
            Twist::IatFutureWithinLeeway => {
                assert_eq!(
                    (&c["iat"], &c["exp"]),
                    (&json!(NOW + 30), &json!(NOW + 3630))
                );
                &["exp", "iat"]
            }
            Twist::NoIat => {
                assert!(c.get("iat").is_none());
                &["iat"]
            }
            Twist::NoNonce => {
                assert!(c.get("nonce").is_none());
                &["nonce"]
            }
            Twist::WrongNonce => {
                assert_eq!(c["nonce"], "wrong-nonce");
                &["nonce"]
            }
            Twist::UnverifiedEmail => {
                assert_eq!(c["email_verified"], false);
                assert_eq!(c["email"], "ada@example.com");
                &["email_verified"]
            }
            Twist::NoEmail => {
                assert!(c.get("email").is_none() && c.get("email_verified").is_none());
                &["email", "email_verified"]
            }
            Twist::NoSub => {
                assert!(c.get("sub").is_none());
                &["sub"]
            }
            Twist::EmptySub => {
                assert_eq!(c["sub"], "");
                &["sub"]
            }
            Twist::EmailVerifiedString => {
                assert_eq!(c["email_verified"], "true");
                &["email_verified"]
            }
            other => panic!("{other} is not a claims twist"),
        };
        assert_eq!(changed(twist), expect, "{twist}");
    }
    // Removals win; twists for different slots combine.
    let c = claims_with(&[Twist::Expired, Twist::NoIat, Twist::WrongIss]);
    assert_eq!(c["exp"], NOW - 120);
    assert!(c.get("iat").is_none());
    assert_eq!(c["iss"], EVIL_ISSUER);
}

fn token_with(key: &SigningKey, foreign: &SigningKey, twist: Option<Twist>) -> String {
    let identity = Identity::for_email("ada@example.com");
    let issuance = Issuance {
        twists: twist.into_iter().collect(),
        ..Issuance::default()
    };
    let input = TokenInput {
        issuer: "http://idp",
        client_id: "cid",
        identity: &identity,
        scopes: Scopes {
            email: true,
            profile: false,
        },
        nonce: Some("n"),
        access_token: "at",
        issuance: &issuance,
        now: Utc::now(),
    };
    build_id_token(key, Some(foreign), &input).unwrap()
}

#[test]
fn signing_twists_produce_what_they_say() {
    use jwt_compact::UntrustedToken;
    use jwt_compact::alg::RsaPublicKey;

    let key = SigningKey::generate().unwrap();
    let foreign = SigningKey::generate().unwrap();
    assert_ne!(key.kid(), foreign.kid());
    let public_of = |k: &SigningKey| {
        let jwk: JsonWebKey<'_> = serde_json::from_value(k.public_jwk().clone()).unwrap();
        RsaPublicKey::try_from(&jwk).unwrap()
    };
    let public = public_of(&key);
    let verifies = |alg: Rsa, token: &str, with: &RsaPublicKey| {
        let untrusted = UntrustedToken::new(token).unwrap();
        alg.validator::<Value>(with).validate(&untrusted).is_ok()
    };
    let honest = token_with(&key, &foreign, None);
    let (header, honest_claims, _) = decode(&honest);
    assert_eq!(
        header,
        json!({ "alg": "RS256", "kid": key.kid(), "typ": "JWT" })
    );
    assert!(verifies(Rsa::rs256(), &honest, &public));

    for twist in Twist::ALL
        .iter()
        .copied()
        .filter(|t| t.kind() == Kind::Signing)
    {
        let token = token_with(&key, &foreign, Some(twist));
        if twist == Twist::Garbage {
            assert_eq!(token, GARBAGE_ID_TOKEN);
            assert!(UntrustedToken::new(&token).is_err());
            continue;
        }
        let (header, claims, signature) = decode(&token);
        // Only the signature and header differ from an honest token.
        let mut expected = honest_claims.clone();
        for time in ["iat", "exp"] {
            expected[time] = claims[time].clone();
        }
        expected["at_hash"] = claims["at_hash"].clone();
        assert_eq!(claims, expected, "{twist}");
        assert_eq!(header["typ"], "JWT", "{twist}");
        match twist {
            Twist::ForeignKey => {
                assert_eq!(header["alg"], "RS256");
                assert_eq!(header["kid"], key.kid());
                assert!(!verifies(Rsa::rs256(), &token, &public));
                assert!(verifies(Rsa::rs256(), &token, &public_of(&foreign)));
            }
            Twist::AlgNone => {
                assert_eq!(
                    header,
                    json!({ "alg": "none", "kid": key.kid(), "typ": "JWT" })
                );
                assert!(signature.is_empty() && token.ends_with('.'));
            }
            Twist::Hs256Pubkey => {
                assert_eq!(header["alg"], "HS256");
                assert_eq!(header["kid"], key.kid());
                let secret = Hs256Key::new(key.public_pem().unwrap().as_bytes());
                let untrusted = UntrustedToken::new(&token).unwrap();
                assert!(
                    Hs256
                        .validator::<Value>(&secret)
                        .validate(&untrusted)
                        .is_ok()
                );
                assert!(
                    key.public_pem()
                        .unwrap()
                        .starts_with("-----BEGIN PUBLIC KEY-----")
                );
            }
            Twist::NoKid => {
                assert_eq!(header, json!({ "alg": "RS256", "typ": "JWT" }));
                assert!(verifies(Rsa::rs256(), &token, &public));
            }
            Twist::UnknownKid => {
                assert_eq!(header["alg"], "RS256");
                let kid = header["kid"].as_str().unwrap();
                assert!(kid != key.kid() && kid.len() == key.kid().len());
                assert!(verifies(Rsa::rs256(), &token, &public));
            }
            Twist::Rs512 => {
                assert_eq!(header["alg"], "RS512");
                assert_eq!(header["kid"], key.kid());
                assert!(verifies(Rsa::rs512(), &token, &public));
            }
            Twist::Ps256 => {
                assert_eq!(header["alg"], "PS256");
                assert_eq!(header["kid"], key.kid());
                assert!(verifies(Rsa::ps256(), &token, &public));
                assert!(!verifies(Rsa::rs256(), &token, &public));
            }
            Twist::BadSignature => {
                assert_eq!(header["alg"], "RS256");
                assert_eq!(header["kid"], key.kid());
                assert_eq!(signature.len(), 256);
                assert!(!verifies(Rsa::rs256(), &token, &public));
                // Flipping the byte back makes it verify: only that byte is wrong.
                let mut fixed = signature.clone();
                *fixed.last_mut().unwrap() ^= 0x01;
                let (signed, _) = token.rsplit_once('.').unwrap();
                let repaired = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(fixed));
                assert!(verifies(Rsa::rs256(), &repaired, &public));
            }
            other => panic!("{other} is not a signing twist"),
        }
    }
}
