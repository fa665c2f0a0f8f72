//! `POST /token`: client authentication, code redemption, and the token endpoint twists.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;

use super::{
    ENDLESS_CHUNK, ENDLESS_INTERVAL, HUGE_BODY, Provider, Request, Response, STALL,
    TRICKLE_INTERVAL, server_error,
};
use crate::client_auth::{self, ClientAuthError};
use crate::http::Delivery;
use crate::id_token::{self, TokenInput};
use crate::params::Params;
use crate::store::{self, Grant, RedeemError, Redemption};
use crate::twist::{Kind, Twist};

impl Provider {
    /// POST `/token`: the authorization code grant.
    pub(super) fn token(&self, req: &Request<'_>) -> Response {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        let is_form = req.header("Content-Type").is_some_and(|ct| {
            ct.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
        if !is_form {
            return Response::oauth_error(
                400,
                "invalid_request",
                "Expected application/x-www-form-urlencoded.",
            );
        }
        let form = match Params::parse(req.body) {
            Ok(f) => f,
            Err(_) => return Response::oauth_error(400, "invalid_request", "Repeated parameter."),
        };
        match client_auth::authenticate(
            req.header("Authorization"),
            &form,
            &self.client_id,
            &self.client_secret,
        ) {
            Ok(()) => {}
            Err(ClientAuthError::InvalidClient) => {
                return Response::oauth_error(401, "invalid_client", "Unauthorized")
                    .header("WWW-Authenticate", "Basic realm=\"gatehouse-idp\"");
            }
            Err(ClientAuthError::TwoMethods) => {
                return Response::oauth_error(
                    400,
                    "invalid_request",
                    "More than one client authentication method.",
                );
            }
        }
        match form.get("grant_type") {
            Some("authorization_code") => {}
            Some(_) => {
                return Response::oauth_error(400, "unsupported_grant_type", "Invalid grant_type.");
            }
            None => return Response::oauth_error(400, "invalid_request", "Missing grant_type."),
        }
        let Some(code) = form.non_empty("code") else {
            return Response::oauth_error(
                400,
                "invalid_request",
                "Missing required parameter: code",
            );
        };
        let access_token = format!("ya29.{}", store::random_urlsafe(48));
        let presented = Redemption {
            client_id: &self.client_id,
            redirect_uri: form.get("redirect_uri"),
            code_verifier: form.get("code_verifier"),
        };
        let redeemed = self
            .store()
            .redeem(code, &presented, &access_token, Instant::now());
        let grant = match redeemed {
            Ok(grant) => grant,
            Err(err) => {
                let description = match err {
                    RedeemError::Unknown => "Malformed auth code.",
                    RedeemError::Reused => "Bad Request",
                    RedeemError::Expired => "Auth code expired.",
                    RedeemError::WrongClient => "Unauthorized",
                    RedeemError::RedirectUriMismatch => {
                        "redirect_uri does not match the authorization request."
                    }
                    RedeemError::PkceFailed => "Missing or invalid code verifier.",
                };
                return Response::oauth_error(400, "invalid_grant", description);
            }
        };
        let twist = grant.issuance.twist_of(Kind::TokenEndpoint);
        match twist {
            Some(Twist::Token500) => {
                return Response::raw_html(
                    500,
                    "<html><body><h1>500 Internal Server Error</h1></body></html>",
                );
            }
            Some(Twist::Token503Json) => {
                return Response::json(503, &json!({ "error": "temporarily_unavailable" }));
            }
            Some(Twist::TokenNotJson) => return Response::raw_html(200, "<html>oops</html>"),
            Some(Twist::TokenErrorJson) => {
                return Response::oauth_error(400, "invalid_grant", "Bad Request");
            }
            Some(Twist::TokenClose) => return server_error().deliver(Delivery::Close),
            _ => {}
        }
        let mut body = json!({
            "access_token": access_token,
            "expires_in": store::ACCESS_TOKEN_LIFETIME.as_secs(),
            "token_type": "Bearer",
            "scope": grant.request.scopes.granted(),
        });
        match twist {
            Some(Twist::TokenNoIdToken) => {}
            Some(Twist::TokenIdTokenNotString) => body["id_token"] = json!(42),
            _ => match self.id_token(&grant, &access_token) {
                Ok(token) => body["id_token"] = token.into(),
                Err(_) => {
                    return Response::oauth_error(
                        500,
                        "server_error",
                        "Could not sign the ID token.",
                    );
                }
            },
        }
        if twist == Some(Twist::TokenEndless) {
            // The start of a JSON object whose string never ends.
            return Response {
                body: br#"{"padding":""#.to_vec(),
                ..Response::json(200, &json!({}))
            }
            .header("Cache-Control", "no-store")
            .deliver(Delivery::Endless {
                chunk: ENDLESS_CHUNK,
                interval: ENDLESS_INTERVAL,
            });
        }
        if matches!(twist, Some(Twist::TokenHuge | Twist::TokenHugeSlowBody)) {
            body["padding"] = "".into();
            let filler = HUGE_BODY.saturating_sub(body.to_string().len());
            body["padding"] = "x".repeat(filler).into();
        }
        let response = Response::json(200, &body)
            .header("Cache-Control", "no-store")
            .header("Pragma", "no-cache");
        match twist {
            Some(Twist::TokenStall) => response.deliver(Delivery::After(STALL)),
            Some(Twist::TokenSlowBody | Twist::TokenHugeSlowBody) => {
                response.deliver(Delivery::Trickle(TRICKLE_INTERVAL))
            }
            _ => response,
        }
    }

    /// The ID token for a redeemed grant, with its twists.
    fn id_token(&self, grant: &Grant, access_token: &str) -> Result<String, String> {
        let input = TokenInput {
            issuer: &self.issuer,
            client_id: &self.client_id,
            identity: &grant.identity,
            scopes: grant.request.scopes,
            nonce: grant.request.nonce.as_deref(),
            access_token,
            issuance: &grant.issuance,
            now: chrono::Utc::now(),
        };
        let foreign = if grant.issuance.has(Twist::ForeignKey) {
            Some(self.foreign_key()?)
        } else {
            None
        };
        id_token::build_id_token(&self.key(), foreign.as_deref(), &input)
    }
}
