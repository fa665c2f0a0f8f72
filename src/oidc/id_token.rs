//! ID token validation, in the order of `OpenID` Connect Core 1.0, 3.1.3.7. Stricter than the
//! spec where Google allows it: RS256 only, and `azp` checked whenever present.

use jwt_compact::{Claims, UntrustedToken};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::jwks::ProviderKeys;
use super::rs256::{self, CheckedRs256, Refused, Rs256Check};
use crate::time::UnixTime;

/// Clock skew allowed on `exp` and `iat`.
pub const LEEWAY_SECS: i64 = 60;

/// `aud`: a string or an array of strings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audience {
    fn as_slice(&self) -> &[String] {
        match self {
            Self::One(a) => std::slice::from_ref(a),
            Self::Many(v) => v,
        }
    }

    /// Whether `client_id` is among the audiences.
    pub fn contains(&self, client_id: &str) -> bool {
        self.as_slice().iter().any(|a| a == client_id)
    }
}

/// The claims Gatehouse reads from Google's ID token.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct IdClaims {
    /// Issuer.
    pub iss: String,
    /// Audience(s).
    pub aud: Audience,
    /// Authorized party.
    #[serde(default)]
    pub azp: Option<String>,
    /// Google's stable account id.
    pub sub: String,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether Google verified the email.
    #[serde(default)]
    pub email_verified: Option<bool>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Picture URL.
    #[serde(default)]
    pub picture: Option<String>,
    /// The nonce sent in the authorization request.
    #[serde(default)]
    pub nonce: Option<String>,
    /// Google Workspace domain.
    #[serde(default)]
    pub hd: Option<String>,
}

/// What the ID token must match.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// Accepted issuers.
    pub issuers: &'a [String],
    /// Our client id.
    pub client_id: &'a str,
    /// The nonce of this sign-in (from the state cookie).
    pub nonce: &'a str,
    /// Now.
    pub now: UnixTime,
}

/// Why an ID token was refused. Logged, never shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdTokenError {
    /// Not a JWS compact token.
    Malformed,
    /// `alg` is not RS256.
    WrongAlg(String),
    /// No `kid` in the header.
    MissingKid,
    /// `kid` names no key of the provider's JWKS (after one refetch).
    UnknownKid,
    /// The key named by `kid` is not an RS256 signing key.
    UnusableKey,
    /// Signature does not verify.
    BadSignature,
    /// Claims missing or of the wrong type.
    BadClaims,
    /// `iss` is not the provider.
    WrongIssuer,
    /// `aud` does not contain our client id.
    WrongAudience,
    /// `azp` missing with several audiences, or not our client id.
    WrongAuthorizedParty,
    /// `exp` missing or past (with leeway).
    Expired,
    /// `iat` missing or in the future (with leeway).
    IssuedInFuture,
    /// `nonce` missing or not ours.
    WrongNonce,
    /// `sub` empty or `email` missing.
    MissingIdentity,
}

/// The header's `kid`, to pick the JWKS key (and know when a refetch is needed).
pub fn key_id(token: &str) -> Result<String, IdTokenError> {
    let untrusted = UntrustedToken::new(token).map_err(|_| IdTokenError::Malformed)?;
    untrusted
        .header()
        .key_id
        .clone()
        .ok_or(IdTokenError::MissingKid)
}

/// Validates `token` against the provider's keys and `expected`, its signature checked in
/// pure Rust: native code and tests. The worker makes the same checks with the signature
/// checked by WebCrypto ([`signature_check`], then [`validate_checked`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn validate(
    token: &str,
    keys: &ProviderKeys,
    expected: Expected<'_>,
) -> Result<IdClaims, IdTokenError> {
    rules(rs256::native_claims(token, keys)?, expected)
}

/// The RS256 signature check `token` needs (6/7 below: RS256 only, the key named by `kid`).
pub fn signature_check(token: &str, keys: &ProviderKeys) -> Result<Rs256Check, IdTokenError> {
    Ok(rs256::signature_check(token, keys)?)
}

