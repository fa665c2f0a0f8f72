//! Google's Cross-Account Protection (RISC): security event tokens (RFC 8417 SETs) pushed to
//! `POST /auth/risc` (RFC 8935), checked here, and what each event does to the user whose
//! Google account it names.
//!
//! A SET is a JWT signed by the RISC issuer with the keys of its JWKS (discovered from the
//! RISC configuration document). It has no `exp`: it reports something that happened. What
//! makes an old or copied SET harmless is `iat` (at most [`MAX_AGE_SECS`] old) and `jti`
//! (remembered for [`JTI_RETENTION_SECS`], longer than a SET is accepted, so a replay within
//! the acceptance window is always recognised).

use jwt_compact::{Claims, UntrustedToken};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use std::cell::RefCell;
use std::rc::Rc;

use super::fetch_document;
use super::id_token::{Audience, LEEWAY_SECS};
use super::jwks::{JwksCache, ProviderKeys, REFETCH_INTERVAL_SECS};
use super::rs256::{self, CheckedRs256, Refused, Rs256Check};
use crate::http::HttpClient;
use crate::time::UnixTime;

/// A SET older than this is refused: Google pushes events as they happen and retries for a
/// few days at most.
pub const MAX_AGE_SECS: i64 = 7 * 24 * 3600;
/// How long a `jti` is remembered: a day longer than a SET is accepted.
pub const JTI_RETENTION_SECS: i64 = MAX_AGE_SECS + 24 * 3600;
// A replay within the acceptance window must always be recognised.
const _: () = assert!(JTI_RETENTION_SECS > MAX_AGE_SECS);
/// Longest `jti` accepted (Google's are 32 hex characters).
const MAX_JTI_LEN: usize = 256;
/// The media type of a pushed SET (RFC 8935, 2).
pub const CONTENT_TYPE: &str = "application/secevent+jwt";

const SESSIONS_REVOKED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked";
const TOKENS_REVOKED: &str = "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked";
const ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
const ACCOUNT_ENABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
const CREDENTIAL_CHANGE_REQUIRED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-credential-change-required";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/risc/event-type/verification";

/// The RISC configuration document's fields that the receiver uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiscConfiguration {
    /// `issuer`: every SET's `iss` (Google's is `https://accounts.google.com/`).
    pub issuer: String,
    /// `jwks_uri`: the keys SETs are signed with.
    pub jwks_uri: Url,
}

impl RiscConfiguration {
    /// Parses the document. The JWKS must be fetched over https (plain http only on loopback,
    /// for the local provider), like every provider URL Gatehouse fetches.
    pub fn parse(body: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Raw {
            issuer: String,
            jwks_uri: String,
        }
        let raw: Raw = serde_json::from_slice(body).ok()?;
        let jwks_uri = Url::parse(&raw.jwks_uri).ok()?;
        let loopback = matches!(
            jwks_uri.host(),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback()
        ) || jwks_uri.host_str() == Some("localhost");
        let secure = jwks_uri.scheme() == "https" || (jwks_uri.scheme() == "http" && loopback);
        (secure && !raw.issuer.is_empty()).then_some(Self {
            issuer: raw.issuer,
            jwks_uri,
        })
    }
}

#[derive(Deserialize)]
struct SetClaims {
    iss: String,
    aud: Audience,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    events: Option<Map<String, Value>>,
}

/// What a SET must match.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The RISC issuer (from the configuration document).
    pub issuer: &'a str,
    /// Our Google client id.
    pub client_id: &'a str,
    /// Now.
    pub now: UnixTime,
}

/// Why a SET was refused. Logged; the transmitter only gets a generic 400.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetError {
    /// Not a JWS compact token.
    Malformed,
    /// `alg` is not RS256 (`none`, HS256 keyed with anything, …).
    WrongAlg(String),
    /// No `kid`.
    MissingKid,
    /// `kid` names no key of the issuer's JWKS.
    UnknownKid,
    /// The key is not an RS256 key.
    UnusableKey,
    /// The signature does not verify.
    BadSignature,
    /// Claims missing or of the wrong type.
    BadClaims,
    /// `iss` is not the RISC issuer.
    WrongIssuer,
    /// `aud` does not contain our client id.
    WrongAudience,
    /// `iat` missing, in the future, or older than [`MAX_AGE_SECS`].
    BadIssuedAt,
    /// `jti` missing, empty or too long.
    BadJti,
    /// `events` missing or empty.
    NoEvents,
}

impl SetError {
    /// A short reason for the log line.
    pub fn reason(&self) -> String {
        match self {
            Self::Malformed => "not a signed token".into(),
            Self::WrongAlg(alg) => format!("alg {alg} is not RS256"),
            Self::MissingKid => "no kid".into(),
            Self::UnknownKid => "kid not in the issuer's keys".into(),
            Self::UnusableKey => "kid names a key that is not RS256".into(),
            Self::BadSignature => "bad signature".into(),
            Self::BadClaims => "claims of the wrong shape".into(),
            Self::WrongIssuer => "iss is not the RISC issuer".into(),
            Self::WrongAudience => "aud is not our client id".into(),
            Self::BadIssuedAt => "iat missing, in the future or too old".into(),
            Self::BadJti => "jti missing or too long".into(),
            Self::NoEvents => "no events".into(),
        }
    }
}

