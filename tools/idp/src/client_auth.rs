//! Client authentication at the token endpoint: `client_secret_basic` and `client_secret_post`
//! (RFC 6749, section 2.3.1).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use crate::params::Params;
use crate::pkce::constant_time_eq;

/// Client id and secret as sent by the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

/// Why client authentication failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ClientAuthError {
    /// Unknown client, wrong secret, no credentials, or an unreadable `Authorization` header:
    /// 401 `invalid_client`.
    InvalidClient,
    /// Credentials in both the header and the body (RFC 6749 forbids more than one method):
    /// 400 `invalid_request`.
    TwoMethods,
}

/// Parses `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`.
///
/// Id and secret are each form-urlencoded before joining (RFC 6749, section 2.3.1), so they are
/// decoded after splitting at the first `:`; `+` means a space.
pub fn parse_basic(header: &str) -> Option<Credentials> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let token = rest.trim();
    let raw = STANDARD
        .decode(token)
        .or_else(|_| STANDARD_NO_PAD.decode(token))
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    Some(Credentials {
        client_id: form_decode(id)?,
        client_secret: form_decode(secret)?,
    })
}

fn form_decode(s: &str) -> Option<String> {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Authenticates the client of a token request against the one configured client.
pub fn authenticate(
    authorization: Option<&str>,
    form: &Params,
    client_id: &str,
    client_secret: &str,
) -> Result<(), ClientAuthError> {
    let presented = match authorization {
        Some(header) => {
            if form.has("client_secret") {
                return Err(ClientAuthError::TwoMethods);
            }
            let creds = parse_basic(header).ok_or(ClientAuthError::InvalidClient)?;
            // A `client_id` in the body is allowed alongside Basic, but must agree.
            if form
                .get("client_id")
                .is_some_and(|id| id != creds.client_id)
            {
                return Err(ClientAuthError::InvalidClient);
            }
            creds
        }
        None => Credentials {
            client_id: form.get("client_id").unwrap_or_default().to_owned(),
            client_secret: form.get("client_secret").unwrap_or_default().to_owned(),
        },
    };
    let id_ok = constant_time_eq(presented.client_id.as_bytes(), client_id.as_bytes());
    let secret_ok = constant_time_eq(presented.client_secret.as_bytes(), client_secret.as_bytes());
    if id_ok && secret_ok && !client_secret.is_empty() {
        Ok(())
    } else {
        Err(ClientAuthError::InvalidClient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn parses_urlencoded_basic_credentials() {
        let creds = parse_basic(&basic("my%20client:s%3Ac+r%2Bet")).unwrap();
        assert_eq!(creds.client_id, "my client");
        assert_eq!(creds.client_secret, "s:c r+et");
        // Scheme is case-insensitive; padding may be missing.
        let creds = parse_basic("bAsIc   YTpi").unwrap();
        assert_eq!(
            (creds.client_id.as_str(), creds.client_secret.as_str()),
            ("a", "b")
        );
        // A secret may itself contain an (unencoded) colon: split at the first one.
        let creds = parse_basic(&basic("id:x:y")).unwrap();
        assert_eq!(creds.client_secret, "x:y");
    }

    #[test]
    fn rejects_malformed_basic() {
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic"), None);
        assert_eq!(parse_basic("Basic !!!not-base64!!!"), None);
        assert_eq!(parse_basic(&basic("no-colon")), None);
        assert_eq!(
            parse_basic(&format!("Basic {}", STANDARD.encode([0xff, b':', 0xfe]))),
            None
        );
        assert_eq!(parse_basic(&basic("a:%ff")), None);
    }

    #[test]
    fn authenticates_basic_and_post() {
        let empty = Params::default();
        let ok = |auth: Option<&str>, form: &Params| authenticate(auth, form, "cid", "sec");
        assert_eq!(ok(Some(&basic("cid:sec")), &empty), Ok(()));
        assert_eq!(
            ok(Some(&basic("cid:bad")), &empty),
            Err(ClientAuthError::InvalidClient)
        );
        assert_eq!(
            ok(Some(&basic("other:sec")), &empty),
            Err(ClientAuthError::InvalidClient)
        );
        assert_eq!(
            ok(Some("Basic %%%"), &empty),
            Err(ClientAuthError::InvalidClient)
        );

        let post = Params::parse(b"client_id=cid&client_secret=sec").unwrap();
        assert_eq!(ok(None, &post), Ok(()));
        let wrong = Params::parse(b"client_id=cid&client_secret=se").unwrap();
        assert_eq!(ok(None, &wrong), Err(ClientAuthError::InvalidClient));
        let id_only = Params::parse(b"client_id=cid").unwrap();
        assert_eq!(ok(None, &id_only), Err(ClientAuthError::InvalidClient));
        assert_eq!(ok(None, &empty), Err(ClientAuthError::InvalidClient));

        // Basic plus a matching body client_id is fine; plus a body secret is two methods.
        assert_eq!(ok(Some(&basic("cid:sec")), &id_only), Ok(()));
        assert_eq!(
            ok(Some(&basic("cid:sec")), &post),
            Err(ClientAuthError::TwoMethods)
        );
        let other_id = Params::parse(b"client_id=x").unwrap();
        assert_eq!(
            ok(Some(&basic("cid:sec")), &other_id),
            Err(ClientAuthError::InvalidClient)
        );
    }
}
