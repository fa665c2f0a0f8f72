//! CSRF tokens for sign-out (and later admin actions): an HMAC of the session id under the
//! session key, so a token is bound to one session and needs no storage.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::keys::KeySet;

fn message(sid: &str) -> String {
    // A purpose prefix with a NUL: never a JWT signing input, never another purpose's MAC.
    format!("gatehouse-csrf\0{sid}")
}

/// The CSRF token of session `sid`.
pub fn token(keys: &KeySet, sid: &str) -> String {
    URL_SAFE_NO_PAD.encode(keys.mac(&message(sid)))
}

/// Whether `presented` is the CSRF token of session `sid` (constant-time; any configured key).
pub fn check(keys: &KeySet, sid: &str, presented: &str) -> bool {
    match URL_SAFE_NO_PAD.decode(presented) {
        Ok(tag) => keys.verify_mac(&message(sid), &tag),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> KeySet {
        let k = URL_SAFE_NO_PAD.encode([byte; 32]);
        KeySet::from_jwk_set(&format!(
            r#"{{"keys":[{{"kty":"oct","kid":"k","k":"{k}"}}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn csrf_token_is_bound_to_its_session_and_key() {
        let t = token(&keys(1), "s1");
        assert!(check(&keys(1), "s1", &t));
        assert!(!check(&keys(1), "s2", &t));
        assert!(!check(&keys(2), "s1", &t));
        assert!(!check(&keys(1), "s1", ""));
        assert!(!check(&keys(1), "s1", "%%%"));
        assert!(!check(&keys(1), "s1", &t[..t.len() - 1]));
    }
}
