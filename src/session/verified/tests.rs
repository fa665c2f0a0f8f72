use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;
use crate::session::token::{SessionClaims, issue};

const ORIGIN: &str = "https://site.test";
const NOW: UnixTime = UnixTime(1_800_000_000);

fn keys(byte: u8) -> KeySet {
    let k = URL_SAFE_NO_PAD.encode([byte; 32]);
    KeySet::from_jwk_set(&format!(
        r#"{{"keys":[{{"kty":"oct","kid":"k1","k":"{k}"}}]}}"#
    ))
    .unwrap()
}

fn claims(sid: &str, sxp: UnixTime) -> SessionClaims {
    SessionClaims {
        iss: ORIGIN.into(),
        aud: ORIGIN.into(),
        sub: "user-1".into(),
        sid: sid.into(),
        email: "ada@example.com".into(),
        name: Some("Ada".into()),
        picture: None,
        role: "user".into(),
        sxp: sxp.secs(),
    }
}

/// A token issued at NOW, current for 300 s.
fn token(sid: &str) -> String {
    issue(&keys(1), claims(sid, NOW.plus(86_400)), NOW, 300).unwrap()
}

fn sid_of(
    memory: &mut VerifiedTokens,
    keys: &KeySet,
    t: &str,
    origin: &str,
    at: UnixTime,
) -> Option<String> {
    memory
        .current(keys, UntrustedSession(t), origin, at)
        .map(|s| s.claims().sid.clone())
}

#[test]
fn a_current_token_is_remembered_and_answers_again_without_a_check() {
    let mut m = VerifiedTokens::default();
    let t = token("s1");
    assert_eq!(
        sid_of(&mut m, &keys(1), &t, ORIGIN, NOW.plus(1)).as_deref(),
        Some("s1")
    );
    assert_eq!(m.len(), 1);
    // Proof that the second answer comes from memory: with another key set, `verify` refuses.
    assert_eq!(
        sid_of(&mut m, &keys(2), &t, ORIGIN, NOW.plus(2)).as_deref(),
        Some("s1")
    );
}

#[test]
fn a_remembered_token_lapses_at_exp_and_at_the_sessions_end_as_verify_says() {
    let mut m = VerifiedTokens::default();
    let t = token("s1");
    assert!(sid_of(&mut m, &keys(1), &t, ORIGIN, NOW).is_some());
    assert!(sid_of(&mut m, &keys(1), &t, ORIGIN, NOW.plus(299)).is_some());
    assert_eq!(
        sid_of(&mut m, &keys(1), &t, ORIGIN, NOW.plus(300)),
        None,
        "exp"
    );
    assert!(m.is_empty(), "a lapsed token is forgotten");

    let ending = issue(&keys(1), claims("s2", NOW.plus(100)), NOW, 300).unwrap();
    assert!(sid_of(&mut m, &keys(1), &ending, ORIGIN, NOW.plus(1)).is_some());
    assert_eq!(
        sid_of(&mut m, &keys(1), &ending, ORIGIN, NOW.plus(100)),
        None,
        "sxp"
    );
    // Before its iat (a clock that went back): not current, as verify says.
    assert!(sid_of(&mut m, &keys(1), &t, ORIGIN, NOW.plus(1)).is_some());
    assert_eq!(sid_of(&mut m, &keys(1), &t, ORIGIN, NOW.plus(-1)), None);
}

#[test]
fn refusals_are_never_remembered_and_a_changed_byte_is_a_miss() {
    let mut m = VerifiedTokens::default();
    let t = token("s1");
    assert_eq!(sid_of(&mut m, &keys(2), &t, ORIGIN, NOW), None, "wrong key");
    assert!(m.is_empty());
    assert_eq!(
        sid_of(&mut m, &keys(1), &t, ORIGIN, NOW.plus(301)),
        None,
        "expired"
    );
    assert!(m.is_empty());

    assert!(sid_of(&mut m, &keys(1), &t, ORIGIN, NOW).is_some());
    // The same claims with a tampered signature byte: not the remembered key, and refused.
    let mut tampered = t.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(sid_of(&mut m, &keys(1), &tampered, ORIGIN, NOW), None);
    assert_eq!(m.len(), 1);
}

#[test]
fn a_token_remembered_for_one_origin_is_refused_on_another() {
    let mut m = VerifiedTokens::default();
    let t = token("s1");
    assert!(sid_of(&mut m, &keys(1), &t, ORIGIN, NOW).is_some());
    assert_eq!(
        sid_of(&mut m, &keys(1), &t, "https://other.test", NOW),
        None
    );
    assert!(sid_of(&mut m, &keys(1), &t, ORIGIN, NOW).is_some());
}

#[test]
fn memory_is_bounded_and_keeps_what_is_in_use() {
    let mut m = VerifiedTokens::with_capacity(4);
    let tokens: Vec<String> = (0..6).map(|i| token(&format!("s{i}"))).collect();
    for t in &tokens {
        assert!(sid_of(&mut m, &keys(1), t, ORIGIN, NOW).is_some());
        assert!(m.len() <= 4, "{}", m.len());
    }
    // s5 and s4 are young, s3 and s2 old; s0 was dropped: a check again (proof: other keys refuse).
    assert_eq!(sid_of(&mut m, &keys(2), &tokens[0], ORIGIN, NOW), None);
    // An old one in use moves back to the young generation and stays.
    assert!(sid_of(&mut m, &keys(2), &tokens[3], ORIGIN, NOW).is_some());
    let long = "x".repeat(MAX_TOKEN_LENGTH + 1);
    assert_eq!(sid_of(&mut m, &keys(1), &long, ORIGIN, NOW), None);
}

#[test]
fn deferred_ed25519_tokens_ask_for_their_check_once_then_answer_from_memory() {
    // RFC 8037 Appendix A.1's key pair.
    let ed = KeySet::from_jwk_set(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed1","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#).unwrap();
    let t = issue(&ed, claims("s1", NOW.plus(86_400)), NOW, 300).unwrap();
    let mut m = VerifiedTokens::default();
    let deferred = |m: &mut VerifiedTokens, proof| match m.lookup(
        &ed,
        UntrustedSession(&t),
        ORIGIN,
        NOW.plus(1),
        Signatures::Deferred(proof),
    ) {
        Lookup::Current(s) => Ok(s.claims().sid.clone()),
        Lookup::Check(check) => Err(Some(check)),
        Lookup::Full => Err(None),
    };
    let Err(Some(check)) = deferred(&mut m, None) else {
        panic!("a new Ed25519 token must ask for its check")
    };
    assert!(m.is_empty());
    assert!(check.verify_natively());
    let proof = check.passed();
    assert_eq!(deferred(&mut m, Some(&proof)), Ok("s1".into()));
    assert_eq!(m.len(), 1);
    // Remembered: no check asked for again.
    assert_eq!(deferred(&mut m, None), Ok("s1".into()));
    // HS256 tokens are checked on the spot, deferred or not.
    let hs = token("s2");
    let got = m.lookup(
        &keys(1),
        UntrustedSession(&hs),
        ORIGIN,
        NOW.plus(1),
        Signatures::Deferred(None),
    );
    assert!(
        matches!(got, Lookup::Current(s) if s.claims().sid == "s2"),
        "{got:?}"
    );
}
