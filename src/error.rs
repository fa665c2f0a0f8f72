//! Errors: tagged reasons for the log, generic codes and pages for the wire.

use crate::oidc::id_token::IdTokenError;
use crate::oidc::state::StateError;
use crate::store::StoreError;

/// The codes of `/auth/error?error=CODE` (Auth.js's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Server misconfigured (500).
    Configuration,
    /// Not allowed to sign in (403).
    AccessDenied,
    /// Sign-in could not start (500).
    OAuthSignin,
    /// Sign-in could not finish (400).
    OAuthCallbackError,
    /// This Google account is not the one linked to that email (403).
    OAuthAccountNotLinked,
    /// A session is needed (401).
    SessionRequired,
    /// D1 did not answer: nothing is wrong with the visitor or the setup, try again (503).
    Unavailable,
    /// The site behind Gatehouse (`UPSTREAM_URL`) could not be reached (502).
    BadGateway,
    /// The site behind Gatehouse did not answer within `UPSTREAM_TIMEOUT` (504).
    GatewayTimeout,
    /// A sign-in hand-off from the auth origin (`SITES`) that cannot be used: expired, used
    /// already, for another site, or started in another browser (400).
    Verification,
    /// Anything unknown: shown as a generic problem (400).
    Default,
}

impl ErrorCode {
    /// Parses the `error` query parameter; unknown values become [`ErrorCode::Default`].
    pub fn parse(raw: &str) -> Self {
        match raw {
            "Configuration" => Self::Configuration,
            "AccessDenied" => Self::AccessDenied,
            "OAuthSignin" => Self::OAuthSignin,
            "OAuthCallbackError" => Self::OAuthCallbackError,
            "OAuthAccountNotLinked" => Self::OAuthAccountNotLinked,
            "SessionRequired" => Self::SessionRequired,
            "Unavailable" => Self::Unavailable,
            "BadGateway" => Self::BadGateway,
            "GatewayTimeout" => Self::GatewayTimeout,
            "Verification" => Self::Verification,
            _ => Self::Default,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configuration => "Configuration",
            Self::AccessDenied => "AccessDenied",
            Self::OAuthSignin => "OAuthSignin",
            Self::OAuthCallbackError => "OAuthCallbackError",
            Self::OAuthAccountNotLinked => "OAuthAccountNotLinked",
            Self::SessionRequired => "SessionRequired",
            Self::Unavailable => "Unavailable",
            Self::BadGateway => "BadGateway",
            Self::GatewayTimeout => "GatewayTimeout",
            Self::Verification => "Verification",
            Self::Default => "Default",
        }
    }

    /// HTTP status of the error page.
    pub fn status(self) -> u16 {
        match self {
            Self::Configuration | Self::OAuthSignin => 500,
            Self::AccessDenied | Self::OAuthAccountNotLinked => 403,
            Self::SessionRequired => 401,
            Self::Unavailable => 503,
            Self::BadGateway => 502,
            Self::GatewayTimeout => 504,
            Self::OAuthCallbackError | Self::Verification | Self::Default => 400,
        }
    }

    /// A passing outage (D1 or the site): the page offers to try again, not to sign in.
    pub fn is_outage(self) -> bool {
        matches!(
            self,
            Self::Unavailable | Self::BadGateway | Self::GatewayTimeout
        )
    }

