//! The userinfo endpoint (`/v1/userinfo`, `/oauth2/v3/userinfo`).

use std::time::Instant;

use serde_json::json;

use super::{Provider, Request, Response};
use crate::id_token;

impl Provider {
    /// GET `/v1/userinfo` with `Authorization: Bearer <access token>`.
    pub(super) fn userinfo(&self, req: &Request<'_>) -> Response {
        let token = req.header("Authorization").and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        let Some(token) = token else {
            return Response::json(401, &json!({ "error": "invalid_request" }))
                .header("WWW-Authenticate", "Bearer")
                .header("Cache-Control", "no-store");
        };
        let store = self.store();
        match store.access_token(token, Instant::now()) {
            Some((identity, scopes)) => Response::json(200, &id_token::userinfo(identity, scopes))
                .header("Cache-Control", "no-store"),
            None => Response::json(401, &json!({ "error": "invalid_token" }))
                .header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
                .header("Cache-Control", "no-store"),
        }
    }
}
