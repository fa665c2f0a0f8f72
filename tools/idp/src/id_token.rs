//! Identities, signing key, and the ID token and userinfo claims, shaped like Google's.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt as _, Claims, Header, alg::Rsa};
use rsa::RsaPrivateKey;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

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

/// How the ID token of one sign-in is made. Stored with each authorization code and read by
/// [`build_id_token`]. Only honest issuance exists today; a hostile mode (sign with a foreign key,
/// `alg: none`, wrong `iss`/`aud`, expired token, stall at the token endpoint) adds its per-login
/// switches here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuance {
    /// `exp - iat`, seconds.
    pub lifetime_secs: i64,
}

impl Default for Issuance {
    fn default() -> Self {
        Self {
            lifetime_secs: 3600,
        }
    }
}

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
        let header = Header::empty()
            .with_key_id(self.kid.clone())
            .with_token_type("JWT");
        Rsa::rs256()
            .token(&header, &Claims::new(claims), &self.key)
            .map_err(|e| format!("signing failed: {e}"))
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

/// Builds and signs the ID token for one sign-in.
pub fn build_id_token(key: &SigningKey, input: &TokenInput<'_>) -> Result<String, String> {
    key.sign(&id_token_claims(input))
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
mod tests {
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
}