/// One event of a SET, as Gatehouse reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `sessions-revoked`: the person's Google sessions were ended.
    SessionsRevoked {
        /// Google account id.
        sub: String,
    },
    /// `tokens-revoked`: the person's OAuth tokens for this app were revoked.
    TokensRevoked {
        /// Google account id.
        sub: String,
    },
    /// `account-disabled`: Google disabled the account (`reason` `hijacking`, `bulk-account`…).
    AccountDisabled {
        /// Google account id.
        sub: String,
        /// Google's reason, if given.
        reason: Option<String>,
    },
    /// `account-enabled`: Google enabled it again.
    AccountEnabled {
        /// Google account id.
        sub: String,
    },
    /// `account-credential-change-required`: the password must change (suspicious activity).
    CredentialChangeRequired {
        /// Google account id.
        sub: String,
    },
    /// `verification`: a test event the operator asked for.
    Verification {
        /// The `state` the operator chose, if any.
        state: Option<String>,
    },
    /// An event type Gatehouse does not act on, or one whose subject is not a Google account
    /// of this issuer (logged, ignored).
    Ignored {
        /// The event type URI (or why it was ignored).
        kind: String,
    },
}

/// What an event does to the user of its Google account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Every session revoked: the person is signed out everywhere within the interval.
    RevokeSessions,
    /// User disabled and every session revoked.
    Disable,
    /// Nothing but the audit row: an admin decides.
    Record,
}

impl Event {
    /// The Google account the event is about, with what to do and the audit log's `action`.
    pub fn effect(&self) -> Option<(&str, Effect, &'static str)> {
        match self {
            Self::SessionsRevoked { sub } => {
                Some((sub, Effect::RevokeSessions, "risc:sessions-revoked"))
            }
            Self::TokensRevoked { sub } => {
                Some((sub, Effect::RevokeSessions, "risc:tokens-revoked"))
            }
            Self::CredentialChangeRequired { sub } => Some((
                sub,
                Effect::RevokeSessions,
                "risc:account-credential-change-required",
            )),
            Self::AccountDisabled { sub, .. } => {
                Some((sub, Effect::Disable, "risc:account-disabled"))
            }
            Self::AccountEnabled { sub } => Some((sub, Effect::Record, "risc:account-enabled")),
            Self::Verification { .. } | Self::Ignored { .. } => None,
        }
    }

    /// The event's short name, for the log.
    pub fn name(&self) -> &str {
        match self {
            Self::SessionsRevoked { .. } => "sessions-revoked",
            Self::TokensRevoked { .. } => "tokens-revoked",
            Self::AccountDisabled { .. } => "account-disabled",
            Self::AccountEnabled { .. } => "account-enabled",
            Self::CredentialChangeRequired { .. } => "account-credential-change-required",
            Self::Verification { .. } => "verification",
            Self::Ignored { .. } => "ignored",
        }
    }

    /// Reads one entry of `events`. The subject must be an `iss-sub` subject of this issuer
    /// (accounts are matched by Google's `sub`, never by email); anything else is ignored.
    fn read(kind: &str, body: &Value, issuer: &str) -> Self {
        if kind == VERIFICATION {
            return Self::Verification {
                state: body
                    .get("state")
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(128).collect()),
            };
        }
        let known = [
            SESSIONS_REVOKED,
            TOKENS_REVOKED,
            ACCOUNT_DISABLED,
            ACCOUNT_ENABLED,
            CREDENTIAL_CHANGE_REQUIRED,
        ];
        if !known.contains(&kind) {
            return Self::Ignored {
                kind: kind.chars().take(200).collect(),
            };
        }
        let subject = body.get("subject");
        let field = |name: &str| subject.and_then(|s| s.get(name)).and_then(Value::as_str);
        let sub = match (field("subject_type"), field("iss"), field("sub")) {
            (Some("iss-sub"), Some(iss), Some(sub)) if iss == issuer && !sub.is_empty() => {
                sub.to_owned()
            }
            _ => {
                return Self::Ignored {
                    kind: format!("{kind} (subject is not an account of this issuer)"),
                };
            }
        };
        match kind {
            SESSIONS_REVOKED => Self::SessionsRevoked { sub },
            TOKENS_REVOKED => Self::TokensRevoked { sub },
            ACCOUNT_DISABLED => Self::AccountDisabled {
                sub,
                reason: body
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(|r| r.chars().take(64).collect()),
            },
            ACCOUNT_ENABLED => Self::AccountEnabled { sub },
            _ => Self::CredentialChangeRequired { sub },
        }
    }
}

/// A verified SET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityEvent {
    /// Its unique id: acted on once.
    pub jti: String,
    /// Its events (one in practice).
    pub events: Vec<Event>,
}

