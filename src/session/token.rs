//! The session JWT: claims, issuing, and the checks that turn an untrusted string into a
//! [`Session`].

use jwt_compact::Claims;
use serde::{Deserialize, Serialize};

use super::keys::{CheckedSignature, KeyReject, KeySet};
use crate::time::UnixTime;

/// `typ` of session tokens.
pub const SESSION_TYP: &str = "JWT";

/// The cookie must stay under 1 KB; a token longer than this loses `picture`, then `name`
/// (both are in D1), and is never split over several cookies.
pub const MAX_TOKEN_LEN: usize = 900;

/// The claims of a session token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The site's origin (`AUTH_URL`).
    pub iss: String,
    /// The site's origin too: tokens of another Gatehouse deployment are refused.
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id (a row of `sessions`).
    pub sid: String,
    /// Email.
    pub email: String,
    /// Display name; dropped when the token would get too long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Picture URL; dropped first when the token would get too long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// Role, from D1 at sign-in or at the last renewal.
    pub role: String,
    /// When the session itself ends (created + `SESSION_MAX_AGE`), Unix seconds: the
    /// `expires` of `/auth/session` and the cookie's lifetime after a renewal.
    pub sxp: i64,
}

/// A token as it arrived, from the cookie or an `Authorization: Bearer` header.
#[derive(Clone, Copy, Debug)]
pub struct UntrustedSession<'a>(pub &'a str);

/// A session whose token passed every check. Only [`verify`] builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    claims: SessionClaims,
    issued: UnixTime,
    expires: UnixTime,
}

impl Session {
    /// The verified claims.
    pub fn claims(&self) -> &SessionClaims {
        &self.claims
    }

    /// The token's `iat`: the time as of which its claims were true of D1 (the read at sign-in
    /// or renewal, or the change feed's pull; see `session::feed`).
    pub fn issued(&self) -> UnixTime {
        self.issued
    }

    /// The token's `exp`.
    pub fn token_expires(&self) -> UnixTime {
        self.expires
    }

    /// The first second at which [`verify`] no longer calls this token current: its `exp`, or
    /// the session's absolute end (`sxp`) if that comes first.
    pub fn lapses(&self) -> UnixTime {
        self.expires.min(UnixTime(self.claims.sxp))
    }
}

/// What a token with a good signature is worth now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Within its lifetime: admit without asking D1.
    Current(Session),
    /// Past `exp` (but the session itself not over): only a claim to renewal, which one D1
    /// read grants or refuses. Never admitted as it is.
    Expired(Session),
}

/// Why a token is not a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Header or signature (see [`KeyReject`]).
    Key(KeyReject),
    /// `iss` is not this site.
    WrongIssuer,
    /// `aud` is not this site.
    WrongAudience,
    /// `iat` or `exp` missing.
    MissingTime,
    /// `iat` is in the future.
    IssuedInFuture,
    /// The session's absolute end (`sxp`) has passed.
    SessionOver,
}

/// Checks `token`: signature and header by the key set (the key named by `kid`, in its own
/// algorithm, `typ: JWT`), then `iss` and `aud` equal to `origin`, `iat` not in the future,
/// and `exp` (past it the result is [`Verified::Expired`]).
pub fn verify(
    keys: &KeySet,
    token: UntrustedSession<'_>,
    origin: &str,
    now: UnixTime,
) -> Result<Verified, Reject> {
    let claims: Claims<SessionClaims> = keys.verify(SESSION_TYP, token.0).map_err(Reject::Key)?;
    worth(claims, origin, now)
}

/// [`verify`] for a token under an Ed25519 key whose signature the runtime checked with
/// WebCrypto (`KeySet::ed25519_check`, then `passed`): the same checks, the same result, only
/// the signature math was done elsewhere. A proof made for another token is `BadSignature`.
pub fn verify_checked(
    keys: &KeySet,
    token: UntrustedSession<'_>,
    origin: &str,
    now: UnixTime,
    proof: &CheckedSignature,
) -> Result<Verified, Reject> {
    let claims: Claims<SessionClaims> = keys
        .verify_checked(SESSION_TYP, token.0, proof)
        .map_err(Reject::Key)?;
    worth(claims, origin, now)
}

