//! Sign-in with Google (`OpenID` Connect, authorization code + PKCE S256 + nonce).

pub mod id_token;
pub mod jwks;
pub mod risc;
pub mod rs256;
pub mod state;

use std::cell::RefCell;
use std::rc::Rc;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, ExtraTokenFields,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use self::id_token::{Expected, IdClaims};
use self::jwks::{JwksCache, Lookup, ProviderKeys};
use self::rs256::Rs256Verifier;
use self::state::SignInState;
use crate::config::Config;
use crate::error::AuthError;
use crate::http::{HttpClient, HttpError};
use crate::random::Random;
use crate::redirect::CallbackUrl;
use crate::site::Site;
use crate::time::UnixTime;

/// The callback path, part of the `redirect_uri` registered with Google.
pub const CALLBACK_PATH: &str = "/auth/callback/google";

/// The token response: OAuth's fields plus `OpenID` Connect's `id_token`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenFields {}

type TokenClient = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenFields, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

fn redirect_url(site: &Site) -> Result<RedirectUrl, AuthError> {
    RedirectUrl::new(site.url(CALLBACK_PATH)).map_err(|_| AuthError::Signing)
}

/// Starts a sign-in: the authorization URL to redirect to, and the state cookie's value.
pub fn start(
    config: &Config,
    site: &Site,
    callback: &CallbackUrl,
    random: &dyn Random,
    now: UnixTime,
) -> Result<(String, String), AuthError> {
    let client = oauth2::basic::BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(config.authorization_url.clone()))
        .set_redirect_uri(redirect_url(site)?);
    // 32 random bytes each: unguessable, and the verifier is 43 characters as RFC 7636 asks.
    let state = random.token(32);
    let nonce = random.token(32);
    let verifier = PkceCodeVerifier::new(random.token(32));
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    let (url, _) = client
        .authorize_url(|| CsrfToken::new(state.clone()))
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .add_extra_param("nonce", nonce.clone())
        .url();
    let signed = state::new_state(
        state,
        verifier.secret().clone(),
        nonce,
        callback,
        site.origin(),
    );
    let cookie = state::seal(&config.keys, &signed, now).ok_or(AuthError::Signing)?;
    Ok((url.into(), cookie))
}

/// The callback's query parameters.
#[derive(Clone, Debug, Default)]
pub struct CallbackQuery {
    /// `code`.
    pub code: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `error` (the provider refused or the person cancelled).
    pub error: Option<String>,
}

/// What the provider vouched for, after every check.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The ID token's claims.
    pub claims: IdClaims,
    /// The validated state (callback URL).
    pub state: SignInState,
}

/// Everything the callback needs from outside.
pub struct Provider<'a, H> {
    /// Configuration.
    pub config: &'a Config,
    /// The site.
    pub site: &'a Site,
    /// HTTP client.
    pub http: &'a H,
    /// Per-isolate JWKS cache.
    pub jwks: &'a RefCell<JwksCache>,
    /// RS256 signature checks (WebCrypto in the worker).
    pub rs256: &'a dyn Rs256Verifier,
    /// Now.
    pub now: UnixTime,
}

impl<H: HttpClient> Provider<'_, H> {
    /// Finishes a sign-in up to a validated ID token: state first (before the code is
    /// redeemed), then the provider's error, the code exchange, and the ID token.
    pub async fn finish(
        &self,
        query: &CallbackQuery,
        state_cookie: Option<&str>,
    ) -> Result<Verified, AuthError> {
        let state = state::open(
            &self.config.keys,
            state_cookie,
            query.state.as_deref(),
            self.site.origin(),
            self.now,
        )
        .map_err(AuthError::State)?;
        if let Some(error) = &query.error {
            // Only the OAuth error code is kept (it is an enumerated word); never free text.
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(40)
                .collect();
            return Err(AuthError::ProviderDenied(code));
        }
        let code = query
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(AuthError::MissingCode)?;
        let id_token = self.exchange(code, &state).await?;
        let kid = id_token::key_id(&id_token).map_err(AuthError::IdToken)?;
        let keys = self.provider_keys(&kid).await?;
        let expected = Expected {
            issuers: &self.config.issuers,
            client_id: &self.config.client_id,
            nonce: &state.nonce,
            now: self.now,
        };
        let check = id_token::signature_check(&id_token, &keys).map_err(AuthError::IdToken)?;
        if !self.rs256.verify(&check).await {
            return Err(AuthError::IdToken(id_token::IdTokenError::BadSignature));
        }
        let claims = id_token::validate_checked(&id_token, &keys, expected, &check.passed())
            .map_err(AuthError::IdToken)?;
        Ok(Verified { claims, state })
    }

    async fn exchange(&self, code: &str, state: &SignInState) -> Result<String, AuthError> {
        let client = TokenClient::new(ClientId::new(self.config.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.config.client_secret.expose().clone(),
            ))
            .set_token_uri(TokenUrl::from_url(self.config.token_url.clone()))
            .set_redirect_uri(redirect_url(self.site)?);
        let http = |request: oauth2::HttpRequest| self.http.send(request);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(state.pkce.clone()))
            .request_async(&http)
            .await
            .map_err(|e| {
                AuthError::CodeExchange(match e {
                    RequestTokenError::ServerResponse(r) => {
                        format!("token endpoint refused: {}", r.error())
                    }
                    RequestTokenError::Request(HttpError(reason)) => {
                        format!("token endpoint unreachable: {reason}")
                    }
                    RequestTokenError::Parse(..) => {
                        "token endpoint answered something that is not a token response".into()
                    }
                    RequestTokenError::Other(reason) => format!("token endpoint: {reason}"),
                })
            })?;
        response
            .extra_fields()
            .id_token
            .clone()
            .ok_or(AuthError::MissingIdToken)
    }

    async fn provider_keys(&self, kid: &str) -> Result<Rc<ProviderKeys>, AuthError> {
        keys_for(self.http, self.jwks, &self.config.jwks_url, kid, self.now)
            .await
            .map_err(AuthError::Jwks)
    }
}

