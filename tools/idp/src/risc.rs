//! Security Event Tokens (RFC 8417) as Google's Cross-Account Protection (RISC) sends them, for
//! `POST /_control/risc` (see the crate documentation), and their hostile variants.
//!
//! A SET is a compact JWS, RS256, signed by the provider's current key (the one that signs ID
//! tokens, served in the same JWKS), header `{"alg":"RS256","kid":…,"typ":"secevent+jwt"}`, with
//! `iss` (the RISC issuer: the ID-token issuer plus `/`, as Google's
//! `https://accounts.google.com/`), `aud` (the client id), `iat`, `jti` and one event in
//! `events`, and no `exp`.

use std::fmt;

use jwt_compact::alg::Rsa;
use serde_json::{Value, json};

use crate::id_token::{
    SigningKey, WRONG_AUDIENCE, flip_last_signature_byte, unknown_kid, unsigned,
};

/// The JOSE `typ` of a SET (RFC 8417, section 2.3).
pub const SET_TYPE: &str = "secevent+jwt";
/// `iss` of the `wrong_iss` twist, and the subject's `iss` of `subject_other_iss`.
pub const EVIL_RISC_ISSUER: &str = "https://evil.example/";
/// How far back `stale_iat` puts `iat`: 30 days.
pub const STALE_SECS: i64 = 30 * 24 * 3600;
/// How far ahead `future_iat` puts `iat`: 1 hour.
pub const FUTURE_SECS: i64 = 3600;

/// The event a SET carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    SessionsRevoked,
    TokensRevoked,
    AccountDisabled,
    AccountEnabled,
    AccountCredentialChangeRequired,
    Verification,
    /// An event type no receiver knows.
    Unknown,
}

impl Event {
    pub const ALL: [Self; 7] = [
        Self::SessionsRevoked,
        Self::TokensRevoked,
        Self::AccountDisabled,
        Self::AccountEnabled,
        Self::AccountCredentialChangeRequired,
        Self::Verification,
        Self::Unknown,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The name `POST /_control/risc` takes (`event=…`).
    pub fn name(self) -> &'static str {
        match self {
            Self::SessionsRevoked => "sessions-revoked",
            Self::TokensRevoked => "tokens-revoked",
            Self::AccountDisabled => "account-disabled",
            Self::AccountEnabled => "account-enabled",
            Self::AccountCredentialChangeRequired => "account-credential-change-required",
            Self::Verification => "verification",
            Self::Unknown => "unknown",
        }
    }

