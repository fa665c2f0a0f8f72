//! ID token validation, in the order of OpenID Connect Core 1.0, 3.1.3.7. Stricter than the
//! spec where Google allows it: RS256 only, and `azp` checked whenever present.

use jwt_compact::alg::Rsa;
use jwt_compact::{AlgorithmExt, Claims, UntrustedToken};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::jwks::ProviderKeys;
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
}

/// The claims Gatehouse reads from Google's ID token.
#[derive(Clone, Debug, Deserialize)]
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

/// Validates `token` against the provider's keys and `expected`.
pub fn validate(
    token: &str,
    keys: &ProviderKeys,
    expected: Expected<'_>,
) -> Result<IdClaims, IdTokenError> {
    let untrusted = UntrustedToken::new(token).map_err(|_| IdTokenError::Malformed)?;
    // 6/7. Google signs with RS256 only; any other `alg` (`none`, HS256 keyed with the public
    // key, PS256…) is refused before a key is even looked up. The header is not trusted beyond
    // choosing among the provider's own keys.
    if untrusted.algorithm() != "RS256" {
        return Err(IdTokenError::WrongAlg(
            untrusted.algorithm().chars().take(16).collect(),
        ));
    }
    let kid = untrusted
        .header()
        .key_id
        .as_deref()
        .ok_or(IdTokenError::MissingKid)?;
    let key = keys.get(kid).ok_or(IdTokenError::UnknownKid)?;
    let key = key.rs256().ok_or(IdTokenError::UnusableKey)?;
    let token = Rsa::rs256()
        .validator::<IdClaims>(key)
        .validate(&untrusted)
        .map_err(|e| match e {
            jwt_compact::ValidationError::MalformedClaims(_) => IdTokenError::BadClaims,
            _ => IdTokenError::BadSignature,
        })?;
    let (_, claims): (_, Claims<IdClaims>) = token.into_parts();
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