/// The keys of the JWKS at `url` that can check a token signed with `kid`, through the
/// per-isolate `cache` (its policy: [`JwksCache::lookup`]). Used for ID tokens and for the
/// security events of Cross-Account Protection, each with its own cache.
pub async fn keys_for<H: HttpClient>(
    http: &H,
    cache: &RefCell<JwksCache>,
    url: &url::Url,
    kid: &str,
    now: UnixTime,
) -> Result<Rc<ProviderKeys>, String> {
    let lookup = cache.borrow().lookup(kid, now);
    let unknown_kid = match lookup {
        Lookup::Use(keys) => return Ok(keys),
        Lookup::Unavailable => {
            return Err("provider keys unavailable (retried at most once a minute)".into());
        }
        Lookup::Fetch { unknown_kid } => unknown_kid,
    };
    cache.borrow_mut().begin(now, unknown_kid);
    let fetched = fetch_document(http, url, "JWKS")
        .await
        .and_then(|(body, max_age)| {
            ProviderKeys::parse(&body)
                .map(|keys| (keys, max_age))
                .ok_or_else(|| String::from("JWKS is not a JWK Set"))
        });
    let mut cache = cache.borrow_mut();
    match fetched {
        Ok(keys) => {
            cache.fetched(now, unknown_kid, Some(keys));
            cache.stale(now).ok_or_else(|| "no keys".into())
        }
        Err(reason) => {
            cache.fetched(now, unknown_kid, None);
            // A provider that is down: keys at most 24 h past their max-age still serve.
            cache.stale(now).ok_or(reason)
        }
    }
}

/// GETs a JSON document of the provider: its body and `max-age` (seconds), or why not.
pub async fn fetch_document<H: HttpClient>(
    http: &H,
    url: &url::Url,
    what: &str,
) -> Result<(Vec<u8>, i64), String> {
    let request = http::Request::get(url.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|_| format!("bad {what} URL"))?;
    let response = http
        .send(request)
        .await
        .map_err(|e| format!("{what} unreachable: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{what} answered {}", response.status().as_u16()));
    }
    let max_age = jwks::max_age(
        response
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
    );
    Ok((response.into_body(), max_age))
}

/// An email as policy compares it: trimmed and lowercased, exactly one `@` with something on
/// both sides, printable ASCII without spaces. Anything else (two `@`, spaces, Unicode
/// look-alikes such as a Cyrillic `а`) is refused, never matched.
pub fn canonical_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_ascii_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.chars().all(|c| c.is_ascii_graphic());
    valid.then_some(email)
}

/// The access policy: may this verified email sign in? `ALLOWED_EMAILS` or
/// `ALLOWED_EMAIL_DOMAINS` (either matches; both empty = anyone); for Google Workspace
/// accounts the `hd` claim counts as the domain too.
pub fn allowed(config: &Config, email: &str, hosted_domain: Option<&str>) -> bool {
    let Some(email) = canonical_email(email) else {
        return false;
    };
    if config.allowed_emails.is_empty() && config.allowed_domains.is_empty() {
        return true;
    }
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    let hd = hosted_domain.map(str::to_ascii_lowercase);
    config.allowed_emails.contains(&email)
        || config
            .allowed_domains
            .iter()
            .any(|d| d == domain || Some(d) == hd.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    #[test]
    fn emails_and_domains_are_matched_exactly_and_case_insensitively() {
        let c = config(&[
            ("ALLOWED_EMAIL_DOMAINS", "Example.com"),
            ("ALLOWED_EMAILS", " Guest@Other.test "),
        ]);
        for ok in ["ada@example.com", " ADA@EXAMPLE.COM ", "guest@other.test"] {
            assert!(allowed(&c, ok, None), "{ok}");
        }
        for refused in [
            "eve@evil.test",
            "eve@sub.example.com",
            "eve@example.com.evil.test",
            "eve@example.com@evil.test",
            "ada@evil.test@example.com",
            "ada @example.com",
            "ada@exam ple.com",
            "ada@ex\u{0430}mple.com",
            "\u{0430}da@example.com",
            "@example.com",
            "ada@",
            "ada",
            "",
            "guest@other.test.evil",
        ] {
            assert!(!allowed(&c, refused, None), "{refused:?}");
        }
    }

    #[test]
    fn workspace_hd_claim_counts_as_the_domain() {
        let c = config(&[("ALLOWED_EMAIL_DOMAINS", "corp.example")]);
        assert!(allowed(&c, "ada@alias.example", Some("corp.example")));
        assert!(!allowed(&c, "ada@alias.example", Some("other.example")));
        assert!(!allowed(&c, "ada@@alias.example", Some("corp.example")));
    }

    #[test]
    fn no_lists_admit_anyone_with_a_valid_address() {
        let c = config(&[]);
        assert!(allowed(&c, "anyone@anywhere.test", None));
        assert!(!allowed(&c, "two@@ats.test", None));
    }
}
