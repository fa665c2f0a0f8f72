//! The authorization request: checks, the redirect back, and the identity to sign in.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::id_token::{Identity, Scopes};
use crate::params::Params;
use crate::pkce;
use crate::store::AuthRequest;

/// A refused authorization request.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Shown to the person as a 400 page; never redirected, because the client or the
    /// `redirect_uri` is not trusted.
    Page {
        error: &'static str,
        message: String,
    },
    /// Sent back to the (checked) `redirect_uri` as `?error=…&state=…`.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
    },
}

/// A local development provider only ever sends codes to this machine: an absolute `http` or
/// `https` URL whose host is `localhost`, `127.0.0.1` or `[::1]`, without fragment or userinfo.
pub fn is_allowed_redirect_uri(uri: &str) -> bool {
    // The URL parser forgives things like `http:localhost/` or embedded tabs; refuse them so the
    // string that is compared at the token endpoint is the one that is redirected to.
    let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://"))
        || uri.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    let loopback = match url.host() {
        Some(Host::Domain(d)) => d == "localhost",
        Some(Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        None => false,
    };
    loopback
        && matches!(url.scheme(), "http" | "https")
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
}

/// Checks an authorization request (from the query, or the chooser's form) in the order that
/// decides where errors go: client and `redirect_uri` first (page), the rest back to the client.
pub fn validate(params: &Params, client_id: &str) -> Result<AuthRequest, AuthError> {
    let page = |error, message: &str| AuthError::Page {
        error,
        message: message.to_owned(),
    };
    match params.get("client_id") {
        Some(id) if id == client_id => {}
        Some(_) => return Err(page("invalid_client", "The OAuth client was not found.")),
        None => {
            return Err(page(
                "invalid_request",
                "Missing required parameter: client_id",
            ));
        }
    }
    let redirect_uri = params.non_empty("redirect_uri").ok_or_else(|| {
        page(
            "invalid_request",
            "Missing required parameter: redirect_uri",
        )
    })?;
    if !is_allowed_redirect_uri(redirect_uri) {
        return Err(page(
            "redirect_uri_mismatch",
            "This development provider only redirects to http(s) URLs on localhost, 127.0.0.1 or [::1].",
        ));
    }
    let state = params.get("state").map(str::to_owned);
    let back = |error| AuthError::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error,
    };

    match params.get("response_type") {
        Some("code") => {}
        Some(_) => return Err(back("unsupported_response_type")),
        None => return Err(back("invalid_request")),
    }
    let scope = params.get("scope").unwrap_or_default();
    let scopes = Scopes::parse(scope).ok_or_else(|| back("invalid_scope"))?;
    // Gatehouse always sends PKCE with S256, so this provider accepts nothing else: a missing
    // challenge, `plain`, or a missing method (which RFC 7636 reads as `plain`) is refused.
    let code_challenge = params
        .get("code_challenge")
        .filter(|c| pkce::is_well_formed(c))
        .ok_or_else(|| back("invalid_request"))?;
    if params.get("code_challenge_method") != Some("S256") {
        return Err(back("invalid_request"));
    }
    Ok(AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state,
        nonce: params.non_empty("nonce").map(str::to_owned),
        code_challenge: code_challenge.to_owned(),
        scope: scope.to_owned(),
        scopes,
    })
}

/// `redirect_uri` with `pairs` appended to its query (existing query parameters are kept).
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut url = Url::parse(redirect_uri).ok()?;
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    Some(url.into())
}

