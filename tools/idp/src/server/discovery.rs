//! The discovery document and the JWKS (`/oauth2/v3/certs`), which obeys the control mode.

use std::sync::atomic::Ordering;

use serde_json::json;

use super::{
    AUTH_PATH, ENDLESS_CHUNK, ENDLESS_INTERVAL, HUGE_BODY, JWKS_PATH, JwksMode, Provider, Response,
    STALL, TOKEN_PATH, TRICKLE_INTERVAL, USERINFO_PATH,
};
use crate::http::Delivery;

impl Provider {
    pub(super) fn discovery(&self) -> Response {
        let iss = &self.issuer;
        let doc = json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}{AUTH_PATH}"),
            "token_endpoint": format!("{iss}{TOKEN_PATH}"),
            "userinfo_endpoint": format!("{iss}{USERINFO_PATH}"),
            "jwks_uri": format!("{iss}{JWKS_PATH}"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": [
                "aud", "email", "email_verified", "exp", "family_name", "given_name",
                "hd", "iat", "iss", "name", "nonce", "picture", "sub"
            ],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code"],
        });
        Response::json(200, &doc).header("Cache-Control", "public, max-age=3600")
    }

    pub(super) fn jwks(&self) -> Response {
        self.jwks_requests.fetch_add(1, Ordering::Relaxed);
        let control = *self.control();
        let cache = format!("public, max-age={}", control.jwks_max_age);
        let honest = || {
            Response::json(200, &json!({ "keys": [self.key().public_jwk()] }))
                .header("Cache-Control", cache.clone())
        };
        match control.jwks_mode {
            JwksMode::Ok => honest(),
            JwksMode::Stall => honest().deliver(Delivery::After(STALL)),
            JwksMode::Error500 => Response::raw_html(
                500,
                "<html><body><h1>500 Internal Server Error</h1></body></html>",
            ),
            JwksMode::Garbage => {
                Response::json(200, &json!({ "nope": 1 })).header("Cache-Control", cache)
            }
            JwksMode::Endless => Response {
                body: br#"{"keys":[],"padding":""#.to_vec(),
                ..Response::json(200, &json!({}))
            }
            .header("Cache-Control", cache)
            .deliver(Delivery::Endless {
                chunk: ENDLESS_CHUNK,
                interval: ENDLESS_INTERVAL,
            }),
            JwksMode::HugeSlow => {
                let mut set = json!({ "keys": [self.key().public_jwk()], "padding": "" });
                let filler = HUGE_BODY.saturating_sub(set.to_string().len());
                set["padding"] = "x".repeat(filler).into();
                Response::json(200, &set)
                    .header("Cache-Control", cache)
                    .deliver(Delivery::Trickle(TRICKLE_INTERVAL))
            }
        }
    }
}
