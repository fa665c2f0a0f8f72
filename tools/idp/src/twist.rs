//! Hostile mode: per-sign-in "twists" that make one ID token or one token response bad in one
//! precise way, so end-to-end tests can show that the relying party refuses it.
//!
//! A twist is asked for with `test_twist=NAME` on an automatically approved authorization request
//! (next to `test_email`); it may be repeated, and one value may also list several names
//! separated by commas. The twists are stored with the code (in its
//! [`Issuance`](crate::id_token::Issuance)) and applied when that code is redeemed at `/token`;
//! every other request stays honest. Each twist changes one *slot* (the signature, `iss`, the
//! audience, …); two different twists for the same slot are refused, since the result would be
//! ambiguous. The full list is in the crate documentation and [`Twist::ALL`].

use std::fmt;

/// One way to misbehave. See the crate documentation for what each does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Twist {
    // The ID token's signature and header.
    ForeignKey,
    AlgNone,
    Hs256Pubkey,
    NoKid,
    UnknownKid,
    Rs512,
    Ps256,
    BadSignature,
    Garbage,
    // The ID token's claims.
    WrongIss,
    NoIss,
    WrongAud,
    AudArrayWithAzp,
    AudArrayNoAzp,
    AudArrayWrongAzp,
    WrongAzp,
    Expired,
    ExpiredWithinLeeway,
    NoExp,
    IatFuture,
    IatFutureWithinLeeway,
    NoIat,
    NoNonce,
    WrongNonce,
    UnverifiedEmail,
    NoEmail,
    NoSub,
    EmptySub,
    EmailVerifiedString,
    // The token endpoint's answer.
    Token500,
    Token503Json,
    TokenNotJson,
    TokenErrorJson,
    TokenNoIdToken,
    TokenIdTokenNotString,
    TokenStall,
    TokenClose,
    TokenHuge,
    TokenSlowBody,
    TokenHugeSlowBody,
    TokenEndless,
}

/// What a twist acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The ID token's header or signature.
    Signing,
    /// The ID token's claims.
    Claims,
    /// The HTTP answer of the token endpoint.
    TokenEndpoint,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Signing => "signing",
            Kind::Claims => "claims",
            Kind::TokenEndpoint => "token_endpoint",
        }
    }
}

