//! The sign-in state cookie: what the callback needs to finish a sign-in it started.
//!
//! It is a JWT signed with the session key (typ `gatehouse-state+jwt`, so it can never pass as
//! a session), readable by nobody but this site (`HttpOnly`, SameSite=Lax), valid 10 minutes and
//! cleared by every callback. The PKCE verifier and nonce are only useful together with a code
//! issued for this browser, so signing (not sealing) is enough.

use jwt_compact::Claims;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::redirect::CallbackUrl;
use crate::session::keys::KeySet;
use crate::time::UnixTime;

/// `typ` of state tokens.
pub const STATE_TYP: &str = "gatehouse-state+jwt";
/// Lifetime of a sign-in attempt.
pub const STATE_MAX_AGE: i64 = 600;

/// What the state cookie holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInState {
    /// The OAuth `state` parameter.
    pub state: String,
    /// The PKCE code verifier.
    pub pkce: String,
    /// The OIDC nonce.
    pub nonce: String,
    /// Where to go after sign-in (already validated).
    pub callback: String,
    /// The site origin it was made for.
    pub aud: String,
}

/// Why a callback's state is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateError {
    /// No state cookie (expired, cleared by an earlier callback, or another browser).
    Missing,
    /// Bad signature, wrong type or other site.
    Invalid,
    /// Older than 10 minutes.
    Expired,
    /// No `state` parameter, or not the cookie's.
    Mismatch,
}

/// Signs `state` for the cookie.
pub fn seal(keys: &KeySet, state: &SignInState, now: UnixTime) -> Option<String> {
    let mut claims = Claims::new(state.clone());
    claims.issued_at = Some(now.to_chrono());
    claims.expiration = Some(now.plus(STATE_MAX_AGE).to_chrono());
    keys.sign(STATE_TYP, &claims)
}

/// Checks the cookie (signature, site, expiry), then the `state` parameter against it in
/// constant time. Runs before the code is redeemed.
pub fn open(
    keys: &KeySet,
    cookie: Option<&str>,
    param: Option<&str>,
    origin: &str,
    now: UnixTime,
) -> Result<SignInState, StateError> {
    let cookie = cookie.ok_or(StateError::Missing)?;
    let claims: Claims<SignInState> = keys
        .verify(STATE_TYP, cookie)
        .map_err(|_| StateError::Invalid)?;
    if claims.custom.aud != origin {
        return Err(StateError::Invalid);
    }
    match claims.expiration {
        Some(exp) if UnixTime::from_chrono(exp) > now => {}
        _ => return Err(StateError::Expired),
    }
    let param = param.ok_or(StateError::Mismatch)?;
    if !bool::from(param.as_bytes().ct_eq(claims.custom.state.as_bytes())) {
        return Err(StateError::Mismatch);
    }
    Ok(claims.custom)
}

/// The callback URL of a state cookie signed by us for this site, even if it has expired or
/// its `state` does not match: only to keep the visitor's destination on the error page.
pub fn peek_callback(keys: &KeySet, cookie: Option<&str>, origin: &str) -> Option<String> {
    let claims: Claims<SignInState> = keys.verify(STATE_TYP, cookie?).ok()?;
    (claims.custom.aud == origin).then_some(claims.custom.callback)
}

impl SignInState {
    /// The validated callback URL.
    pub fn callback_url(&self) -> &str {
        &self.callback
    }
}

/// Convenience for building: keeps [`CallbackUrl`] the only way in.
pub fn new_state(
    state: String,
    pkce: String,
    nonce: String,
    callback: &CallbackUrl,
    origin: &str,
) -> SignInState {
    SignInState {
        state,
        pkce,
        nonce,
        callback: callback.as_str().to_owned(),
        aud: origin.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    const NOW: UnixTime = UnixTime(1_800_000_000);
    const ORIGIN: &str = "https://site.test";

    fn sealed() -> (KeySet, String) {
        let keys = config(&[]).keys;
        let s = new_state(
            "st".into(),
            "verifier".into(),
            "nonce".into(),
            &CallbackUrl::root(),
            ORIGIN,
        );
        let t = seal(&keys, &s, NOW).unwrap();
        (keys, t)
    }

    #[test]
    fn state_round_trips_with_the_right_parameter() {
        let (keys, t) = sealed();
        let s = open(&keys, Some(&t), Some("st"), ORIGIN, NOW.plus(599)).unwrap();
        assert_eq!(s.pkce, "verifier");
    }

    #[test]
    fn state_parameter_must_match() {
        let (keys, t) = sealed();
        assert_eq!(
            open(&keys, Some(&t), Some("other"), ORIGIN, NOW),
            Err(StateError::Mismatch)
        );
        assert_eq!(
            open(&keys, Some(&t), None, ORIGIN, NOW),
            Err(StateError::Mismatch)
        );
    }

    #[test]
    fn state_expires_after_ten_minutes() {
        let (keys, t) = sealed();
        assert_eq!(
            open(&keys, Some(&t), Some("st"), ORIGIN, NOW.plus(600)),
            Err(StateError::Expired)
        );
    }

    #[test]
    fn tampered_or_foreign_state_is_invalid() {
        let (keys, t) = sealed();
        let mut bytes = t.clone().into_bytes();
        let i = t.find('.').unwrap() + 5;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            open(&keys, Some(&tampered), Some("st"), ORIGIN, NOW),
            Err(StateError::Invalid)
        );
        assert_eq!(
            open(&keys, Some(&t), Some("st"), "https://other.test", NOW),
            Err(StateError::Invalid)
        );
        assert_eq!(
            open(&keys, None, Some("st"), ORIGIN, NOW),
            Err(StateError::Missing)
        );
    }

    #[test]
    fn a_state_token_never_passes_as_a_session() {
        let (keys, t) = sealed();
        let got = crate::session::token::verify(
            &keys,
            crate::session::token::UntrustedSession(&t),
            ORIGIN,
            NOW,
        );
        assert!(got.is_err(), "{got:?}");
    }
}