/// The redirect for a refused request: `error` and the `state` exactly as received.
pub fn error_redirect(redirect_uri: &str, error: &str, state: Option<&str>) -> Option<String> {
    let mut pairs = vec![("error", error)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    redirect_with(redirect_uri, &pairs)
}

fn is_plausible_email(email: &str) -> bool {
    email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
}

/// The identity named by `{prefix}email`, `{prefix}name`, … (`test_` in the query for
/// automatic approval, no prefix in the chooser's form). `Ok(None)` when no email is given.
///
/// `name` and `picture` default to Google-like values; given but empty they are left out.
/// `email_verified` is `true` unless `false`/`0`; `sub` defaults to one derived from the email.
pub fn identity_from(params: &Params, prefix: &str) -> Result<Option<Identity>, String> {
    let field = |name: &str| params.get(&format!("{prefix}{name}"));
    let Some(email) = field("email").map(str::trim).filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    if !is_plausible_email(email) {
        return Err(format!("`{email}` is not an email address."));
    }
    let mut identity = Identity::for_email(email);
    if let Some(sub) = field("sub").filter(|s| !s.is_empty()) {
        if sub.len() > 255 || sub.chars().any(char::is_control) {
            return Err("sub must be at most 255 characters, without control characters.".into());
        }
        identity.sub = sub.to_owned();
        identity.picture = Some(crate::id_token::default_picture(sub));
    }
    if let Some(name) = field("name") {
        identity.name = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
    }
    if let Some(picture) = field("picture") {
        identity.picture = Some(picture.to_owned()).filter(|p| !p.is_empty());
    }
    identity.email_verified = match field("email_verified") {
        None | Some("true" | "1") => true,
        Some("false" | "0") => false,
        Some(other) => {
            return Err(format!(
                "email_verified must be true or false, not `{other}`."
            ));
        }
    };
    identity.hd = field("hd").filter(|h| !h.is_empty()).map(str::to_owned);
    Ok(Some(identity))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn redirect_uri_allow_rule() {
        for ok in [
            "http://localhost:8787/auth/callback/google",
            "http://127.0.0.1:8787/cb?x=1",
            "https://localhost/cb",
            "http://[::1]:8787/cb",
            "HTTP://LOCALHOST/cb",
        ] {
            assert!(is_allowed_redirect_uri(ok), "{ok}");
        }
        for bad in [
            "",
            "/auth/callback/google",
            "//localhost/cb",
            "http:localhost/cb",
            "https://example.com/cb",
            "https://localhost.example.com/cb",
            "http://localhost@evil.example/cb",
            "http://user@localhost/cb",
            "http://127.0.0.2/cb",
            "http://0.0.0.0/cb",
            "http://[::2]/cb",
            "http://localhost/cb#frag",
            "http://local\thost/cb",
            " http://localhost/cb",
            "ftp://localhost/cb",
            "javascript://localhost/%0aalert(1)",
            "file://localhost/etc/passwd",
        ] {
            assert!(!is_allowed_redirect_uri(bad), "{bad}");
        }
    }

    fn request(extra: &str) -> Params {
        Params::parse(
            format!(
                "client_id=cid&redirect_uri=http%3A%2F%2Flocalhost%3A8787%2Fcb&response_type=code\
                 &scope=openid+email&code_challenge={CHALLENGE}&code_challenge_method=S256&state=a%2Bb{extra}"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn without(p: &str, name: &str) -> Params {
        let kept: Vec<(String, String)> = url::form_urlencoded::parse(p.as_bytes())
            .filter(|(k, _)| k != name)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish();
        Params::parse(encoded.as_bytes()).unwrap()
    }

    #[test]
    fn validates_in_order() {
        let req = validate(&request("&nonce=n1"), "cid").unwrap();
        assert_eq!(req.state.as_deref(), Some("a+b"));
        assert_eq!(req.nonce.as_deref(), Some("n1"));
        assert!(req.scopes.email && !req.scopes.profile);

        let page = |p: &Params| matches!(validate(p, "cid"), Err(AuthError::Page { .. }));
        let back = |p: &Params| match validate(p, "cid") {
            Err(AuthError::Redirect { error, state, .. }) => {
                assert_eq!(state.as_deref(), Some("a+b"));
                error
            }
            other => panic!("expected redirect, got {other:?}"),
        };
        assert!(matches!(
            validate(&request(""), "other"),
            Err(AuthError::Page {
                error: "invalid_client",
                ..
            })
        ));
        let base = "client_id=cid&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&response_type=code&scope=openid\
                    &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=a%2Bb";
        assert!(page(&without(base, "client_id")));
        assert!(page(&without(base, "redirect_uri")));
        assert!(page(
            &Params::parse(base.replace("localhost", "evil.example").as_bytes()).unwrap()
        ));
        assert_eq!(back(&without(base, "response_type")), "invalid_request");
        assert_eq!(
            back(&Params::parse(base.replace("=code&", "=token&").as_bytes()).unwrap()),
            "unsupported_response_type"
        );
        assert_eq!(
            back(&Params::parse(base.replace("scope=openid", "scope=email").as_bytes()).unwrap()),
            "invalid_scope"
        );
        assert_eq!(back(&without(base, "scope")), "invalid_scope");
        assert_eq!(back(&without(base, "code_challenge")), "invalid_request");
        assert_eq!(
            back(&without(base, "code_challenge_method")),
            "invalid_request"
        );
        assert_eq!(
            back(&Params::parse(base.replace("=S256", "=plain").as_bytes()).unwrap()),
            "invalid_request"
        );
        assert_eq!(
            back(&Params::parse(base.replace("E9Mel", "E9").as_bytes()).unwrap()),
            "invalid_request"
        );
    }

    #[test]
    fn redirects_keep_query_and_encode() {
        assert_eq!(
            redirect_with(
                "http://localhost:8787/cb?x=1",
                &[("code", "4/0A b&c"), ("state", "s=t")]
            )
            .unwrap(),
            "http://localhost:8787/cb?x=1&code=4%2F0A+b%26c&state=s%3Dt"
        );
        assert_eq!(
            error_redirect("http://127.0.0.1/cb", "access_denied", None).unwrap(),
            "http://127.0.0.1/cb?error=access_denied"
        );
    }

    #[test]
    fn identity_parameters() {
        let p = |s: &str| Params::parse(s.as_bytes()).unwrap();
        assert_eq!(identity_from(&p("test_name=x"), "test_"), Ok(None));
        let id = identity_from(&p("test_email=Ada%40Example.com"), "test_")
            .unwrap()
            .unwrap();
        assert_eq!(id.email, "Ada@Example.com");
        assert_eq!(id.sub, crate::id_token::default_sub("ada@example.com"));
        assert!(id.email_verified && id.name.is_some() && id.picture.is_some() && id.hd.is_none());

        let id = identity_from(
            &p("email=g%40corp.test&name=Grace+Hopper&picture=&sub=42&email_verified=false&hd=corp.test"),
            "",
        )
        .unwrap()
        .unwrap();
        assert_eq!(id.sub, "42");
        assert_eq!(id.name.as_deref(), Some("Grace Hopper"));
        assert_eq!(id.picture, None);
        assert!(!id.email_verified);
        assert_eq!(id.hd.as_deref(), Some("corp.test"));

        assert!(identity_from(&p("email=not-an-email"), "").is_err());
        assert!(identity_from(&p("email=a%40b&email_verified=maybe"), "").is_err());
    }
}