impl Twist {
    /// Every twist, in documentation order.
    pub const ALL: &'static [Twist] = &[
        Twist::ForeignKey,
        Twist::AlgNone,
        Twist::Hs256Pubkey,
        Twist::NoKid,
        Twist::UnknownKid,
        Twist::Rs512,
        Twist::Ps256,
        Twist::BadSignature,
        Twist::Garbage,
        Twist::WrongIss,
        Twist::NoIss,
        Twist::WrongAud,
        Twist::AudArrayWithAzp,
        Twist::AudArrayNoAzp,
        Twist::AudArrayWrongAzp,
        Twist::WrongAzp,
        Twist::Expired,
        Twist::ExpiredWithinLeeway,
        Twist::NoExp,
        Twist::IatFuture,
        Twist::IatFutureWithinLeeway,
        Twist::NoIat,
        Twist::NoNonce,
        Twist::WrongNonce,
        Twist::UnverifiedEmail,
        Twist::NoEmail,
        Twist::NoSub,
        Twist::EmptySub,
        Twist::EmailVerifiedString,
        Twist::Token500,
        Twist::Token503Json,
        Twist::TokenNotJson,
        Twist::TokenErrorJson,
        Twist::TokenNoIdToken,
        Twist::TokenIdTokenNotString,
        Twist::TokenStall,
        Twist::TokenClose,
        Twist::TokenHuge,
        Twist::TokenSlowBody,
        Twist::TokenHugeSlowBody,
        Twist::TokenEndless,
    ];

    /// The name used in `test_twist=`.
    pub fn name(self) -> &'static str {
        match self {
            Twist::ForeignKey => "foreign_key",
            Twist::AlgNone => "alg_none",
            Twist::Hs256Pubkey => "hs256_pubkey",
            Twist::NoKid => "no_kid",
            Twist::UnknownKid => "unknown_kid",
            Twist::Rs512 => "rs512",
            Twist::Ps256 => "ps256",
            Twist::BadSignature => "bad_signature",
            Twist::Garbage => "garbage",
            Twist::WrongIss => "wrong_iss",
            Twist::NoIss => "no_iss",
            Twist::WrongAud => "wrong_aud",
            Twist::AudArrayWithAzp => "aud_array_with_azp",
            Twist::AudArrayNoAzp => "aud_array_no_azp",
            Twist::AudArrayWrongAzp => "aud_array_wrong_azp",
            Twist::WrongAzp => "wrong_azp",
            Twist::Expired => "expired",
            Twist::ExpiredWithinLeeway => "expired_within_leeway",
            Twist::NoExp => "no_exp",
            Twist::IatFuture => "iat_future",
            Twist::IatFutureWithinLeeway => "iat_future_within_leeway",
            Twist::NoIat => "no_iat",
            Twist::NoNonce => "no_nonce",
            Twist::WrongNonce => "wrong_nonce",
            Twist::UnverifiedEmail => "unverified_email",
            Twist::NoEmail => "no_email",
            Twist::NoSub => "no_sub",
            Twist::EmptySub => "empty_sub",
            Twist::EmailVerifiedString => "email_verified_string",
            Twist::Token500 => "token_500",
            Twist::Token503Json => "token_503_json",
            Twist::TokenNotJson => "token_not_json",
            Twist::TokenErrorJson => "token_error_json",
            Twist::TokenNoIdToken => "token_no_id_token",
            Twist::TokenIdTokenNotString => "token_id_token_not_string",
            Twist::TokenStall => "token_stall",
            Twist::TokenClose => "token_close",
            Twist::TokenHuge => "token_huge",
            Twist::TokenSlowBody => "token_slow_body",
            Twist::TokenHugeSlowBody => "token_huge_slow_body",
            Twist::TokenEndless => "token_endless",
        }
    }

    /// The twist called `name` (exact, lowercase).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    pub fn kind(self) -> Kind {
        use Twist::*;
        match self {
            ForeignKey | AlgNone | Hs256Pubkey | NoKid | UnknownKid | Rs512 | Ps256
            | BadSignature | Garbage => Kind::Signing,
            Token500
            | Token503Json
            | TokenNotJson
            | TokenErrorJson
            | TokenNoIdToken
            | TokenIdTokenNotString
            | TokenStall
            | TokenClose
            | TokenHuge
            | TokenSlowBody
            | TokenHugeSlowBody
            | TokenEndless => Kind::TokenEndpoint,
            _ => Kind::Claims,
        }
    }

    /// What the twist changes; at most one twist per slot in one sign-in.
    pub fn slot(self) -> &'static str {
        use Twist::*;
        match self {
            WrongIss | NoIss => "iss",
            WrongAud | AudArrayWithAzp | AudArrayNoAzp | AudArrayWrongAzp | WrongAzp => "aud/azp",
            Expired | ExpiredWithinLeeway | IatFuture | IatFutureWithinLeeway => "iat/exp",
            NoExp => "no_exp",
            NoIat => "no_iat",
            NoNonce | WrongNonce => "nonce",
            UnverifiedEmail | NoEmail | EmailVerifiedString => "email",
            NoSub | EmptySub => "sub",
            other => other.kind().name(),
        }
    }

    /// Whether a correct relying party signs the person in anyway: these three are within the
    /// rules (a second audience with the right `azp`, and clock skew inside the 60 s leeway).
    /// Every other twist must be refused.
    pub fn is_acceptable(self) -> bool {
        matches!(
            self,
            Twist::AudArrayWithAzp | Twist::ExpiredWithinLeeway | Twist::IatFutureWithinLeeway
        )
    }
}

impl fmt::Display for Twist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses the values of `test_twist` (each a name or a comma-separated list of names) into a
/// sorted list without duplicates. Unknown names, and two different twists for one slot, are
/// errors meant for the test author.
pub fn parse_twists<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<Twist>, String> {
    let mut twists: Vec<Twist> = Vec::new();
    for name in values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let twist = Twist::from_name(name).ok_or_else(|| {
            format!(
                "Unknown test_twist `{name}`; known: {}.",
                Twist::ALL
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        if twists.contains(&twist) {
            continue;
        }
        if let Some(other) = twists.iter().find(|t| t.slot() == twist.slot()) {
            return Err(format!(
                "test_twist `{other}` and `{twist}` both change {}; pick one.",
                twist.slot()
            ));
        }
        twists.push(twist);
    }
    twists.sort();
    Ok(twists)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names: Vec<_> = Twist::ALL.iter().map(|t| t.name()).collect();
        for t in Twist::ALL {
            assert_eq!(Twist::from_name(t.name()), Some(*t));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Twist::ALL.len());
        assert_eq!(Twist::ALL.len(), 41);
        assert_eq!(Twist::from_name("FOREIGN_KEY"), None);
        let acceptable: Vec<_> = Twist::ALL.iter().filter(|t| t.is_acceptable()).collect();
        assert_eq!(acceptable.len(), 3);
    }

    #[test]
    fn parses_repeats_lists_and_refuses_conflicts() {
        assert_eq!(
            parse_twists(["wrong_iss", "expired, no_kid", "wrong_iss", ""]),
            Ok(vec![Twist::NoKid, Twist::WrongIss, Twist::Expired])
        );
        assert_eq!(parse_twists([]), Ok(vec![]));
        assert!(parse_twists(["nope"]).unwrap_err().contains("foreign_key"));
        assert!(parse_twists(["wrong_iss", "no_iss"]).is_err());
        assert!(parse_twists(["alg_none", "rs512"]).is_err());
        assert!(parse_twists(["token_500", "token_stall"]).is_err());
        assert!(parse_twists(["expired", "iat_future"]).is_err());
        // Different slots combine.
        assert!(parse_twists(["expired", "no_iat", "token_stall", "foreign_key"]).is_ok());
    }
}
