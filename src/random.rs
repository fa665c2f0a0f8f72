//! Randomness as a seam: the operating system's (`WebCrypto`'s `getRandomValues` on Workers)
//! in production, a counter in tests.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A source of random bytes.
pub trait Random {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);

    /// `bytes` random bytes as unpadded base64url: ids, `state`, nonces, PKCE verifiers.
    fn token(&self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        self.fill(&mut buf);
        URL_SAFE_NO_PAD.encode(buf)
    }
}

/// The platform's cryptographic random source (getrandom; `WebCrypto` on wasm).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // A platform without a random source cannot run Gatehouse safely: stopping is right.
        getrandom::fill(buf).expect("the platform's random source failed");
    }
}