/// What claims with a good signature are worth at `now` for `origin`.
fn worth(claims: Claims<SessionClaims>, origin: &str, now: UnixTime) -> Result<Verified, Reject> {
    let custom = &claims.custom;
    if custom.iss != origin {
        return Err(Reject::WrongIssuer);
    }
    if custom.aud != origin {
        return Err(Reject::WrongAudience);
    }
    let (Some(iat), Some(exp)) = (claims.issued_at, claims.expiration) else {
        return Err(Reject::MissingTime);
    };
    // No leeway: every token is made by this deployment, whose clocks are Cloudflare's.
    let issued = UnixTime::from_chrono(iat);
    if issued > now {
        return Err(Reject::IssuedInFuture);
    }
    if custom.sxp <= now.secs() {
        return Err(Reject::SessionOver);
    }
    let expires = UnixTime::from_chrono(exp);
    let session = Session {
        claims: claims.custom,
        issued,
        expires,
    };
    Ok(if expires > now {
        Verified::Current(session)
    } else {
        Verified::Expired(session)
    })
}

/// Signs a token for `claims`, issued at `now` (the time as of which the claims are true) and
/// valid `lifetime` seconds from then. Long `picture` and `name` values are dropped to keep the
/// cookie under 1 KB.
pub fn issue(
    keys: &KeySet,
    mut claims: SessionClaims,
    now: UnixTime,
    lifetime: i64,
) -> Option<String> {
    loop {
        let mut jwt = Claims::new(claims.clone());
        jwt.issued_at = Some(now.to_chrono());
        jwt.expiration = Some(now.plus(lifetime).to_chrono());
        let token = keys.sign(SESSION_TYP, &jwt)?;
        if token.len() <= MAX_TOKEN_LEN {
            return Some(token);
        }
        if claims.picture.take().is_some() || claims.name.take().is_some() {
            continue;
        }
        // Only an absurdly long email can get here; such a session cannot be carried.
        return None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::keys::KeyReject;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const ORIGIN: &str = "https://site.test";
    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn keys(kid: &str, byte: u8) -> KeySet {
        let k = URL_SAFE_NO_PAD.encode([byte; 32]);
        KeySet::from_jwk_set(&format!(
            r#"{{"keys":[{{"kty":"oct","kid":"{kid}","k":"{k}"}}]}}"#
        ))
        .unwrap()
    }

    fn claims() -> SessionClaims {
        SessionClaims {
            iss: ORIGIN.into(),
            aud: ORIGIN.into(),
            sub: "user-1".into(),
            sid: "session-1".into(),
            email: "ada@example.com".into(),
            name: Some("Ada".into()),
            picture: None,
            role: "user".into(),
            sxp: NOW.plus(30 * 86_400).secs(),
        }
    }

    fn token() -> String {
        issue(&keys("k1", 1), claims(), NOW, 300).unwrap()
    }

    #[test]
    fn fresh_token_is_a_current_session() {
        let got = verify(
            &keys("k1", 1),
            UntrustedSession(&token()),
            ORIGIN,
            NOW.plus(10),
        )
        .unwrap();
        let Verified::Current(s) = got else {
            panic!("{got:?}")
        };
        assert_eq!(s.claims(), &claims());
        assert_eq!(s.token_expires(), NOW.plus(300));
    }

    #[test]
    fn a_session_lapses_at_exp_or_at_its_end_whichever_is_first() {
        let current =
            |t: &str, at: UnixTime| match verify(&keys("k1", 1), UntrustedSession(t), ORIGIN, at)
                .unwrap()
            {
                Verified::Current(s) => Some(s.lapses()),
                Verified::Expired(_) => None,
            };
        assert_eq!(current(&token(), NOW), Some(NOW.plus(300)));
        // A session 100 s from its absolute end: the token is current only until then.
        let ending = SessionClaims {
            sxp: NOW.plus(100).secs(),
            ..claims()
        };
        let t = issue(&keys("k1", 1), ending, NOW, 300).unwrap();
        assert_eq!(current(&t, NOW.plus(99)), Some(NOW.plus(100)));
        let after = verify(&keys("k1", 1), UntrustedSession(&t), ORIGIN, NOW.plus(100));
        assert_eq!(after, Err(Reject::SessionOver));
    }

    #[test]
    fn expired_token_is_only_a_claim_to_renewal() {
        let got = verify(
            &keys("k1", 1),
            UntrustedSession(&token()),
            ORIGIN,
            NOW.plus(300),
        )
        .unwrap();
        assert!(matches!(got, Verified::Expired(_)), "{got:?}");
    }

    #[test]
    fn token_signed_with_another_key_is_refused() {
        let got = verify(&keys("k1", 2), UntrustedSession(&token()), ORIGIN, NOW);
        assert_eq!(got, Err(Reject::Key(KeyReject::BadSignature)));
    }

    #[test]
    fn token_with_an_unknown_kid_is_refused() {
        let got = verify(&keys("k2", 1), UntrustedSession(&token()), ORIGIN, NOW);
        assert_eq!(got, Err(Reject::Key(KeyReject::UnknownKid)));
    }

    #[test]
    fn alg_none_is_refused() {
        let t = token();
        let mut parts = t.split('.');
        let (_, payload) = (parts.next(), parts.next().unwrap());
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1","typ":"JWT"}"#);
        for forged in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            let got = verify(&keys("k1", 1), UntrustedSession(&forged), ORIGIN, NOW);
            assert!(
                matches!(
                    got,
                    Err(Reject::Key(KeyReject::WrongAlg | KeyReject::Malformed))
                ),
                "{got:?}"
            );
        }
    }

    #[test]
    fn changed_payload_breaks_the_signature() {
        let t = token();
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = claims();
        c.role = "admin".into();
        let mut jwt = Claims::new(c);
        jwt.issued_at = Some(NOW.to_chrono());
        jwt.expiration = Some(NOW.plus(300).to_chrono());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&jwt).unwrap());
        let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
        let got = verify(&keys("k1", 1), UntrustedSession(&forged), ORIGIN, NOW);
        assert_eq!(got, Err(Reject::Key(KeyReject::BadSignature)));
    }

    #[test]
    fn wrong_issuer_or_audience_is_refused() {
        let mut c = claims();
        c.iss = "https://other.test".into();
        let t = issue(&keys("k1", 1), c, NOW, 300).unwrap();
        assert_eq!(
            verify(&keys("k1", 1), UntrustedSession(&t), ORIGIN, NOW),
            Err(Reject::WrongIssuer)
        );
        let mut c = claims();
        c.aud = "https://other.test".into();
        let t = issue(&keys("k1", 1), c, NOW, 300).unwrap();
        assert_eq!(
            verify(&keys("k1", 1), UntrustedSession(&t), ORIGIN, NOW),
            Err(Reject::WrongAudience)
        );
    }

    #[test]
    fn token_issued_in_the_future_is_refused() {
        let got = verify(
            &keys("k1", 1),
            UntrustedSession(&token()),
            ORIGIN,
            NOW.plus(-1),
        );
        assert_eq!(got, Err(Reject::IssuedInFuture));
    }

    #[test]
    fn token_past_the_session_end_is_refused_outright() {
        let got = verify(
            &keys("k1", 1),
            UntrustedSession(&token()),
            ORIGIN,
            NOW.plus(30 * 86_400),
        );
        assert_eq!(got, Err(Reject::SessionOver));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for raw in [
            "",
            ".",
            "..",
            "a.b.c",
            "%%%",
            "eyJ.eyJ.x",
            &"A".repeat(10_000),
        ] {
            let got = verify(&keys("k1", 1), UntrustedSession(raw), ORIGIN, NOW);
            assert!(matches!(got, Err(Reject::Key(_))), "{raw:?}: {got:?}");
        }
    }

    #[test]
    fn long_picture_and_name_are_dropped_to_keep_the_cookie_small() {
        let mut c = claims();
        c.picture = Some(format!(
            "https://lh3.googleusercontent.com/a/{}",
            "x".repeat(800)
        ));
        c.name = Some("N".repeat(400));
        let t = issue(&keys("k1", 1), c, NOW, 300).unwrap();
        assert!(t.len() <= MAX_TOKEN_LEN, "{}", t.len());
        let Ok(Verified::Current(s)) = verify(&keys("k1", 1), UntrustedSession(&t), ORIGIN, NOW)
        else {
            panic!()
        };
        assert_eq!(s.claims().picture, None);
        assert_eq!(s.claims().email, "ada@example.com");
    }

    #[test]
    fn header_names_alg_kid_and_typ() {
        let t = token();
        let header = URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "HS256", "kid": "k1", "typ": "JWT"})
        );
    }

    #[test]
    fn hs256_reference_vector_from_rfc_7515_a_1_verifies() {
        // RFC 7515 Appendix A.1 key and token; `kid` and `typ` checks are ours, so verify with
        // jwt-compact directly to pin the primitive.
        use jwt_compact::alg::{Hs256, Hs256Key};
        use jwt_compact::{AlgorithmExt, UntrustedToken};
        let key = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let untrusted = UntrustedToken::new(token).unwrap();
        assert!(
            Hs256
                .validator::<serde_json::Value>(&Hs256Key::new(key))
                .validate(&untrusted)
                .is_ok()
        );
    }

    const ED_SEED: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn ed_keys(with_hs: bool) -> KeySet {
        // RFC 8037 Appendix A.1 key pair.
        let hs = if with_hs {
            format!(
                r#",{{"kty":"oct","kid":"k1","k":"{}"}}"#,
                URL_SAFE_NO_PAD.encode([1u8; 32])
            )
        } else {
            String::new()
        };
        KeySet::from_jwk_set(&format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"ed1","d":"{ED_SEED}","x":"{ED_X}"}}{hs}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn eddsa_sessions_verify_and_only_public_parts_are_published() {
        let keys = ed_keys(true);
        let t = issue(&keys, claims(), NOW, 300).unwrap();
        let header = URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap();
        assert!(
            String::from_utf8(header)
                .unwrap()
                .contains(r#""alg":"EdDSA""#)
        );
        assert!(matches!(
            verify(&keys, UntrustedSession(&t), ORIGIN, NOW),
            Ok(Verified::Current(_))
        ));
        let jwks = keys.public_jwks().to_string();
        assert!(
            jwks.contains(ED_X) && jwks.contains(r#""kid":"ed1""#),
            "{jwks}"
        );
        assert!(!jwks.contains(ED_SEED), "private part published: {jwks}");
        assert!(
            !jwks.contains(r#""oct""#),
            "symmetric key published: {jwks}"
        );
    }

    #[test]
    fn rfc_8037_a_4_ed25519_signature_verifies() {
        // RFC 8037 Appendix A.4: the JWS of "Example of Ed25519 signing".
        use jwt_compact::{Algorithm, AlgorithmSignature, alg::Ed25519};
        let pk =
            ed25519_compact::PublicKey::from_slice(&URL_SAFE_NO_PAD.decode(ED_X).unwrap()).unwrap();
        let sig = URL_SAFE_NO_PAD
            .decode("hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
            .unwrap();
        let sig = ed25519_compact::Signature::try_from_slice(&sig).unwrap();
        assert!(Ed25519.verify_signature(
            &sig,
            &pk,
            b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
        ));
    }

    #[test]
    fn a_signature_checked_elsewhere_gives_what_verify_gives_and_only_for_its_token() {
        let keys = ed_keys(true);
        let t = issue(&keys, claims(), NOW, 300).unwrap();
        let other = issue(
            &keys,
            SessionClaims {
                sid: "session-2".into(),
                ..claims()
            },
            NOW,
            300,
        )
        .unwrap();
        let check = keys.ed25519_check(SESSION_TYP, &t).unwrap().unwrap();
        assert!(check.verify_natively());
        assert_eq!(check.message, t.rsplit_once('.').unwrap().0);
        let proof = check.passed();
        for at in [NOW, NOW.plus(299), NOW.plus(300), NOW.plus(-1)] {
            assert_eq!(
                verify_checked(&keys, UntrustedSession(&t), ORIGIN, at, &proof),
                verify(&keys, UntrustedSession(&t), ORIGIN, at),
            );
        }
        assert_eq!(
            verify_checked(
                &keys,
                UntrustedSession(&t),
                "https://other.test",
                NOW,
                &proof
            ),
            Err(Reject::WrongIssuer)
        );
        // A proof is worth nothing for another token, even of the same key.
        assert_eq!(
            verify_checked(&keys, UntrustedSession(&other), ORIGIN, NOW, &proof),
            Err(Reject::Key(KeyReject::BadSignature))
        );
        // A changed payload under the old signature: the check it needs fails.
        let parts: Vec<&str> = t.split('.').collect();
        let o: Vec<&str> = other.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], o[1], parts[2]);
        let check = keys.ed25519_check(SESSION_TYP, &forged).unwrap().unwrap();
        assert!(!check.verify_natively());
        // HS256 tokens need no outside check; header errors are those of `verify`.
        let hs = issue(&keys_with_first_hs(), claims(), NOW, 300).unwrap();
        assert_eq!(keys.ed25519_check(SESSION_TYP, &hs), Ok(None));
        assert_eq!(
            keys.ed25519_check(SESSION_TYP, "a.b"),
            Err(KeyReject::Malformed)
        );
        let short = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..40]);
        assert_eq!(
            keys.ed25519_check(SESSION_TYP, &short),
            Err(KeyReject::BadSignature)
        );
    }

    /// `ed_keys(true)` with the HS256 key first (it signs; the Ed25519 key still verifies).
    fn keys_with_first_hs() -> KeySet {
        KeySet::from_jwk_set(&format!(
            r#"{{"keys":[{{"kty":"oct","kid":"k1","k":"{}"}},{{"kty":"OKP","crv":"Ed25519","kid":"ed1","x":"{ED_X}"}}]}}"#,
            URL_SAFE_NO_PAD.encode([1u8; 32])
        ))
        .unwrap()
    }

    #[test]
    fn hs256_token_keyed_with_an_eddsa_public_key_is_refused() {
        use jwt_compact::alg::{Hs256, Hs256Key};
        use jwt_compact::{AlgorithmExt, Header};
        let mut jwt = Claims::new(claims());
        jwt.issued_at = Some(NOW.to_chrono());
        jwt.expiration = Some(NOW.plus(300).to_chrono());
        let header = Header::empty().with_key_id("ed1").with_token_type("JWT");
        let forged = Hs256
            .token(
                &header,
                &jwt,
                &Hs256Key::new(URL_SAFE_NO_PAD.decode(ED_X).unwrap()),
            )
            .unwrap();
        let got = verify(&ed_keys(false), UntrustedSession(&forged), ORIGIN, NOW);
        assert_eq!(got, Err(Reject::Key(KeyReject::WrongAlg)));
    }

    #[test]
    fn key_rotation_logs_no_one_out_until_the_old_key_is_removed() {
        let k = |byte: u8| URL_SAFE_NO_PAD.encode([byte; 32]);
        let set = |kids: &[(&str, u8)]| {
            let keys: Vec<String> = kids
                .iter()
                .map(|(kid, b)| format!(r#"{{"kty":"oct","kid":"{kid}","k":"{}"}}"#, k(*b)))
                .collect();
            KeySet::from_jwk_set(&format!(r#"{{"keys":[{}]}}"#, keys.join(","))).unwrap()
        };
        let old_token = issue(&set(&[("old", 1)]), claims(), NOW, 300).unwrap();
        // Step 1: a new first key; the old one stays to verify.
        let rotated = set(&[("new", 2), ("old", 1)]);
        assert!(verify(&rotated, UntrustedSession(&old_token), ORIGIN, NOW).is_ok());
        let new_token = issue(&rotated, claims(), NOW, 300).unwrap();
        let header = URL_SAFE_NO_PAD
            .decode(new_token.split('.').next().unwrap())
            .unwrap();
        assert!(
            String::from_utf8(header)
                .unwrap()
                .contains(r#""kid":"new""#)
        );
        // Step 2: the old key removed; its tokens are refused, new ones still pass.
        let done = set(&[("new", 2)]);
        assert_eq!(
            verify(&done, UntrustedSession(&old_token), ORIGIN, NOW),
            Err(Reject::Key(KeyReject::UnknownKid))
        );
        assert!(verify(&done, UntrustedSession(&new_token), ORIGIN, NOW).is_ok());
    }

    #[test]
    fn key_sets_with_mismatched_or_missing_private_parts_are_refused() {
        let other_x = URL_SAFE_NO_PAD.encode([9u8; 32]);
        for bad in [
            format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"e","x":"{ED_X}"}}]}}"#),
            format!(
                r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"e","d":"{ED_SEED}","x":"{other_x}"}}]}}"#
            ),
            format!(r#"{{"keys":[{{"kty":"OKP","crv":"X25519","kid":"e","x":"{ED_X}"}}]}}"#),
            format!(
                r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"e","alg":"HS256","d":"{ED_SEED}","x":"{ED_X}"}}]}}"#
            ),
        ] {
            assert!(KeySet::from_jwk_set(&bad).is_err(), "{bad}");
        }
        // A verify-only EdDSA key is fine after the signing key.
        let ok = format!(
            r#"{{"keys":[{{"kty":"oct","kid":"h","k":"{}"}},{{"kty":"OKP","crv":"Ed25519","kid":"e","x":"{ED_X}"}}]}}"#,
            URL_SAFE_NO_PAD.encode([1u8; 32])
        );
        assert!(KeySet::from_jwk_set(&ok).is_ok());
    }
}
