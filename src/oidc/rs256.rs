//! RS256 signatures of the provider's tokens (Google's ID tokens, its security event tokens):
//! which check a token needs is decided here, from the token and the provider's JWKS; the
//! signature math happens behind a seam, [`Rs256Verifier`]: the runtime's WebCrypto in the
//! worker (`src/runtime/webcrypto.rs`, so no RSA code is in the wasm), the `rsa` crate natively
//! ([`NativeRs256`], for tests and tools).

use std::future::Future;
use std::pin::Pin;

use jwt_compact::{Claims, UntrustedToken};
use serde::de::DeserializeOwned;

use super::jwks::{ProviderKeys, RsaKey};

/// An RS256 signature to check: `signature` over `message` (the JWS signing input) by `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rs256Check {
    /// The provider's key named by the token's `kid`.
    pub key: RsaKey,
    /// The JWS signing input: base64url header `.` base64url payload.
    pub message: String,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

impl Rs256Check {
    /// Says that the signature verified: only a [`Rs256Verifier`]'s `true` may lead here.
    pub fn passed(self) -> CheckedRs256 {
        CheckedRs256(self)
    }

    /// The check in pure Rust (`rsa` crate through jwt-compact), natively only.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn verify_natively(&self) -> bool {
        use jwt_compact::alg::{Rsa, RsaPublicKey};
        use jwt_compact::jwk::JsonWebKey;
        use jwt_compact::{Algorithm, AlgorithmSignature};
        let jwk = JsonWebKey::Rsa {
            modulus: self.key.modulus.as_slice().into(),
            public_exponent: self.key.exponent.as_slice().into(),
            private_parts: None,
        };
        let Ok(key) = RsaPublicKey::try_from(&jwk) else {
            return false;
        };
        let Ok(signature) = <Rsa as Algorithm>::Signature::try_from_slice(&self.signature) else {
            return false;
        };
        Rsa::rs256().verify_signature(&signature, &key, self.message.as_bytes())
    }
}

/// An [`Rs256Check`] whose signature verified.
#[derive(Clone, Debug)]
pub struct CheckedRs256(Rs256Check);

impl CheckedRs256 {
    /// The check that passed.
    pub fn check(&self) -> &Rs256Check {
        &self.0
    }
}

/// Makes RS256 signature checks.
pub trait Rs256Verifier {
    /// Whether the signature of `check` verifies (`false` too when it cannot be checked).
    fn verify<'a>(&'a self, check: &'a Rs256Check) -> Pin<Box<dyn Future<Output = bool> + 'a>>;
}

/// The pure-Rust verifier, natively.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeRs256;

#[cfg(not(target_arch = "wasm32"))]
impl Rs256Verifier for NativeRs256 {
    fn verify<'a>(&'a self, check: &'a Rs256Check) -> Pin<Box<dyn Future<Output = bool> + 'a>> {
        Box::pin(std::future::ready(check.verify_natively()))
    }
}

/// Why a token's RS256 signature, or the shape of its claims, was refused (before the caller's
/// own rules: issuer, audience, times).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a JWS compact token.
    Malformed,
    /// `alg` is not RS256 (its first 16 characters).
    WrongAlg(String),
    /// No `kid` in the header.
    MissingKid,
    /// `kid` names no key of the set.
    UnknownKid,
    /// The key named by `kid` is not a usable RS256 key.
    UnusableKey,
    /// The signature does not verify, or the proof is for another token.
    BadSignature,
    /// The claims are not the expected JSON.
    BadClaims,
}

/// The check `token` needs under `keys`. RS256 only: `none`, HS256 (keyed with a public key)
/// and every other `alg` are refused before any key is looked up; the header is trusted only
/// to choose among the provider's own keys.
pub fn signature_check(token: &str, keys: &ProviderKeys) -> Result<Rs256Check, Refused> {
    let untrusted = UntrustedToken::new(token).map_err(|_| Refused::Malformed)?;
    check_of(&untrusted, token, keys)
}

fn check_of(
    untrusted: &UntrustedToken<'_>,
    token: &str,
    keys: &ProviderKeys,
) -> Result<Rs256Check, Refused> {
    if untrusted.algorithm() != "RS256" {
        return Err(Refused::WrongAlg(
            untrusted.algorithm().chars().take(16).collect(),
        ));
    }
    let kid = untrusted
        .header()
        .key_id
        .as_deref()
        .ok_or(Refused::MissingKid)?;
    let key = keys.get(kid).ok_or(Refused::UnknownKid)?;
    let key = key.rs256().ok_or(Refused::UnusableKey)?;
    // The JWS signing input (RFC 7515 5.2): the token up to its last `.`, what jwt-compact
    // verifies (UntrustedToken::new has checked that there are three parts).
    let message = token.rsplit_once('.').map_or("", |(signed, _)| signed);
    Ok(Rs256Check {
        key: key.clone(),
        message: message.to_owned(),
        signature: untrusted.signature_bytes().to_vec(),
    })
}

/// The claims of `token` whose signature check passed: `proof` must be the very check
/// [`signature_check`] gives for this token (same key, signing input and signature), else
/// `BadSignature`, so a proof for one token is worth nothing for another.
pub fn checked_claims<T: DeserializeOwned>(
    token: &str,
    keys: &ProviderKeys,
    proof: &CheckedRs256,
) -> Result<Claims<T>, Refused> {
    let untrusted = UntrustedToken::new(token).map_err(|_| Refused::Malformed)?;
    if check_of(&untrusted, token, keys)? != proof.0 {
        return Err(Refused::BadSignature);
    }
    untrusted
        .deserialize_claims_unchecked()
        .map_err(|_| Refused::BadClaims)
}

/// [`checked_claims`] with the signature checked in pure Rust: native code and tests.
#[cfg(not(target_arch = "wasm32"))]
pub fn native_claims<T: DeserializeOwned>(
    token: &str,
    keys: &ProviderKeys,
) -> Result<Claims<T>, Refused> {
    let check = signature_check(token, keys)?;
    if !check.verify_natively() {
        return Err(Refused::BadSignature);
    }
    checked_claims(token, keys, &check.passed())
}
