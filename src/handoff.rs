//! One sign-in for several sites (`SITES`): the decisions of the hand-off from the auth origin
//! (`AUTH_URL`) to a site, free of the runtime.
//!
//! A site without a session sets a state cookie (its own, `__Host-`, signed) and sends the
//! visitor to the auth origin with that state. A visitor signed in there comes back at once with
//! a one-time code, which the site redeems on its server side for a session of its own, whose
//! token names the site as its audience. Security decisions, each checked in [`check`]: the code
//! is single use (taken by the first redeem, whatever it then proves), lives [`CODE_TTL`]
//! seconds, is bound to one site and to the state in that site's cookie (so a code made for the
//! attacker's browser signs nobody else in), and only hashes of code and state are stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_compact::Claims;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::redirect::CallbackUrl;
use crate::session::keys::KeySet;
use crate::store::HandOff;
use crate::time::UnixTime;

/// How long a hand-off code may be redeemed.
pub const CODE_TTL: i64 = 60;
/// `typ` of the site's hand-off state cookie: never a session, never a sign-in state.
pub const HANDOFF_TYP: &str = "gatehouse-handoff+jwt";
/// How long the state cookie lasts: time enough to sign in with Google at the auth origin.
pub const STATE_MAX_AGE: i64 = 600;

/// What a site's hand-off state cookie holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandOffState {
    /// The random state sent to the auth origin, which binds the code to this cookie.
    pub state: String,
    /// Where to go on the site afterwards (already validated for it).
    pub callback: String,
    /// The site's origin.
    pub aud: String,
}

impl HandOffState {
    /// A new state for `origin`.
    pub fn new(state: String, callback: &CallbackUrl, origin: &str) -> Self {
        Self {
            state,
            callback: callback.as_str().to_owned(),
            aud: origin.to_owned(),
        }
    }
}

/// Why a hand-off is refused (logged; the visitor sees `Verification`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No state cookie on the site, or not one the site signed for itself, or expired.
    NoState,
    /// No code, or not one Gatehouse could have made.
    BadCode,
    /// No such code, or used already.
    UnknownCode,
    /// Made for another site.
    OtherSite,
    /// Bound to another browser's state.
    StateMismatch,
    /// Older than [`CODE_TTL`].
    Expired,
    /// The sign-in it came from ended (signed out, revoked, user disabled) since.
    SignInEnded,
}

impl Refused {
    /// For the log line.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoState => "no valid hand-off state cookie on this site",
            Self::BadCode => "missing or malformed code",
            Self::UnknownCode => "unknown or already used code",
            Self::OtherSite => "code made for another site",
            Self::StateMismatch => "code bound to another browser's state",
            Self::Expired => "code expired",
            Self::SignInEnded => "the sign-in it came from has ended",
        }
    }
}

/// SHA-256 of `value`, base64url: what D1 keeps of codes and states.
pub fn hash(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

/// Whether `value` can be a code or state Gatehouse made (32 random bytes, base64url): anything
/// else is refused before it reaches D1 or a URL.
pub fn well_formed(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Signs `state` for the site's cookie.
pub fn seal(keys: &KeySet, state: &HandOffState, now: UnixTime) -> Option<String> {
    let mut claims = Claims::new(state.clone());
    claims.issued_at = Some(now.to_chrono());
    claims.expiration = Some(now.plus(STATE_MAX_AGE).to_chrono());
    keys.sign(HANDOFF_TYP, &claims)
}

/// The site's state cookie, if it is one this site signed for itself and has not expired.
pub fn open(
    keys: &KeySet,
    cookie: Option<&str>,
    origin: &str,
    now: UnixTime,
) -> Result<HandOffState, Refused> {
    let claims: Claims<HandOffState> = keys
        .verify(HANDOFF_TYP, cookie.ok_or(Refused::NoState)?)
        .map_err(|_| Refused::NoState)?;
    match claims.expiration {
        Some(exp) if UnixTime::from_chrono(exp) > now && claims.custom.aud == origin => {
            Ok(claims.custom)
        }
        _ => Err(Refused::NoState),
    }
}

/// Whether the code `redeemed` (already used up by this redeem) signs the holder of `state` in
/// on `site_origin` at `now`.
pub fn check(
    redeemed: &HandOff,
    site_origin: &str,
    state: &str,
    now: UnixTime,
) -> Result<(), Refused> {
    if redeemed.site != site_origin {
        return Err(Refused::OtherSite);
    }
    if !bool::from(redeemed.state_hash.as_bytes().ct_eq(hash(state).as_bytes())) {
        return Err(Refused::StateMismatch);
    }
    if redeemed.expires_at <= now.secs() {
        return Err(Refused::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    const NOW: UnixTime = UnixTime(1_800_000_000);
    const B: &str = "https://wiki.example.com";

    fn code(site: &str, state: &str, expires_at: i64) -> HandOff {
        HandOff {
            code_hash: hash("code"),
            user_id: "u1".into(),
            session_id: "s1".into(),
            site: site.into(),
            state_hash: hash(state),
            expires_at,
        }
    }

    #[test]
    fn a_code_signs_in_only_its_site_its_browser_and_in_time() {
        let state = "s".repeat(43);
        let good = code(B, &state, NOW.secs() + CODE_TTL);
        assert_eq!(check(&good, B, &state, NOW), Ok(()));
        assert_eq!(
            check(&good, "https://docs.example.com", &state, NOW),
            Err(Refused::OtherSite)
        );
        assert_eq!(
            check(&good, B, &"t".repeat(43), NOW),
            Err(Refused::StateMismatch)
        );
        assert_eq!(
            check(&good, B, &state, NOW.plus(CODE_TTL)),
            Err(Refused::Expired)
        );
    }

    #[test]
    fn the_state_cookie_is_the_sites_own_signed_and_short_lived() {
        let c = config(&[]);
        let state = HandOffState::new("x".repeat(43), &CallbackUrl::root(), B);
        let sealed = seal(&c.keys, &state, NOW).unwrap();
        assert_eq!(open(&c.keys, Some(&sealed), B, NOW), Ok(state));
        assert_eq!(
            open(&c.keys, Some(&sealed), "https://docs.example.com", NOW),
            Err(Refused::NoState)
        );
        assert_eq!(
            open(&c.keys, Some(&sealed), B, NOW.plus(STATE_MAX_AGE)),
            Err(Refused::NoState)
        );
        assert_eq!(open(&c.keys, None, B, NOW), Err(Refused::NoState));
        let mut tampered = sealed.clone();
        tampered.replace_range(tampered.len() - 4.., "AAAA");
        assert_eq!(
            open(&c.keys, Some(&tampered), B, NOW),
            Err(Refused::NoState)
        );
        // A sign-in state cookie (another `typ`) is not a hand-off state.
        let sign_in = crate::oidc::state::seal(
            &c.keys,
            &crate::oidc::state::new_state(
                "x".into(),
                "p".into(),
                "n".into(),
                &CallbackUrl::root(),
                B,
            ),
            NOW,
        )
        .unwrap();
        assert_eq!(open(&c.keys, Some(&sign_in), B, NOW), Err(Refused::NoState));
    }

    #[test]
    fn only_43_url_safe_characters_are_a_code() {
        assert!(well_formed(&"a".repeat(43)));
        assert!(!well_formed(&"a".repeat(42)));
        assert!(!well_formed(&"a".repeat(44)));
        assert!(!well_formed(&format!("{}%", "a".repeat(42))));
        assert!(!well_formed(""));
        assert_ne!(hash("a"), hash("b"));
    }
}
