//! The session key set (`SESSION_KEYS`, a JWK Set): the first key signs, every key verifies.

use jwt_compact::alg::{Ed25519, Hs256, Hs256Key};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{
    Algorithm, AlgorithmExt, AlgorithmSignature, Claims, Header, UntrustedToken, ValidationError,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

/// HS256 keys shorter than this are refused: a short HMAC key can be brute-forced offline
/// from any one token (RFC 7518 3.2 asks for at least the hash size).
pub const MIN_HMAC_KEY_BYTES: usize = 32;

/// The algorithm a session key signs with. It belongs to the key, never to a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionAlg {
    /// HMAC-SHA-256 with a shared secret (`kty: "oct"`).
    Hs256,
    /// Ed25519 signatures (`kty: "OKP"`, `crv: "Ed25519"`), public keys published.
    EdDsa,
}

impl SessionAlg {
    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
        }
    }
}

enum Material {
    Hmac(Hs256Key),
    Ed25519 {
        signing: Option<ed25519_compact::SecretKey>,
        verifying: ed25519_compact::PublicKey,
    },
}

struct SessionKey {
    kid: String,
    material: Material,
}

impl SessionKey {
    fn alg(&self) -> SessionAlg {
        match self.material {
            Material::Hmac(_) => SessionAlg::Hs256,
            Material::Ed25519 { .. } => SessionAlg::EdDsa,
        }
    }

    /// Secret bytes for MACs that are not tokens (CSRF): the HMAC key or the Ed25519 seed.
    fn mac_secret(&self) -> Option<Vec<u8>> {
        match &self.material {
            Material::Hmac(key) => Some(key.as_ref().to_vec()),
            Material::Ed25519 { signing, .. } => signing.as_ref().map(|sk| sk.seed().to_vec()),
        }
    }
}

/// Why a token was not accepted by the key set (before any claim is looked at).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyReject {
    /// Not three base64url parts with a JSON header.
    Malformed,
    /// The header has no `kid`.
    MissingKid,
    /// `kid` names no configured key (e.g. a removed key).
    UnknownKid,
    /// The header's `typ` is not the one expected here.
    WrongType,
    /// The header's `alg` is not the algorithm of the key named by `kid` (e.g. `none`).
    WrongAlg,
    /// The signature does not verify.
    BadSignature,
    /// The claims are not the expected JSON.
    BadClaims,
}

/// An Ed25519 signature to check outside this crate: `signature` over `message` by
/// `public_key`. The runtime checks it with WebCrypto; native tests with
/// [`Ed25519Check::verify_natively`], the same pure-Rust verifier `KeySet::verify` uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519Check {
    /// The raw public key of the key named by the token's `kid`.
    pub public_key: [u8; 32],
    /// The JWS signing input (base64url header `.` base64url payload).
    pub message: String,
    /// The 64-byte signature.
    pub signature: Vec<u8>,
}

impl Ed25519Check {
    /// Says that the signature verified. Only the runtime's WebCrypto answer (`true`) or a test's
    /// native check may call this: the result lets [`KeySet::verify_checked`] skip the math.
    pub fn passed(self) -> CheckedSignature {
        CheckedSignature(self)
    }

    /// The pure-Rust check (ed25519-compact), as `KeySet::verify` makes it: for native tests of
    /// the deferred route, and where no WebCrypto is at hand.
    pub fn verify_natively(&self) -> bool {
        let Ok(signature) = ed25519_compact::Signature::from_slice(&self.signature) else {
            return false;
        };
        ed25519_compact::PublicKey::new(self.public_key)
            .verify(self.message.as_bytes(), &signature)
            .is_ok()
    }
}

/// An [`Ed25519Check`] whose signature verified.
#[derive(Clone, Debug)]
pub struct CheckedSignature(Ed25519Check);

/// The configured session keys. Built once per isolate from `SESSION_KEYS`.
pub struct KeySet {
    keys: Vec<SessionKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self
            .keys
            .iter()
            .map(|k| (k.kid.as_str(), k.alg().name()))
            .collect();
        f.debug_struct("KeySet").field("keys", &kids).finish()
    }
}