/// Validates `token` whose signature check (from [`signature_check`]) passed: `proof` must be
/// that very check, else `BadSignature`; then the claims, in the order of the spec.
pub fn validate_checked(
    token: &str,
    keys: &ProviderKeys,
    expected: Expected<'_>,
    proof: &CheckedRs256,
) -> Result<IdClaims, IdTokenError> {
    // 6/7. Google signs with RS256 only; any other `alg` (`none`, HS256 keyed with the public
    // key, PS256…) is refused before a key is even looked up (`rs256::signature_check`). The
    // header is not trusted beyond choosing among the provider's own keys.
    rules(rs256::checked_claims(token, keys, proof)?, expected)
}

impl From<Refused> for IdTokenError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Malformed => Self::Malformed,
            Refused::WrongAlg(alg) => Self::WrongAlg(alg),
            Refused::MissingKid => Self::MissingKid,
            Refused::UnknownKid => Self::UnknownKid,
            Refused::UnusableKey => Self::UnusableKey,
            Refused::BadSignature => Self::BadSignature,
            Refused::BadClaims => Self::BadClaims,
        }
    }
}

/// The claims' rules (2–11 of the spec), once the signature verified.
fn rules(claims: Claims<IdClaims>, expected: Expected<'_>) -> Result<IdClaims, IdTokenError> {
    let id = &claims.custom;
    // 2. The issuer must be the provider's.
    if !expected.issuers.contains(&id.iss) {
        return Err(IdTokenError::WrongIssuer);
    }
    // 3. `aud` must contain our client id.
    let audiences = id.aud.as_slice();
    if !audiences.iter().any(|a| a == expected.client_id) {
        return Err(IdTokenError::WrongAudience);
    }
    // 4/5. With several audiences `azp` is required; when present it must be us (stricter than
    // the spec's SHOULD: a token issued to another client is not ours to accept).
    match &id.azp {
        Some(azp) if azp != expected.client_id => return Err(IdTokenError::WrongAuthorizedParty),
        None if audiences.len() > 1 => return Err(IdTokenError::WrongAuthorizedParty),
        _ => {}
    }
    // 9. `exp` in the future, with leeway.
    match claims.expiration {
        Some(exp) if UnixTime::from_chrono(exp).plus(LEEWAY_SECS) > expected.now => {}
        _ => return Err(IdTokenError::Expired),
    }
    // 10. `iat` not in the future, with leeway.
    match claims.issued_at {
        Some(iat) if UnixTime::from_chrono(iat) <= expected.now.plus(LEEWAY_SECS) => {}
        _ => return Err(IdTokenError::IssuedInFuture),
    }
    // 11. `nonce` must equal the one sent (constant time: it is a secret of this sign-in).
    match &id.nonce {
        Some(n) if bool::from(n.as_bytes().ct_eq(expected.nonce.as_bytes())) => {}
        _ => return Err(IdTokenError::WrongNonce),
    }
    if id.sub.is_empty() || id.email.as_deref().is_none_or(str::is_empty) {
        return Err(IdTokenError::MissingIdentity);
    }
    Ok(claims.custom)
}

#[cfg(test)]
mod tests {
    //! One test per rule, in the order of `OpenID` Connect Core 3.1.3.7.
    use std::sync::OnceLock;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jwt_compact::alg::{Hs256, Hs256Key, ModulusBits, Rsa, RsaPrivateKey, RsaPublicKey};
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{AlgorithmExt, Header};
    use serde_json::{Value, json};

    use super::*;
    use crate::oidc::rs256::Rs256Verifier as _;

    const NOW: UnixTime = UnixTime(1_800_000_000);
    const CLIENT: &str = "client-1";
    const NONCE: &str = "n-0S6_WzA2Mj";