    /// Heading of the error page.
    pub fn title(self) -> &'static str {
        match self {
            Self::Configuration => "This site's sign-in is not set up correctly",
            Self::AccessDenied => "Access denied",
            Self::OAuthSignin => "Sign-in could not start",
            Self::OAuthCallbackError => "Sign-in did not finish",
            Self::OAuthAccountNotLinked => "This Google account cannot be used here",
            Self::SessionRequired => "Please sign in",
            Self::Unavailable => "Sign-in is briefly unavailable",
            Self::BadGateway => "The site could not be reached",
            Self::GatewayTimeout => "The site took too long to answer",
            Self::Verification => "This sign-in link cannot be used",
            Self::Default => "Something went wrong",
        }
    }

    /// What the person can do next.
    pub fn advice(self) -> &'static str {
        match self {
            Self::Configuration => {
                "The problem is on our side, not yours. Please try again later, or tell the site's owner."
            }
            Self::AccessDenied => {
                "Your account is not allowed to sign in to this site. If you think it should be, ask the site's owner, or sign in with another account."
            }
            Self::OAuthSignin => "Please try again in a moment.",
            Self::OAuthCallbackError => {
                "Sign-in was cancelled, took too long, or was interrupted. Please try again."
            }
            Self::OAuthAccountNotLinked => {
                "Another Google account already uses this email address here. Sign in with the account you used before."
            }
            Self::SessionRequired => "You need to sign in to see this page.",
            Self::Unavailable => {
                "Our user database did not answer. You are still signed in; please try again in a moment."
            }
            Self::BadGateway => {
                "You are let in, but the site behind the sign-in did not answer. Please try again in a moment."
            }
            Self::GatewayTimeout => {
                "You are let in, but the site behind the sign-in did not answer in time. Please try again in a moment."
            }
            Self::Verification => {
                "It has expired, was used already, or was made for another site or browser. Please sign in again."
            }
            Self::Default => "Please try signing in again.",
        }
    }
}

/// Why a sign-in failed: logged in full, shown only as its [`ErrorCode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The provider sent `?error=…` (e.g. the person cancelled).
    ProviderDenied(String),
    /// State cookie or parameter.
    State(StateError),
    /// No `code` on the callback.
    MissingCode,
    /// The token endpoint failed (reason without secrets).
    CodeExchange(String),
    /// The token response had no `id_token`.
    MissingIdToken,
    /// The provider's keys could not be had.
    Jwks(String),
    /// The ID token was refused.
    IdToken(IdTokenError),
    /// `email_verified` is not true.
    EmailNotVerified,
    /// Not on the allowlists.
    NotAllowed,
    /// The user is disabled.
    UserDisabled,
    /// A new Google account whose email belongs to another user.
    SubjectNotLinked,
    /// D1 failed (reason without data).
    Store(StoreError),
    /// The session token could not be signed.
    Signing,
}

impl AuthError {
    /// The code shown to the visitor.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::ProviderDenied(_)
            | Self::State(_)
            | Self::MissingCode
            | Self::CodeExchange(_)
            | Self::MissingIdToken
            | Self::Jwks(_)
            | Self::IdToken(_) => ErrorCode::OAuthCallbackError,
            Self::EmailNotVerified | Self::NotAllowed | Self::UserDisabled => {
                ErrorCode::AccessDenied
            }
            Self::SubjectNotLinked => ErrorCode::OAuthAccountNotLinked,
            Self::Store(e) if !e.is_schema() => ErrorCode::Unavailable,
            Self::Store(_) | Self::Signing => ErrorCode::Configuration,
        }
    }

    /// A short reason for the log line.
    pub fn reason(&self) -> String {
        format!("{self:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_have_the_designed_statuses() {
        for (code, status) in [
            (ErrorCode::Configuration, 500),
            (ErrorCode::AccessDenied, 403),
            (ErrorCode::OAuthSignin, 500),
            (ErrorCode::OAuthCallbackError, 400),
            (ErrorCode::OAuthAccountNotLinked, 403),
            (ErrorCode::SessionRequired, 401),
            (ErrorCode::Unavailable, 503),
            (ErrorCode::BadGateway, 502),
            (ErrorCode::GatewayTimeout, 504),
            (ErrorCode::Verification, 400),
        ] {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
            assert_eq!(code.status(), status, "{code:?}");
        }
        assert_eq!(ErrorCode::parse("<script>"), ErrorCode::Default);
    }

    #[test]
    fn a_d1_outage_is_not_a_configuration_error_but_missing_tables_are() {
        let outage = AuthError::Store(StoreError(
            "D1 sign-in: D1_ERROR: Network connection lost.".into(),
        ));
        assert_eq!(outage.code(), ErrorCode::Unavailable);
        let schema = AuthError::Store(StoreError(
            "D1 sign-in: D1_ERROR: no such table: sessions: SQLITE_ERROR".into(),
        ));
        assert_eq!(schema.code(), ErrorCode::Configuration);
    }
}