#[derive(serde::Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWK Set. Every problem is reported, each naming the key; no message contains
    /// key material.
    pub fn from_jwk_set(json: &str) -> Result<Self, Vec<String>> {
        let raw: RawSet = serde_json::from_str(json).map_err(|_| {
            vec![String::from(
                "is not a JWK Set: expected JSON like {\"keys\":[{\"kty\":\"oct\",\"kid\":\"…\",\"k\":\"…\"}]}",
            )]
        })?;
        if raw.keys.is_empty() {
            return Err(vec![String::from("has no keys")]);
        }
        let mut problems = Vec::new();
        let mut keys: Vec<SessionKey> = Vec::new();
        for (i, value) in raw.keys.iter().enumerate() {
            match parse_key(value, i == 0) {
                Ok(key) if keys.iter().any(|k| k.kid == key.kid) => {
                    problems.push(format!("key {i}: kid {:?} is used twice", key.kid));
                }
                Ok(key) => keys.push(key),
                Err(problem) => problems.push(format!("key {i}: {problem}")),
            }
        }
        if problems.is_empty() {
            Ok(Self { keys })
        } else {
            Err(problems)
        }
    }

    /// Signs `claims` with the first key, header `{"alg","kid","typ"}`.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &Claims<T>) -> Option<String> {
        let key = &self.keys[0];
        let header = Header::empty()
            .with_key_id(key.kid.clone())
            .with_token_type(typ);
        match &key.material {
            Material::Hmac(k) => Hs256.token(&header, claims, k).ok(),
            Material::Ed25519 {
                signing: Some(sk), ..
            } => Ed25519.token(&header, claims, sk).ok(),
            // from_jwk_set refuses a first key without its private part.
            Material::Ed25519 { signing: None, .. } => None,
        }
    }

    /// Checks the header and the signature of `token` and returns its claims. Time is not
    /// checked here: the caller decides what an expired token may still be used for.
    pub fn verify<T: DeserializeOwned>(
        &self,
        typ: &str,
        token: &str,
    ) -> Result<Claims<T>, KeyReject> {
        let (untrusted, key) = self.header_checked(typ, token)?;
        let result = match &key.material {
            Material::Hmac(k) => Hs256.validator::<T>(k).validate(&untrusted),
            Material::Ed25519 { verifying, .. } => {
                Ed25519.validator::<T>(verifying).validate(&untrusted)
            }
        };
        match result {
            Ok(token) => Ok(token.into_parts().1),
            Err(ValidationError::AlgorithmMismatch { .. }) => Err(KeyReject::WrongAlg),
            Err(ValidationError::MalformedClaims(_)) => Err(KeyReject::BadClaims),
            Err(_) => Err(KeyReject::BadSignature),
        }
    }

    /// The token parsed, with the key its header names: `kid` among configured keys only,
    /// `alg` that key's own algorithm, `typ` as expected. Nothing is verified yet.
    fn header_checked<'t>(
        &self,
        typ: &str,
        token: &'t str,
    ) -> Result<(UntrustedToken<'t>, &SessionKey), KeyReject> {
        let untrusted = UntrustedToken::new(token).map_err(|_| KeyReject::Malformed)?;
        let header = untrusted.header();
        let kid = header.key_id.as_deref().ok_or(KeyReject::MissingKid)?;
        // The key is chosen by `kid` among configured keys only, and its own algorithm is the
        // only one accepted: `alg: none` or an HS256 token under an EdDSA kid fails here.
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(KeyReject::UnknownKid)?;
        if untrusted.algorithm() != key.alg().name() {
            return Err(KeyReject::WrongAlg);
        }
        if header.token_type.as_deref() != Some(typ) {
            return Err(KeyReject::WrongType);
        }
        Ok((untrusted, key))
    }

    /// Whether any configured key is an Ed25519 key.
    pub fn has_ed25519(&self) -> bool {
        self.keys
            .iter()
            .any(|k| matches!(k.material, Material::Ed25519 { .. }))
    }

    /// For a token under an Ed25519 key: the signature check it needs, for the runtime to make
    /// with WebCrypto (`crypto.subtle.verify`, several times faster than the pure-Rust check in
    /// wasm) before [`KeySet::verify_checked`]. `Ok(None)` for an HS256 token (an HMAC costs
    /// less than the trip: [`KeySet::verify`] checks it). Header errors as in `verify`.
    pub fn ed25519_check(&self, typ: &str, token: &str) -> Result<Option<Ed25519Check>, KeyReject> {
        let (untrusted, key) = self.header_checked(typ, token)?;
        check_of(&untrusted, key, token)
    }

    /// The claims of a token whose Ed25519 signature the runtime checked ([`KeySet::ed25519_check`],
    /// then [`Ed25519Check::passed`]). The header is checked again and the check must be the
    /// very one this token needs (same key, signing input and signature), else `BadSignature`:
    /// a proof for one token is worth nothing for another.
    pub fn verify_checked<T: DeserializeOwned>(
        &self,
        typ: &str,
        token: &str,
        proof: &CheckedSignature,
    ) -> Result<Claims<T>, KeyReject> {
        let (untrusted, key) = self.header_checked(typ, token)?;
        if check_of(&untrusted, key, token)?.as_ref() != Some(&proof.0) {
            return Err(KeyReject::BadSignature);
        }
        untrusted
            .deserialize_claims_unchecked::<T>()
            .map_err(|_| KeyReject::BadClaims)
    }

    /// An HMAC-SHA-256 tag of `message` under the signing key (for CSRF tokens). The message
    /// carries its own purpose prefix, so it can never equal a JWT signing input.
    pub fn mac(&self, message: &str) -> Vec<u8> {
        mac_with(&self.keys[0].mac_secret().unwrap_or_default(), message)
    }

    /// Whether `tag` is the MAC of `message` under any configured key (rotation), compared in
    /// constant time.
    pub fn verify_mac(&self, message: &str, tag: &[u8]) -> bool {
        self.keys
            .iter()
            .filter_map(SessionKey::mac_secret)
            .any(|secret| bool::from(mac_with(&secret, message).ct_eq(tag)))
    }

    /// The public JWK Set of the asymmetric keys, for `/auth/jwks.json`. Symmetric keys and
    /// private parts are never included.
    pub fn public_jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .filter_map(|key| match &key.material {
                Material::Ed25519 { verifying, .. } => {
                    let mut jwk = serde_json::to_value(JsonWebKey::from(verifying)).ok()?;
                    let map = jwk.as_object_mut()?;
                    map.insert("kid".into(), key.kid.clone().into());
                    map.insert("alg".into(), "EdDSA".into());
                    map.insert("use".into(), "sig".into());
                    Some(jwk)
                }
                Material::Hmac(_) => None,
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

/// The Ed25519 check of a token whose header named `key`; `None` for an HMAC key.
fn check_of(
    untrusted: &UntrustedToken<'_>,
    key: &SessionKey,
    token: &str,
) -> Result<Option<Ed25519Check>, KeyReject> {
    let Material::Ed25519 { verifying, .. } = &key.material else {
        return Ok(None);
    };
    let signature = untrusted.signature_bytes();
    if signature.len() != ed25519_compact::Signature::BYTES {
        return Err(KeyReject::BadSignature);
    }
    // The JWS signing input (RFC 7515 5.2): the token up to its last `.`, exactly what
    // jwt-compact verifies (UntrustedToken::new has checked that there are three parts).
    let message = token.rsplit_once('.').map_or("", |(signed, _)| signed);
    Ok(Some(Ed25519Check {
        public_key: **verifying,
        message: message.to_owned(),
        signature: signature.to_vec(),
    }))
}

fn mac_with(secret: &[u8], message: &str) -> Vec<u8> {
    Hs256
        .sign(&Hs256Key::new(secret), message.as_bytes())
        .as_bytes()
        .into_owned()
}

fn parse_key(value: &serde_json::Value, is_signing_key: bool) -> Result<SessionKey, String> {
    let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
    let kid = match field("kid") {
        Some(kid) if !kid.is_empty() => kid.to_owned(),
        _ => return Err(String::from("has no \"kid\"")),
    };
    if let Some(usage) = field("use")
        && usage != "sig"
    {
        return Err(format!("kid {kid:?}: \"use\" must be \"sig\""));
    }
    let jwk: JsonWebKey<'_> = serde_json::from_value(value.clone())
        .map_err(|_| format!("kid {kid:?}: not a valid JWK (need kty \"oct\" or \"OKP\")"))?;
    let material = match &jwk {
        JsonWebKey::Symmetric { secret } => {
            if secret.len() < MIN_HMAC_KEY_BYTES {
                return Err(format!(
                    "kid {kid:?}: an HS256 key needs at least {MIN_HMAC_KEY_BYTES} bytes, this one has {}",
                    secret.len()
                ));
            }
            Material::Hmac(Hs256Key::new(&secret[..]))
        }
        JsonWebKey::KeyPair { curve, secret, .. } => {
            if curve != "Ed25519" {
                return Err(format!("kid {kid:?}: OKP keys must use crv \"Ed25519\""));
            }
            let verifying = ed25519_compact::PublicKey::try_from(&jwk)
                .map_err(|_| format!("kid {kid:?}: \"x\" is not an Ed25519 public key"))?;
            let signing =
                match secret {
                    Some(_) => Some(ed25519_compact::SecretKey::try_from(&jwk).map_err(|_| {
                        format!("kid {kid:?}: \"d\" is not the private key of \"x\"")
                    })?),
                    None if is_signing_key => {
                        return Err(format!(
                            "kid {kid:?}: the first key signs, so it needs its private part \"d\""
                        ));
                    }
                    None => None,
                };
            Material::Ed25519 { signing, verifying }
        }
        _ => {
            return Err(format!(
                "kid {kid:?}: only kty \"oct\" (HS256) and \"OKP\" (EdDSA) are supported"
            ));
        }
    };
    let key = SessionKey { kid, material };
    if let Some(alg) = field("alg")
        && alg != key.alg().name()
    {
        return Err(format!(
            "kid {:?}: \"alg\" is {alg:?} but this key type signs with {}",
            key.kid,
            key.alg().name()
        ));
    }
    Ok(key)
}