/// The header's `kid`, to pick the JWKS key.
pub fn key_id(token: &str) -> Result<String, SetError> {
    let untrusted = UntrustedToken::new(token).map_err(|_| SetError::Malformed)?;
    untrusted
        .header()
        .key_id
        .clone()
        .ok_or(SetError::MissingKid)
}

/// Verifies a SET against the RISC issuer's keys and `expected`, its signature checked in pure
/// Rust (native code and tests); the worker checks it with WebCrypto (`signature_check`, then
/// `validate_checked`).
#[cfg(not(target_arch = "wasm32"))]
pub fn validate(
    token: &str,
    keys: &ProviderKeys,
    expected: Expected<'_>,
) -> Result<SecurityEvent, SetError> {
    rules(&rs256::native_claims(token, keys)?, expected)
}

/// The RS256 signature check `token` needs. Google signs SETs with RS256 and the keys of the
/// RISC JWKS only: `none`, HS256 (keyed with a public key, or a session key) and every other
/// `alg` are refused before any key is looked up (`rs256::signature_check`).
pub fn signature_check(token: &str, keys: &ProviderKeys) -> Result<Rs256Check, SetError> {
    Ok(rs256::signature_check(token, keys)?)
}

/// Validates `token` whose signature check passed (`proof` must be the check
/// [`signature_check`] gives for it, else `BadSignature`): the claims and the events.
pub fn validate_checked(
    token: &str,
    keys: &ProviderKeys,
    expected: Expected<'_>,
    proof: &CheckedRs256,
) -> Result<SecurityEvent, SetError> {
    rules(&rs256::checked_claims(token, keys, proof)?, expected)
}

impl From<Refused> for SetError {
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

/// The SET's rules once its signature verified: issuer, audience, `iat`, `jti`, events.
fn rules(claims: &Claims<SetClaims>, expected: Expected<'_>) -> Result<SecurityEvent, SetError> {
    let set = &claims.custom;
    if set.iss != expected.issuer {
        return Err(SetError::WrongIssuer);
    }
    if !set.aud.contains(expected.client_id) {
        return Err(SetError::WrongAudience);
    }
    // No `exp` (a SET reports the past); `iat` bounds how old a SET may be, and `jti` is
    // remembered for longer than that.
    match claims.issued_at.map(UnixTime::from_chrono) {
        Some(iat)
            if iat <= expected.now.plus(LEEWAY_SECS) && iat.plus(MAX_AGE_SECS) >= expected.now => {}
        _ => return Err(SetError::BadIssuedAt),
    }
    let jti = match &set.jti {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => jti.clone(),
        _ => return Err(SetError::BadJti),
    };
    let events: Vec<Event> = match &set.events {
        Some(events) if !events.is_empty() => events
            .iter()
            .map(|(kind, body)| Event::read(kind, body, expected.issuer))
            .collect(),
        _ => return Err(SetError::NoEvents),
    };
    Ok(SecurityEvent { jti, events })
}

/// Per-isolate memory of the RISC configuration document and of the RISC issuer's keys.
#[derive(Default)]
pub struct RiscCache {
    /// The document, until its `max-age` ends.
    configuration: RefCell<Option<(Rc<RiscConfiguration>, UnixTime)>>,
    /// When fetching the document last failed: retried at most once a minute.
    failed_at: RefCell<Option<UnixTime>>,
    /// The issuer's keys.
    pub keys: RefCell<JwksCache>,
}

impl RiscCache {
    /// The document, fetched from `url` when none is cached or its `max-age` has passed (a
    /// cached one is kept if the refetch fails).
    pub async fn configuration<H: HttpClient>(
        &self,
        http: &H,
        url: &Url,
        now: UnixTime,
    ) -> Result<Rc<RiscConfiguration>, String> {
        let cached = self.configuration.borrow().clone();
        if let Some((doc, until)) = &cached
            && now < *until
        {
            return Ok(doc.clone());
        }
        let recently_failed = self
            .failed_at
            .borrow()
            .is_some_and(|t| now < t.plus(REFETCH_INTERVAL_SECS));
        if recently_failed {
            return cached
                .map(|(doc, _)| doc)
                .ok_or_else(|| "RISC configuration unavailable (retried once a minute)".into());
        }
        let fetched = fetch_document(http, url, "RISC configuration")
            .await
            .and_then(|(body, max_age)| {
                RiscConfiguration::parse(&body)
                    .map(|doc| (doc, max_age))
                    .ok_or_else(|| "RISC configuration is not a RISC configuration".into())
            });
        match fetched {
            Ok((doc, max_age)) => {
                let doc = Rc::new(doc);
                *self.configuration.borrow_mut() = Some((doc.clone(), now.plus(max_age)));
                *self.failed_at.borrow_mut() = None;
                Ok(doc)
            }
            Err(reason) => {
                *self.failed_at.borrow_mut() = Some(now);
                cached.map(|(doc, _)| doc).ok_or(reason)
            }
        }
    }
}

#[cfg(test)]
mod tests;
