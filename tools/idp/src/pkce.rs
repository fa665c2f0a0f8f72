//! PKCE (RFC 7636), S256 only.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// `BASE64URL-NOPAD(SHA256(ASCII(code_verifier)))`.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `s` has the syntax of a `code_verifier` or `code_challenge`:
/// 43 to 128 characters from `[A-Za-z0-9-._~]` (RFC 7636, sections 4.1 and 4.2).
pub fn is_well_formed(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `verifier` proves possession for `challenge` (method S256).
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    is_well_formed(verifier)
        && constant_time_eq(s256_challenge(verifier).as_bytes(), challenge.as_bytes())
}

/// Compares two byte strings in constant time (for equal lengths), with `subtle`.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636, Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
        assert!(verify_s256(VERIFIER, CHALLENGE));
    }

    #[test]
    fn wrong_or_malformed_verifier_fails() {
        assert!(!verify_s256(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl",
            CHALLENGE
        ));
        // `plain` would accept the challenge itself as the verifier; S256 must not.
        assert!(!verify_s256(CHALLENGE, CHALLENGE));
        assert!(!verify_s256("short", &s256_challenge("short")));
        let bad_chars = "a".repeat(42) + "/";
        assert!(!verify_s256(&bad_chars, &s256_challenge(&bad_chars)));
    }

    #[test]
    fn syntax() {
        assert!(is_well_formed(&"a".repeat(43)));
        assert!(is_well_formed(&"~._-".repeat(32)));
        assert!(!is_well_formed(&"a".repeat(42)));
        assert!(!is_well_formed(&"a".repeat(129)));
        assert!(!is_well_formed(&("a".repeat(42) + "+")));
    }
}
