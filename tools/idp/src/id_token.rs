//! Identities, signing key, and the ID token and userinfo claims, shaped like Google's.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jwt_compact::alg::{Hs256, Hs256Key, Rsa};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt as _, Claims, Header};
use rsa::RsaPrivateKey;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::twist::{Kind, Twist};

/// The person who signs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    /// Full name; `None` leaves out `name`, `given_name` and `family_name`.
    pub name: Option<String>,
    /// Profile picture URL; `None` leaves out `picture`.
    pub picture: Option<String>,
    /// Google Workspace domain; only set for Workspace accounts.
    pub hd: Option<String>,
}

impl Identity {
    /// An identity for `email` with Google-like defaults: a numeric `sub` derived from the
    /// lowercase email, verified, a name from the local part, and a `googleusercontent` picture.
    pub fn for_email(email: &str) -> Self {
        let sub = default_sub(email);
        let local = email.split('@').next().unwrap_or(email);
        Self {
            picture: Some(default_picture(&sub)),
            sub,
            email: email.to_owned(),
            email_verified: true,
            name: Some(local.to_owned()).filter(|n| !n.is_empty()),
            hd: None,
        }
    }

    /// `given_name` and `family_name`: the first word, and the rest.
    fn name_parts(&self) -> (Option<&str>, Option<&str>) {
        match self.name.as_deref().map(str::trim) {
            None | Some("") => (None, None),
            Some(name) => match name.split_once(char::is_whitespace) {
                Some((given, family)) => (Some(given), Some(family.trim())),
                None => (Some(name), None),
            },
        }
    }
}

/// A Google-style numeric subject (21 digits, starting with `1`), stable for an email address
/// whatever its case.
pub fn default_sub(email: &str) -> String {
    let digest = Sha256::digest(email.to_lowercase().as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    format!(
        "1{:020}",
        u128::from_be_bytes(first) % 100_000_000_000_000_000_000
    )
}

/// A picture URL in the shape Google uses (it is never fetched by anyone in tests).
pub fn default_picture(sub: &str) -> String {
    let digest = Sha256::digest(sub.as_bytes());
    format!(
        "https://lh3.googleusercontent.com/a/ACg8oc{}=s96-c",
        URL_SAFE_NO_PAD.encode(&digest[..24])
    )
}

/// Granted scopes: which claim groups the ID token and userinfo carry (`openid` is implied).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scopes {
    pub email: bool,
    pub profile: bool,
}

const EMAIL_SCOPE_URL: &str = "https://www.googleapis.com/auth/userinfo.email";
const PROFILE_SCOPE_URL: &str = "https://www.googleapis.com/auth/userinfo.profile";

impl Scopes {
    /// Parses a space-separated `scope`. `None` when `openid` is missing or a scope is not one
    /// this provider knows (`openid`, `email`, `profile` and Google's URL forms of the last two).
    pub fn parse(scope: &str) -> Option<Self> {
        let mut openid = false;
        let mut scopes = Self::default();
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            match s {
                "openid" => openid = true,
                "email" | EMAIL_SCOPE_URL => scopes.email = true,
                "profile" | PROFILE_SCOPE_URL => scopes.profile = true,
                _ => return None,
            }
        }
        openid.then_some(scopes)
    }

    /// The granted scopes as Google reports them in the token response.
    pub fn granted(&self) -> String {
        let mut out = Vec::new();
        if self.email {
            out.push(EMAIL_SCOPE_URL);
        }
        if self.profile {
            out.push(PROFILE_SCOPE_URL);
        }
        out.push("openid");
        out.join(" ")
    }
}

/// How the ID token of one sign-in is made, and how the token endpoint answers for it. Stored
/// with each authorization code and read by [`build_id_token`] and the token endpoint.
/// `twists` is empty for an honest sign-in (see [`crate::twist`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuance {
    /// `exp - iat`, seconds.
    pub lifetime_secs: i64,
    /// Hostile-mode switches, sorted, at most one per slot.
    pub twists: Vec<Twist>,
}

