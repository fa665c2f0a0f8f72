//! Bench-only exports (cargo feature `bench`, built by `make bench` into `bench/out/`, never
//! into the release bundle): each loops `n` times over the real functions of the crate, with
//! everything that is per-isolate in production (the parsed key set, the provider's JWKS)
//! prepared once outside the loop. The caller times the call with `performance.now()`; each
//! returns how many iterations succeeded, so the caller can check that the loop measured the
//! success path and the optimiser cannot drop the work.

#![expect(
    unreachable_pub,
    reason = "wasm exports: reached from JavaScript, not from Rust"
)]

use wasm_bindgen::prelude::wasm_bindgen;

use super::webcrypto::WebCryptoRs256;
use crate::oidc::id_token::{self, Expected, IdClaims};
use crate::oidc::jwks::ProviderKeys;
use crate::oidc::rs256::Rs256Verifier as _;
use crate::oidc::state::{self, SignInState};
use crate::random::{OsRandom, Random};
use crate::session::keys::KeySet;
use crate::session::token::{self, SessionClaims, UntrustedSession, Verified};
use crate::time::UnixTime;

/// Google's issuer, as the configuration accepts it.
const ISSUER: &str = "https://accounts.google.com";

fn key_set(keys_json: &str) -> KeySet {
    KeySet::from_jwk_set(keys_json).expect("bench: SESSION_KEYS is a valid JWK Set")
}

fn time(now: f64) -> UnixTime {
    UnixTime(now as i64)
}

/// The session check of every gated request: `token::verify` of a current token.
#[wasm_bindgen(js_name = benchSessionVerify)]
pub fn bench_session_verify(keys_json: &str, token: &str, origin: &str, now: f64, n: u32) -> u32 {
    let keys = key_set(keys_json);
    let now = time(now);
    let mut ok = 0;
    for _ in 0..n {
        if let Ok(Verified::Current(_)) = token::verify(&keys, UntrustedSession(token), origin, now)
        {
            ok += 1;
        }
    }
    ok
}

/// The renewal path without its D1 read: verify an expired token, then issue its successor
/// (claims taken from the old token where production takes them from the D1 row).
#[wasm_bindgen(js_name = benchRenewal)]
pub fn bench_renewal(keys_json: &str, expired: &str, origin: &str, now: f64, n: u32) -> u32 {
    let keys = key_set(keys_json);
    let now = time(now);
    let mut ok = 0;
    for _ in 0..n {
        let Ok(Verified::Expired(old)) =
            token::verify(&keys, UntrustedSession(expired), origin, now)
        else {
            continue;
        };
        if token::issue(&keys, old.claims().clone(), now, 300).is_some() {
            ok += 1;
        }
    }
    ok
}

/// The worker's ID token check: the RS256 signature with WebCrypto (as `App` makes it), then
/// the claims.
async fn id_token_checked(
    id_token: &str,
    provider: &ProviderKeys,
    expected: Expected<'_>,
) -> Option<IdClaims> {
    let check = id_token::signature_check(id_token, provider).ok()?;
    if !WebCryptoRs256.verify(&check).await {
        return None;
    }
    id_token::validate_checked(id_token, provider, expected, &check.passed()).ok()
}

/// Google's ID token check alone: RS256 signature (WebCrypto) with the cached JWKS, then the
/// claims.
#[wasm_bindgen(js_name = benchIdToken)]
pub async fn bench_id_token(
    jwks: String,
    id_token: String,
    client_id: String,
    nonce: String,
    now: f64,
    n: u32,
) -> u32 {
    let provider = ProviderKeys::parse(jwks.as_bytes()).expect("bench: a JWKS document");
    let issuers = [ISSUER.to_owned()];
    let expected = Expected {
        issuers: &issuers,
        client_id: &client_id,
        nonce: &nonce,
        now: time(now),
    };
    let mut ok = 0;
    for _ in 0..n {
        if id_token_checked(&id_token, &provider, expected)
            .await
            .is_some()
        {
            ok += 1;
        }
    }
    ok
}

/// The sign-in callback's CPU without its two network round trips (token endpoint, D1):
/// open the state cookie, validate the ID token, draw the two ids, sign the session token.
#[wasm_bindgen(js_name = benchSignInCallback)]
#[expect(
    clippy::too_many_arguments,
    reason = "a flat signature is what JS calls it with"
)]
pub async fn bench_sign_in_callback(
    keys_json: String,
    jwks: String,
    id_token: String,
    origin: String,
    client_id: String,
    nonce: String,
    now: f64,
    n: u32,
) -> u32 {
    let keys = key_set(&keys_json);
    let provider = ProviderKeys::parse(jwks.as_bytes()).expect("bench: a JWKS document");
    let now = time(now);
    let issuers = [ISSUER.to_owned()];
    let expected = Expected {
        issuers: &issuers,
        client_id: &client_id,
        nonce: &nonce,
        now,
    };
    let sign_in = SignInState {
        state: "bench-state".into(),
        pkce: "bench-pkce-verifier".into(),
        nonce: nonce.clone(),
        callback: format!("{origin}/"),
        aud: origin.clone(),
    };
    let cookie = state::seal(&keys, &sign_in, now).expect("bench: state sealed");
    let mut ok = 0;
    for _ in 0..n {
        let Ok(opened) = state::open(&keys, Some(&cookie), Some("bench-state"), &origin, now)
        else {
            continue;
        };
        let Some(id) = id_token_checked(&id_token, &provider, expected).await else {
            continue;
        };
        let claims = SessionClaims {
            iss: origin.clone(),
            aud: origin.clone(),
            sub: OsRandom.token(16),
            sid: OsRandom.token(16),
            email: id.email.unwrap_or_default(),
            name: id.name,
            picture: id.picture,
            role: "user".into(),
            sxp: now.plus(30 * 86_400).secs(),
        };
        if token::issue(&keys, claims, now, 300).is_some() && !opened.callback_url().is_empty() {
            ok += 1;
        }
    }
    ok
}

/// One session token as sign-in issues it (`token::issue`, which drops `picture`, then `name`,
/// past 900 bytes), for the cookie-size report. `claims` is [`SessionClaims`] as JSON.
#[wasm_bindgen(js_name = benchIssue)]
pub fn bench_issue(keys_json: &str, claims: &str, now: f64) -> Option<String> {
    let claims: SessionClaims = serde_json::from_str(claims).expect("bench: SessionClaims JSON");
    token::issue(&key_set(keys_json), claims, time(now), 300)
}