    /// The event type URI, the key in `events`.
    pub fn uri(self) -> &'static str {
        match self {
            Self::SessionsRevoked => {
                "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked"
            }
            Self::TokensRevoked => {
                "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked"
            }
            Self::AccountDisabled => {
                "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
            }
            Self::AccountEnabled => {
                "https://schemas.openid.net/secevent/risc/event-type/account-enabled"
            }
            Self::AccountCredentialChangeRequired => {
                "https://schemas.openid.net/secevent/risc/event-type/account-credential-change-required"
            }
            Self::Verification => {
                "https://schemas.openid.net/secevent/risc/event-type/verification"
            }
            Self::Unknown => "https://schemas.openid.net/secevent/risc/event-type/made-up",
        }
    }

    /// Whether the event names an account (`subject`); only `verification` does not.
    pub fn has_subject(self) -> bool {
        self != Self::Verification
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One way to make a SET bad (`twist=…` on `POST /_control/risc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTwist {
    /// The last signature byte flipped.
    BadSignature,
    /// `aud` is [`WRONG_AUDIENCE`].
    WrongAud,
    /// `iat` is [`STALE_SECS`] ago.
    StaleIat,
    /// `iat` is [`FUTURE_SECS`] ahead.
    FutureIat,
    /// `iss` is [`EVIL_RISC_ISSUER`] (the subject's `iss` stays honest).
    WrongIss,
    /// Signed by the real key, naming a `kid` that is not in the JWKS.
    UnknownKid,
    /// Header `alg` `none`, empty signature.
    AlgNone,
    NoJti,
    NoEvents,
    /// The subject's `iss` is [`EVIL_RISC_ISSUER`] (the SET's `iss` stays honest).
    SubjectOtherIss,
}

impl SetTwist {
    pub const ALL: [Self; 10] = [
        Self::BadSignature,
        Self::WrongAud,
        Self::StaleIat,
        Self::FutureIat,
        Self::WrongIss,
        Self::UnknownKid,
        Self::AlgNone,
        Self::NoJti,
        Self::NoEvents,
        Self::SubjectOtherIss,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::WrongAud => "wrong_aud",
            Self::StaleIat => "stale_iat",
            Self::FutureIat => "future_iat",
            Self::WrongIss => "wrong_iss",
            Self::UnknownKid => "unknown_kid",
            Self::AlgNone => "alg_none",
            Self::NoJti => "no_jti",
            Self::NoEvents => "no_events",
            Self::SubjectOtherIss => "subject_other_iss",
        }
    }
}

impl fmt::Display for SetTwist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a SET is made from. Which fields an event takes is checked by [`SetInput::check`].
#[derive(Clone, Debug)]
pub struct SetInput<'a> {
    /// The RISC issuer, with its trailing `/`.
    pub issuer: &'a str,
    pub aud: &'a str,
    pub jti: &'a str,
    pub event: Event,
    /// The Google account id; every event but `verification` has one.
    pub sub: Option<&'a str>,
    /// `account-disabled` only.
    pub reason: Option<&'a str>,
    /// `verification` only.
    pub state: Option<&'a str>,
    pub twist: Option<SetTwist>,
    /// Seconds since the epoch.
    pub now: i64,
}

impl SetInput<'_> {
    /// Refuses combinations that have no meaning: a subject event without `sub`, `sub` on
    /// `verification`, `reason` on anything but `account-disabled`, `state` on anything but
    /// `verification`, `subject_other_iss` without a subject, and empty values.
    pub fn check(&self) -> Result<(), String> {
        let empty = [
            ("aud", Some(self.aud)),
            ("jti", Some(self.jti)),
            ("sub", self.sub),
            ("reason", self.reason),
            ("state", self.state),
        ]
        .into_iter()
        .find(|(_, v)| *v == Some(""));
        if let Some((name, _)) = empty {
            return Err(format!("{name} must not be empty"));
        }
        let event = self.event;
        match (event.has_subject(), self.sub) {
            (true, None) => return Err(format!("sub is required for {event}")),
            (false, Some(_)) => return Err(format!("{event} has no subject: no sub")),
            _ => {}
        }
        if self.reason.is_some() && event != Event::AccountDisabled {
            return Err("reason is for account-disabled only".into());
        }
        if self.state.is_some() && event != Event::Verification {
            return Err("state is for verification only".into());
        }
        if self.twist == Some(SetTwist::SubjectOtherIss) && !event.has_subject() {
            return Err(format!(
                "subject_other_iss needs an event with a subject, not {event}"
            ));
        }
        Ok(())
    }
}

/// The claims of the SET, with the twist (if it is about claims) applied.
pub fn set_claims(input: &SetInput<'_>) -> Value {
    let mut event = serde_json::Map::new();
    if let Some(sub) = input.sub.filter(|_| input.event.has_subject()) {
        let subject_iss = match input.twist {
            Some(SetTwist::SubjectOtherIss) => EVIL_RISC_ISSUER,
            _ => input.issuer,
        };
        event.insert(
            "subject".into(),
            json!({ "subject_type": "iss-sub", "iss": subject_iss, "sub": sub }),
        );
    }
    if let Some(reason) = input.reason {
        event.insert("reason".into(), reason.into());
    }
    if let Some(state) = input.state {
        event.insert("state".into(), state.into());
    }
    let iat = match input.twist {
        Some(SetTwist::StaleIat) => input.now - STALE_SECS,
        Some(SetTwist::FutureIat) => input.now + FUTURE_SECS,
        _ => input.now,
    };
    let mut claims = json!({
        "iss": if input.twist == Some(SetTwist::WrongIss) { EVIL_RISC_ISSUER } else { input.issuer },
        "aud": if input.twist == Some(SetTwist::WrongAud) { WRONG_AUDIENCE } else { input.aud },
        "iat": iat,
        "jti": input.jti,
        "events": { input.event.uri(): event },
    });
    if let Some(fields) = claims.as_object_mut() {
        match input.twist {
            Some(SetTwist::NoJti) => drop(fields.remove("jti")),
            Some(SetTwist::NoEvents) => drop(fields.remove("events")),
            _ => {}
        }
    }
    claims
}

/// The compact SET for `input`, signed by `key` (or broken as its twist says). Call
/// [`SetInput::check`] first; this does not.
pub fn build_set(key: &SigningKey, input: &SetInput<'_>) -> Result<String, String> {
    let claims = set_claims(input);
    let rs256 = Rsa::rs256();
    match input.twist {
        Some(SetTwist::BadSignature) => {
            flip_last_signature_byte(&key.sign_typed(&rs256, Some(key.kid()), SET_TYPE, &claims)?)
        }
        Some(SetTwist::UnknownKid) => {
            key.sign_typed(&rs256, Some(&unknown_kid(key)), SET_TYPE, &claims)
        }
        Some(SetTwist::AlgNone) => Ok(unsigned(key.kid(), SET_TYPE, &claims)),
        _ => key.sign_typed(&rs256, Some(key.kid()), SET_TYPE, &claims),
    }
}

#[cfg(test)]
mod tests;