impl Default for Issuance {
    fn default() -> Self {
        Self {
            lifetime_secs: 3600,
            twists: Vec::new(),
        }
    }
}

impl Issuance {
    /// Whether `twist` is asked for.
    pub fn has(&self, twist: Twist) -> bool {
        self.twists.contains(&twist)
    }

    /// The twist of `kind` (signing or token endpoint have one slot each), if any.
    pub fn twist_of(&self, kind: Kind) -> Option<Twist> {
        self.twists.iter().copied().find(|t| t.kind() == kind)
    }
}

/// `iss` of the `wrong_iss` twist.
pub const EVIL_ISSUER: &str = "https://evil.example";
/// `aud` of the `wrong_aud` twist.
pub const WRONG_AUDIENCE: &str = "someone-else.apps.googleusercontent.com";
/// The second audience (and the wrong `azp`) of the `aud_array_*` and `wrong_azp` twists.
pub const OTHER_CLIENT: &str = "other-client";
/// `id_token` of the `garbage` twist.
pub const GARBAGE_ID_TOKEN: &str = "not-a-jwt";

/// The RSA key that signs ID tokens.
pub struct SigningKey {
    kid: String,
    key: RsaPrivateKey,
    public_jwk: Value,
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key with a random `kid`.
    pub fn generate() -> Result<Self, String> {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .map_err(|e| format!("RSA key generation failed: {e}"))?;
        let kid = crate::store::random_hex(10);
        let public = key.to_public_key();
        let mut public_jwk = serde_json::to_value(JsonWebKey::from(&public))
            .map_err(|e| format!("JWK serialisation failed: {e}"))?;
        if let Some(fields) = public_jwk.as_object_mut() {
            fields.insert("kid".into(), kid.clone().into());
            fields.insert("alg".into(), "RS256".into());
            fields.insert("use".into(), "sig".into());
        }
        Ok(Self {
            kid,
            key,
            public_jwk,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty`, `n`, `e`, `kid`, `alg`, `use`).
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// Signs `claims` as an RS256 JWT with header `{"alg":"RS256","kid":…,"typ":"JWT"}`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, String> {
        self.sign_with(&Rsa::rs256(), Some(&self.kid), claims)
    }

    /// Signs `claims` with this key as `alg` (RS256, RS512, PS256, …), naming `kid` (or no key)
    /// in the header.
    pub fn sign_with<T: Serialize>(
        &self,
        alg: &Rsa,
        kid: Option<&str>,
        claims: &T,
    ) -> Result<String, String> {
        self.sign_typed(alg, kid, "JWT", claims)
    }

    /// Like [`SigningKey::sign_with`], with `typ` in the header (`secevent+jwt` for a SET).
    pub fn sign_typed<T: Serialize>(
        &self,
        alg: &Rsa,
        kid: Option<&str>,
        typ: &str,
        claims: &T,
    ) -> Result<String, String> {
        let mut header = Header::empty().with_token_type(typ);
        if let Some(kid) = kid {
            header = header.with_key_id(kid.to_owned());
        }
        alg.token(&header, &Claims::new(claims), &self.key)
            .map_err(|e| format!("signing failed: {e}"))
    }

    /// The public key as PEM (SubjectPublicKeyInfo), the bytes a confused verifier would use as
    /// an HMAC secret.
    pub fn public_pem(&self) -> Result<String, String> {
        use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
        self.key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| format!("PEM encoding failed: {e}"))
    }
}

/// Google's ID token claims. `iat`/`exp` are plain numbers here (not jwt-compact's standard
/// claims) so the issuance options have full control over them.
#[derive(Serialize, Debug)]
pub struct IdTokenClaims<'a> {
    pub iss: &'a str,
    pub azp: &'a str,
    pub aud: &'a str,
    pub sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hd: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    pub at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<&'a str>,
    pub iat: i64,
    pub exp: i64,
}

/// Everything an ID token is made from.
pub struct TokenInput<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub identity: &'a Identity,
    pub scopes: Scopes,
    pub nonce: Option<&'a str>,
    pub access_token: &'a str,
    pub issuance: &'a Issuance,
    pub now: DateTime<Utc>,
}

/// `at_hash`: base64url of the left half of SHA-256 of the access token (OIDC Core 3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(access_token.as_bytes())[..16])
}

/// The claims for `input`; email claims need the `email` scope, name and picture `profile`.
pub fn id_token_claims<'a>(input: &TokenInput<'a>) -> IdTokenClaims<'a> {
    let id = input.identity;
    let (given_name, family_name) = if input.scopes.profile {
        id.name_parts()
    } else {
        (None, None)
    };
    let profile = |v: &'a Option<String>| v.as_deref().filter(|_| input.scopes.profile);
    let iat = input.now.timestamp();
    IdTokenClaims {
        iss: input.issuer,
        azp: input.client_id,
        aud: input.client_id,
        sub: &id.sub,
        hd: id.hd.as_deref(),
        email: Some(id.email.as_str()).filter(|_| input.scopes.email),
        email_verified: Some(id.email_verified).filter(|_| input.scopes.email),
        at_hash: at_hash(input.access_token),
        nonce: input.nonce,
        name: profile(&id.name),
        picture: profile(&id.picture),
        given_name,
        family_name,
        iat,
        exp: iat.saturating_add(input.issuance.lifetime_secs),
    }
}

/// The claims for `input` as JSON, with the claim twists of its issuance applied.
pub fn twisted_claims(input: &TokenInput<'_>) -> Result<Value, String> {
    let mut value =
        serde_json::to_value(id_token_claims(input)).map_err(|e| format!("claims: {e}"))?;
    let Some(claims) = value.as_object_mut() else {
        return Err("claims are not an object".into());
    };
    let now = input.now.timestamp();
    let lifetime = input.issuance.lifetime_secs;
    let mut set = |name: &str, v: Value| {
        claims.insert(name.to_owned(), v);
    };
    for twist in &input.issuance.twists {
        match twist {
            Twist::WrongIss => set("iss", EVIL_ISSUER.into()),
            Twist::WrongAud => set("aud", WRONG_AUDIENCE.into()),
            Twist::AudArrayWithAzp | Twist::AudArrayNoAzp => {
                set("aud", json!([input.client_id, OTHER_CLIENT]));
            }
            Twist::AudArrayWrongAzp => {
                set("aud", json!([input.client_id, OTHER_CLIENT]));
                set("azp", OTHER_CLIENT.into());
            }
            Twist::WrongAzp => set("azp", OTHER_CLIENT.into()),
            Twist::Expired => {
                set("iat", (now - 3720).into());
                set("exp", (now - 120).into());
            }
            Twist::ExpiredWithinLeeway => {
                set("iat", (now - 30 - lifetime).into());
                set("exp", (now - 30).into());
            }
            Twist::IatFuture => {
                set("iat", (now + 300).into());
                set("exp", (now + 3900).into());
            }
            Twist::IatFutureWithinLeeway => {
                set("iat", (now + 30).into());
                set("exp", (now + 30 + lifetime).into());
            }
            Twist::WrongNonce => {
                let wrong = match input.nonce {
                    Some("wrong-nonce") => "wrong-nonce-2",
                    _ => "wrong-nonce",
                };
                set("nonce", wrong.into());
            }
            Twist::UnverifiedEmail => set("email_verified", false.into()),
            Twist::EmailVerifiedString => set("email_verified", "true".into()),
            Twist::EmptySub => set("sub", "".into()),
            _ => {}
        }
    }
    // Removals last, so they win over anything set above.
    for twist in &input.issuance.twists {
        let removed: &[&str] = match twist {
            Twist::NoIss => &["iss"],
            Twist::AudArrayNoAzp => &["azp"],
            Twist::NoExp => &["exp"],
            Twist::NoIat => &["iat"],
            Twist::NoNonce => &["nonce"],
            Twist::NoEmail => &["email", "email_verified"],
            Twist::NoSub => &["sub"],
            _ => &[],
        };
        for name in removed {
            claims.remove(*name);
        }
    }
    Ok(value)
}

/// Builds and signs the ID token for one sign-in, applying the issuance's twists. `foreign` is
/// the key for the `foreign_key` twist (a key that is not in the JWKS); it is only read then.
pub fn build_id_token(
    key: &SigningKey,
    foreign: Option<&SigningKey>,
    input: &TokenInput<'_>,
) -> Result<String, String> {
    let claims = twisted_claims(input)?;
    let kid = Some(key.kid());
    let Some(twist) = input.issuance.twist_of(Kind::Signing) else {
        return key.sign(&claims);
    };
    match twist {
        Twist::ForeignKey => {
            foreign
                .ok_or("no foreign key")?
                .sign_with(&Rsa::rs256(), kid, &claims)
        }
        Twist::AlgNone => Ok(unsigned(key.kid(), "JWT", &claims)),
        Twist::Hs256Pubkey => {
            let header = Header::empty()
                .with_key_id(key.kid().to_owned())
                .with_token_type("JWT");
            let secret = Hs256Key::new(key.public_pem()?.as_bytes());
            Hs256
                .token(&header, &Claims::new(&claims), &secret)
                .map_err(|e| format!("signing failed: {e}"))
        }
        Twist::NoKid => key.sign_with(&Rsa::rs256(), None, &claims),
        Twist::UnknownKid => key.sign_with(&Rsa::rs256(), Some(&unknown_kid(key)), &claims),
        Twist::Rs512 => key.sign_with(&Rsa::rs512(), kid, &claims),
        Twist::Ps256 => key.sign_with(&Rsa::ps256(), kid, &claims),
        Twist::BadSignature => flip_last_signature_byte(&key.sign(&claims)?),
        Twist::Garbage => Ok(GARBAGE_ID_TOKEN.to_owned()),
        other => Err(format!("{other} is not a signing twist")),
    }
}

/// A random `kid` that is not `key`'s (so not in the JWKS).
pub fn unknown_kid(key: &SigningKey) -> String {
    loop {
        let candidate = crate::store::random_hex(10);
        if candidate != key.kid() {
            return candidate;
        }
    }
}

/// `header.payload.` with header `{"alg":"none","kid":…,"typ":…}`: no signature at all.
pub fn unsigned(kid: &str, typ: &str, claims: &Value) -> String {
    let header = json!({ "alg": "none", "kid": kid, "typ": typ });
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// `token` with the last byte of its signature flipped: only that byte is wrong.
pub fn flip_last_signature_byte(token: &str) -> Result<String, String> {
    let (signed, signature) = token.rsplit_once('.').ok_or("no signature")?;
    let mut bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| format!("signature: {e}"))?;
    if let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The userinfo response (`/v1/userinfo`), limited by scope like the ID token.
pub fn userinfo(identity: &Identity, scopes: Scopes) -> Value {
    let mut fields = serde_json::Map::new();
    fields.insert("sub".into(), identity.sub.clone().into());
    if scopes.profile {
        let (given, family) = identity.name_parts();
        for (k, v) in [
            ("name", identity.name.as_deref()),
            ("given_name", given),
            ("family_name", family),
            ("picture", identity.picture.as_deref()),
        ] {
            if let Some(v) = v {
                fields.insert(k.into(), v.into());
            }
        }
    }
    if scopes.email {
        fields.insert("email".into(), identity.email.clone().into());
        fields.insert("email_verified".into(), identity.email_verified.into());
    }
    if let Some(hd) = &identity.hd {
        fields.insert("hd".into(), hd.clone().into());
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests;
