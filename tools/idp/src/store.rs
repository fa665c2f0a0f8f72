//! Authorization codes and access tokens, in memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

use crate::id_token::{Identity, Issuance, Scopes};
use crate::pkce;

/// How long a code can be redeemed after it is issued.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// `expires_in` of access tokens (Google says 3599).
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);
/// Used codes are remembered this long so a replay is recognised (and revokes the tokens).
const USED_CODE_MEMORY: Duration = Duration::from_secs(600);

/// `n` random bytes, hex-encoded.
pub fn random_hex(n: usize) -> String {
    random_bytes(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes, base64url without padding.
pub fn random_urlsafe(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(n))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf
}

/// A checked authorization request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Echoed verbatim.
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// S256 challenge (the only method accepted).
    pub code_challenge: String,
    /// `scope` as the client sent it.
    pub scope: String,
    pub scopes: Scopes,
}

/// What an authorization code stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub request: AuthRequest,
    pub identity: Identity,
    pub issuance: Issuance,
}

enum CodeState {
    Fresh(Box<Grant>),
    /// Redeemed, or burned by a failed attempt; holds the access token it bought, if any.
    Used {
        access_token: Option<String>,
    },
}

struct CodeEntry {
    issued: Instant,
    state: CodeState,
}

struct AccessEntry {
    identity: Identity,
    scopes: Scopes,
    expires: Instant,
}

/// What the token request presents besides the code.
pub struct Redemption<'a> {
    /// The authenticated client.
    pub client_id: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

/// Why a code was refused; all are `invalid_grant` on the wire.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RedeemError {
    Unknown,
    Reused,
    Expired,
    WrongClient,
    RedirectUriMismatch,
    PkceFailed,
}

/// Codes and access tokens.
#[derive(Default)]
pub struct Store {
    codes: HashMap<String, CodeEntry>,
    access_tokens: HashMap<String, AccessEntry>,
}

impl Store {
    /// Stores `grant` under a fresh code (shaped like Google's `4/0A…`) and returns the code.
    pub fn issue_code(&mut self, grant: Grant, now: Instant) -> String {
        self.prune(now);
        let code = format!("4/0A{}", random_urlsafe(40));
        self.codes.insert(
            code.clone(),
            CodeEntry {
                issued: now,
                state: CodeState::Fresh(Box::new(grant)),
            },
        );
        code
    }

    /// Redeems `code` once. The first attempt burns the code whatever its outcome; a second
    /// attempt also revokes the access token the first one bought (RFC 6749, section 4.1.2).
    /// On success `access_token` is recorded for userinfo.
    pub fn redeem(
        &mut self,
        code: &str,
        presented: &Redemption<'_>,
        access_token: &str,
        now: Instant,
    ) -> Result<Grant, RedeemError> {
        let entry = self.codes.get_mut(code).ok_or(RedeemError::Unknown)?;
        let previous = std::mem::replace(&mut entry.state, CodeState::Used { access_token: None });
        let grant = match previous {
            CodeState::Fresh(grant) => grant,
            CodeState::Used { access_token } => {
                if let Some(token) = access_token {
                    self.access_tokens.remove(&token);
                }
                return Err(RedeemError::Reused);
            }
        };
        if now.saturating_duration_since(entry.issued) > CODE_LIFETIME {
            return Err(RedeemError::Expired);
        }
        if grant.request.client_id != presented.client_id {
            return Err(RedeemError::WrongClient);
        }
        if presented.redirect_uri != Some(grant.request.redirect_uri.as_str()) {
            return Err(RedeemError::RedirectUriMismatch);
        }
        let verified = presented
            .code_verifier
            .is_some_and(|v| pkce::verify_s256(v, &grant.request.code_challenge));
        if !verified {
            return Err(RedeemError::PkceFailed);
        }
        entry.state = CodeState::Used {
            access_token: Some(access_token.to_owned()),
        };
        self.access_tokens.insert(
            access_token.to_owned(),
            AccessEntry {
                identity: grant.identity.clone(),
                scopes: grant.request.scopes,
                expires: now + ACCESS_TOKEN_LIFETIME,
            },
        );
        Ok(*grant)
    }

    /// The identity and scopes behind a live access token.
    pub fn access_token(&self, token: &str, now: Instant) -> Option<(&Identity, Scopes)> {
        self.access_tokens
            .get(token)
            .filter(|e| e.expires > now)
            .map(|e| (&e.identity, e.scopes))
    }