    fn key() -> &'static (RsaPrivateKey, RsaPublicKey) {
        static KEY: OnceLock<(RsaPrivateKey, RsaPublicKey)> = OnceLock::new();
        KEY.get_or_init(|| {
            let (sk, pk) =
                Rsa::generate(&mut rand::rngs::OsRng, ModulusBits::TwoKibibytes).unwrap();
            (sk.into_inner(), pk.into_inner())
        })
    }

    fn jwks(extra: &Value) -> ProviderKeys {
        let mut jwk = serde_json::to_value(JsonWebKey::from(&key().1)).unwrap();
        jwk["kid"] = "k1".into();
        for (k, v) in extra.as_object().unwrap() {
            jwk[k] = v.clone();
        }
        ProviderKeys::parse(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap()
    }

    fn claims() -> Value {
        json!({
            "iss": "https://accounts.google.com", "aud": CLIENT, "azp": CLIENT, "sub": "1234567890",
            "email": "ada@example.com", "email_verified": true, "nonce": NONCE,
            "iat": NOW.secs() - 10, "exp": NOW.secs() + 3590,
        })
    }

    fn sign_with(kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::empty().with_token_type("JWT");
        if let Some(kid) = kid {
            header = header.with_key_id(kid);
        }
        Rsa::rs256()
            .token(&header, &jwt_compact::Claims::new(claims.clone()), &key().0)
            .unwrap()
    }

    fn check(token: &str, keys: &ProviderKeys) -> Result<IdClaims, IdTokenError> {
        let issuers = [
            String::from("https://accounts.google.com"),
            String::from("accounts.google.com"),
        ];
        validate(
            token,
            keys,
            Expected {
                issuers: &issuers,
                client_id: CLIENT,
                nonce: NONCE,
                now: NOW,
            },
        )
    }

    fn with(f: impl FnOnce(&mut Value)) -> Result<IdClaims, IdTokenError> {
        let mut c = claims();
        f(&mut c);
        check(&sign_with(Some("k1"), &c), &jwks(&json!({})))
    }

    #[test]
    fn a_checked_signature_counts_for_its_own_token_only() {
        let keys = jwks(&json!({}));
        let issuers = [String::from("https://accounts.google.com")];
        let expected = Expected {
            issuers: &issuers,
            client_id: CLIENT,
            nonce: NONCE,
            now: NOW,
        };
        let first = sign_with(Some("k1"), &claims());
        let mut c = claims();
        c["email"] = "mallory@example.com".into();
        let second = sign_with(Some("k1"), &c);
        let check = signature_check(&first, &keys).unwrap();
        assert!(check.verify_natively());
        assert_eq!(check.message, first.rsplit_once('.').unwrap().0);
        let proof = check.passed();
        assert!(validate_checked(&first, &keys, expected, &proof).is_ok());
        assert_eq!(
            validate_checked(&second, &keys, expected, &proof),
            Err(IdTokenError::BadSignature)
        );
        // The first token's signature over the second token's payload fails the check.
        let (head, _) = first.rsplit_once('.').unwrap();
        let (_, sig) = second.rsplit_once('.').unwrap();
        let spliced = format!("{head}.{sig}");
        assert!(!signature_check(&spliced, &keys).unwrap().verify_natively());
        // The seam's native verifier says the same as the check.
        let native = crate::oidc::rs256::NativeRs256;
        let good = signature_check(&first, &keys).unwrap();
        let bad = signature_check(&spliced, &keys).unwrap();
        assert!(futures_ready(native.verify(&good)));
        assert!(!futures_ready(native.verify(&bad)));
    }

    /// The output of a future that is ready at once (the native verifier's).
    fn futures_ready(f: impl std::future::Future<Output = bool>) -> bool {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the native verifier is synchronous"),
        }
    }

    #[test]
    fn weak_or_odd_rsa_keys_in_the_jwks_are_unusable() {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let usable = |n: &[u8], e: &[u8]| {
            let set = json!({ "keys": [{ "kty": "RSA", "kid": "k", "n": b64(n), "e": b64(e) }] });
            ProviderKeys::parse(set.to_string().as_bytes())
                .unwrap()
                .get("k")
                .unwrap()
                .rs256()
                .is_some()
        };
        let n2048 = [0xC5u8; 256];
        assert!(usable(&n2048, &[1, 0, 1]));
        assert!(
            usable(&[&[0u8][..], &n2048].concat(), &[0, 1, 0, 1]),
            "leading zeros are not bits"
        );
        assert!(usable(&[0xC5u8; 512], &[3]), "4096 bits");
        assert!(
            !usable(&[0xC5u8; 128], &[1, 0, 1]),
            "1024 bits: too weak for RS256"
        );
        assert!(!usable(&[0x7Fu8; 256], &[1, 0, 1]), "2047 bits");
        assert!(!usable(&[0xC5u8; 513], &[1, 0, 1]), "over 4096 bits");
        assert!(!usable(&n2048, &[1]), "e = 1");
        assert!(!usable(&n2048, &[1, 0, 0]), "an even e");
        assert!(!usable(&n2048, &[1, 0, 0, 0, 1]), "an e over 32 bits");
        assert!(!usable(&[], &[1, 0, 1]), "no modulus");
        assert!(!usable(&[0; 300], &[1, 0, 1]), "a modulus of zeros");
        assert!(!usable(&n2048, &[]), "no exponent");
    }

    #[test]
    fn a_token_as_google_makes_it_is_accepted() {
        let id = with(|_| {}).unwrap();
        assert_eq!(
            (id.sub.as_str(), id.email.as_deref()),
            ("1234567890", Some("ada@example.com"))
        );
        assert_eq!(
            with(|c| c["iss"] = "accounts.google.com".into()).map(|c| c.iss),
            Ok("accounts.google.com".into())
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let token = sign_with(Some("k1"), &claims());
        let payload = token.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
        assert_eq!(
            check(&format!("{header}.{payload}."), &jwks(&json!({}))),
            Err(IdTokenError::WrongAlg("none".into()))
        );
    }

    #[test]
    fn hs256_keyed_with_the_providers_public_key_is_refused() {
        let n = match JsonWebKey::from(&key().1) {
            JsonWebKey::Rsa { modulus, .. } => modulus.into_owned(),
            _ => unreachable!(),
        };
        let header = Header::empty().with_key_id("k1");
        let forged = Hs256
            .token(
                &header,
                &jwt_compact::Claims::new(claims()),
                &Hs256Key::new(n),
            )
            .unwrap();
        assert_eq!(
            check(&forged, &jwks(&json!({}))),
            Err(IdTokenError::WrongAlg("HS256".into()))
        );
    }

    #[test]
    fn an_alg_the_jwks_key_does_not_declare_is_refused() {
        let token = sign_with(Some("k1"), &claims());
        assert_eq!(
            check(&token, &jwks(&json!({ "alg": "RS512" }))),
            Err(IdTokenError::UnusableKey)
        );
        assert_eq!(
            check(&token, &jwks(&json!({ "use": "enc" }))),
            Err(IdTokenError::UnusableKey)
        );
        assert!(check(&token, &jwks(&json!({ "alg": "RS256", "use": "sig" }))).is_ok());
    }

    #[test]
    fn a_missing_or_unknown_kid_is_refused() {
        assert_eq!(
            check(&sign_with(None, &claims()), &jwks(&json!({}))),
            Err(IdTokenError::MissingKid)
        );
        assert_eq!(
            check(&sign_with(Some("k9"), &claims()), &jwks(&json!({}))),
            Err(IdTokenError::UnknownKid)
        );
    }

    #[test]
    fn a_signature_by_another_key_is_refused() {
        let token = sign_with(Some("k1"), &claims());
        let (head, sig) = token.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[0] ^= 1;
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(
            check(&forged, &jwks(&json!({}))),
            Err(IdTokenError::BadSignature)
        );
    }

    #[test]
    fn iss_must_be_the_provider() {
        assert_eq!(
            with(|c| c["iss"] = "https://evil.example".into()).unwrap_err(),
            IdTokenError::WrongIssuer
        );
        assert_eq!(
            with(|c| {
                c.as_object_mut().unwrap().remove("iss");
            })
            .unwrap_err(),
            IdTokenError::BadClaims
        );
    }

    #[test]
    fn aud_must_contain_the_client_id() {
        assert_eq!(
            with(|c| c["aud"] = "client-2".into()).unwrap_err(),
            IdTokenError::WrongAudience
        );
        assert_eq!(
            with(|c| c["aud"] = json!(["client-2", "client-3"])).unwrap_err(),
            IdTokenError::WrongAudience
        );
    }

    #[test]
    fn several_audiences_require_azp_equal_to_the_client_id() {
        let many = |c: &mut Value| c["aud"] = json!([CLIENT, "client-2"]);
        assert!(with(many).is_ok());
        assert_eq!(
            with(|c| {
                many(c);
                c.as_object_mut().unwrap().remove("azp");
            })
            .unwrap_err(),
            IdTokenError::WrongAuthorizedParty
        );
        assert_eq!(
            with(|c| {
                many(c);
                c["azp"] = "client-2".into();
            })
            .unwrap_err(),
            IdTokenError::WrongAuthorizedParty
        );
    }

    #[test]
    fn azp_when_present_must_be_the_client_id() {
        assert_eq!(
            with(|c| c["azp"] = "client-2".into()).unwrap_err(),
            IdTokenError::WrongAuthorizedParty
        );
        assert!(
            with(|c| {
                c.as_object_mut().unwrap().remove("azp");
            })
            .is_ok()
        );
    }

    #[test]
    fn exp_must_be_in_the_future_with_60_s_leeway() {
        assert!(with(|c| c["exp"] = (NOW.secs() - 59).into()).is_ok());
        assert_eq!(
            with(|c| c["exp"] = (NOW.secs() - 60).into()).unwrap_err(),
            IdTokenError::Expired
        );
        assert_eq!(
            with(|c| {
                c.as_object_mut().unwrap().remove("exp");
            })
            .unwrap_err(),
            IdTokenError::Expired
        );
    }

    #[test]
    fn iat_must_not_be_in_the_future_beyond_60_s() {
        assert!(with(|c| c["iat"] = (NOW.secs() + 60).into()).is_ok());
        assert_eq!(
            with(|c| c["iat"] = (NOW.secs() + 61).into()).unwrap_err(),
            IdTokenError::IssuedInFuture
        );
        assert_eq!(
            with(|c| {
                c.as_object_mut().unwrap().remove("iat");
            })
            .unwrap_err(),
            IdTokenError::IssuedInFuture
        );
    }

    #[test]
    fn nonce_must_equal_the_state_cookies() {
        assert_eq!(
            with(|c| c["nonce"] = "other".into()).unwrap_err(),
            IdTokenError::WrongNonce
        );
        assert_eq!(
            with(|c| {
                c.as_object_mut().unwrap().remove("nonce");
            })
            .unwrap_err(),
            IdTokenError::WrongNonce
        );
    }

    #[test]
    fn sub_and_email_are_required() {
        assert_eq!(
            with(|c| c["sub"] = "".into()).unwrap_err(),
            IdTokenError::MissingIdentity
        );
        assert_eq!(
            with(|c| {
                c.as_object_mut().unwrap().remove("email");
            })
            .unwrap_err(),
            IdTokenError::MissingIdentity
        );
        assert_eq!(
            with(|c| {
                c.as_object_mut().unwrap().remove("sub");
            })
            .unwrap_err(),
            IdTokenError::BadClaims
        );
    }

    #[test]
    fn email_verified_must_be_a_boolean() {
        // The app refuses `false` (no allowlist match, no linking); a string is not Google's.
        assert_eq!(
            with(|c| c["email_verified"] = false.into())
                .unwrap()
                .email_verified,
            Some(false)
        );
        assert_eq!(
            with(|c| c["email_verified"] = "true".into()).unwrap_err(),
            IdTokenError::BadClaims
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for raw in ["", "a.b", "a.b.c", "not-a-jwt", "....."] {
            assert!(
                matches!(
                    check(raw, &jwks(&json!({}))),
                    Err(IdTokenError::Malformed | IdTokenError::WrongAlg(_))
                ),
                "{raw}"
            );
        }
    }
}
