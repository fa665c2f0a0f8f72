//! A per-isolate memory of session tokens that passed [`token::verify`], keyed by the token
//! itself: a visitor's next request, for any URL of the site, skips the signature check and the
//! claims' base64 and JSON (an Ed25519 check costs ≈ 290 µs in wasm, HS256 ≈ 8 µs). The path
//! rules still run on every request with the remembered claims, so the hot path and the full
//! route stay one rule set.
//!
//! Why a remembered token is worth exactly what `verify` would say again:
//! - The key is the whole token, signature included, compared in full (a `HashMap` of `String`):
//!   another token, even one differing in a single byte, is a miss and gets the full check.
//! - An entry is made only after a full check succeeded, so nobody can add one without a valid
//!   token; only `Current` results are kept, never a refusal or an expired token.
//! - The other inputs of `verify` are the key set (fixed per isolate: a change of secrets is a
//!   new deployment), the origin (kept with the entry and compared on every hit) and the clock:
//!   a hit is current only while `iat ≤ now < lapses()` (`exp`, or the session's end if sooner),
//!   the same test `verify` makes. So revocation stays bounded by `SESSION_CHECK_INTERVAL`: past
//!   `exp` the token takes the full route (renewal), as without this memory.
//! - Bounded: at most [`CAPACITY`] tokens of at most [`MAX_TOKEN_LENGTH`] bytes. Two
//!   generations, O(1) each way: new tokens go to the young one; when it is full it becomes the
//!   old one and the previous old one is dropped; a hit in the old one moves back to the young.

use std::collections::HashMap;

use super::keys::{CheckedSignature, Ed25519Check, KeySet};
use super::token::{self, SESSION_TYP, Session, UntrustedSession, Verified};
use crate::time::UnixTime;

/// Most tokens remembered per isolate (two generations of half as many).
pub const CAPACITY: usize = 2048;

/// Longest token remembered; longer ones (never made by `token::issue`) are checked each time.
pub const MAX_TOKEN_LENGTH: usize = 4096;

#[derive(Debug)]
struct Entry {
    origin: String,
    session: Session,
}

/// What [`VerifiedTokens::lookup`] says of a token.
#[derive(Debug)]
pub enum Lookup<'m> {
    /// Current for this origin now: from memory, or just verified (and remembered).
    Current(&'m Session),
    /// Not current here (refused, expired, foreign, too long): the full route decides.
    Full,
    /// An Ed25519 token new to this isolate: the signature check it needs first.
    Check(Ed25519Check),
}

/// Where Ed25519 signatures are checked.
#[derive(Clone, Copy, Debug)]
pub enum Signatures<'p> {
    /// Here, in pure Rust (`KeySet::verify`).
    Inline,
    /// By the caller (WebCrypto); the proof of a check it made, if any.
    Deferred(Option<&'p CheckedSignature>),
}

/// Recently verified tokens of this isolate.
#[derive(Debug)]
pub struct VerifiedTokens {
    young: HashMap<String, Entry>,
    old: HashMap<String, Entry>,
    half: usize,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl VerifiedTokens {
    /// A memory of at most `capacity` tokens (at least 2).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            young: HashMap::new(),
            old: HashMap::new(),
            half: (capacity / 2).max(1),
        }
    }

    /// The session of `token` if it is current for `origin` at `now`: from memory, else by
    /// [`token::verify`] (and then remembered). `None` for anything else (a refused, foreign or
    /// expired token, or one longer than [`MAX_TOKEN_LENGTH`]): the caller takes the full
    /// route, which verifies it again.
    pub fn current(
        &mut self,
        keys: &KeySet,
        token: UntrustedSession<'_>,
        origin: &str,
        now: UnixTime,
    ) -> Option<&Session> {
        match self.lookup(keys, token, origin, now, Signatures::Inline) {
            Lookup::Current(session) => Some(session),
            Lookup::Full | Lookup::Check(_) => None,
        }
    }

    /// [`VerifiedTokens::current`] with the choice of where Ed25519 signatures are checked:
    /// with [`Signatures::Deferred`] (the runtime, which checks them with WebCrypto, an
    /// asynchronous call), an Ed25519 token new to this isolate gives [`Lookup::Check`] unless
    /// the proof is that very check, passed; then it is verified with [`token::verify_checked`]
    /// and remembered like any other. HS256 tokens are checked here either way.
    pub fn lookup(
        &mut self,
        keys: &KeySet,
        token: UntrustedSession<'_>,
        origin: &str,
        now: UnixTime,
        signatures: Signatures<'_>,
    ) -> Lookup<'_> {
        let raw = token.0;
        if raw.len() > MAX_TOKEN_LENGTH {
            return Lookup::Full;
        }
        if !self.young.contains_key(raw)
            && let Some(entry) = self.old.remove(raw)
        {
            self.add(raw, entry);
        }
        if let Some(e) = self.young.get(raw) {
            // Another origin: `verify` would refuse it there (`iss` and `aud` name one origin).
            // Past its time: `verify` would not call it current either.
            let s = &e.session;
            if e.origin == origin && s.issued() <= now && now < s.lapses() {
                return self
                    .young
                    .get(raw)
                    .map_or(Lookup::Full, |e| Lookup::Current(&e.session));
            }
            if now >= s.lapses() {
                self.young.remove(raw);
            }
            return Lookup::Full;
        }
        let verified = match signatures {
            Signatures::Deferred(proof) if keys.has_ed25519() => {
                match keys.ed25519_check(SESSION_TYP, raw) {
                    // Refused by its header: the full route says why.
                    Err(_) => return Lookup::Full,
                    Ok(None) => token::verify(keys, token, origin, now),
                    Ok(Some(check)) => match proof {
                        Some(proof) => token::verify_checked(keys, token, origin, now, proof),
                        None => return Lookup::Check(check),
                    },
                }
            }
            Signatures::Deferred(_) | Signatures::Inline => token::verify(keys, token, origin, now),
        };
        let Ok(Verified::Current(session)) = verified else {
            return Lookup::Full;
        };
        self.add(
            raw,
            Entry {
                origin: origin.to_owned(),
                session,
            },
        );
        self.young
            .get(raw)
            .map_or(Lookup::Full, |e| Lookup::Current(&e.session))
    }

    fn add(&mut self, raw: &str, entry: Entry) {
        if self.young.len() >= self.half {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(raw.to_owned(), entry);
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// Whether no token is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