    fn prune(&mut self, now: Instant) {
        self.codes
            .retain(|_, e| now.saturating_duration_since(e.issued) < USED_CODE_MEMORY);
        self.access_tokens.retain(|_, e| e.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn grant() -> Grant {
        Grant {
            request: AuthRequest {
                client_id: "cid".into(),
                redirect_uri: "http://localhost:8787/cb".into(),
                state: Some("st".into()),
                nonce: None,
                code_challenge: CHALLENGE.into(),
                scope: "openid email".into(),
                scopes: Scopes {
                    email: true,
                    profile: false,
                },
            },
            identity: Identity::for_email("ada@example.com"),
            issuance: Issuance::default(),
        }
    }

    fn presented(verifier: &str) -> Redemption<'_> {
        Redemption {
            client_id: "cid",
            redirect_uri: Some("http://localhost:8787/cb"),
            code_verifier: Some(verifier),
        }
    }

    #[test]
    fn code_is_single_use_and_replay_revokes_the_token() {
        let mut store = Store::default();
        let now = Instant::now();
        let code = store.issue_code(grant(), now);
        assert_eq!(
            store.redeem(&code, &presented(VERIFIER), "at1", now),
            Ok(grant())
        );
        assert!(store.access_token("at1", now).is_some());
        assert_eq!(
            store.redeem(&code, &presented(VERIFIER), "at2", now),
            Err(RedeemError::Reused)
        );
        assert!(
            store.access_token("at1", now).is_none(),
            "replay revokes the first token"
        );
        assert!(store.access_token("at2", now).is_none());
        assert_eq!(
            store.redeem("4/0Anope", &presented(VERIFIER), "at3", now),
            Err(RedeemError::Unknown)
        );
    }

    #[test]
    fn failed_attempt_burns_the_code() {
        let mut store = Store::default();
        let now = Instant::now();
        let code = store.issue_code(grant(), now);
        let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl";
        assert_eq!(
            store.redeem(&code, &presented(wrong), "a", now),
            Err(RedeemError::PkceFailed)
        );
        assert_eq!(
            store.redeem(&code, &presented(VERIFIER), "b", now),
            Err(RedeemError::Reused)
        );
    }

    #[test]
    fn checks_expiry_client_redirect_uri_and_verifier() {
        let mut store = Store::default();
        let now = Instant::now();
        let mut redeem = |p: &Redemption<'_>, at: Instant| {
            let code = store.issue_code(grant(), now);
            store.redeem(&code, p, "t", at)
        };
        let late = now + CODE_LIFETIME + Duration::from_secs(1);
        assert_eq!(
            redeem(&presented(VERIFIER), late),
            Err(RedeemError::Expired)
        );
        let other_client = Redemption {
            client_id: "x",
            ..presented(VERIFIER)
        };
        assert_eq!(redeem(&other_client, now), Err(RedeemError::WrongClient));
        let other_uri = Redemption {
            redirect_uri: Some("http://localhost:8787/cb/"),
            ..presented(VERIFIER)
        };
        assert_eq!(
            redeem(&other_uri, now),
            Err(RedeemError::RedirectUriMismatch)
        );
        let no_uri = Redemption {
            redirect_uri: None,
            ..presented(VERIFIER)
        };
        assert_eq!(redeem(&no_uri, now), Err(RedeemError::RedirectUriMismatch));
        let no_verifier = Redemption {
            code_verifier: None,
            ..presented(VERIFIER)
        };
        assert_eq!(redeem(&no_verifier, now), Err(RedeemError::PkceFailed));
        // `plain`: the challenge itself as verifier is refused.
        assert_eq!(
            redeem(&presented(CHALLENGE), now),
            Err(RedeemError::PkceFailed)
        );
        assert!(redeem(&presented(VERIFIER), now + CODE_LIFETIME).is_ok());
    }

    #[test]
    fn access_tokens_expire() {
        let mut store = Store::default();
        let now = Instant::now();
        let code = store.issue_code(grant(), now);
        store
            .redeem(&code, &presented(VERIFIER), "at", now)
            .unwrap();
        assert!(
            store
                .access_token("at", now + ACCESS_TOKEN_LIFETIME)
                .is_none()
        );
    }
}
