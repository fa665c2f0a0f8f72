//! The test-only control endpoints (`/_control/…`): key rotation, JWKS mode, counters, twists,
//! and RISC events ([`super::risc`]).
//!
//! The control endpoints are served on the provider's one listener, so they are reachable exactly
//! where the provider is (its `--host`), and refuse requests that carry an `Origin` or a
//! cross-site `Sec-Fetch-Site` header, i.e. anything a web page could send. See the crate
//! documentation for what each does.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::{
    CONTROL_PREFIX, Control, JwksMode, Provider, Request, Response, method_not_allowed,
    server_error,
};
use crate::id_token::SigningKey;
use crate::params::Params;
use crate::twist::Twist;

impl Provider {
    /// `/_control/…`: test-only switches and counters.
    pub(super) fn control_endpoint(&self, req: &Request<'_>) -> Response {
        let cross_site = req
            .header("Sec-Fetch-Site")
            .is_some_and(|s| !s.eq_ignore_ascii_case("none"));
        if req.header("Origin").is_some() || cross_site {
            return Response::json(403, &json!({ "error": "forbidden" }))
                .header("Cache-Control", "no-store");
        }
        let param = |name: &str| -> Option<String> {
            let from = |raw: &[u8]| {
                Params::parse(raw)
                    .ok()
                    .and_then(|p| p.get(name).map(str::to_owned))
            };
            from(req.query.as_bytes()).or_else(|| from(req.body))
        };
        let post = req.method == "POST";
        let get = matches!(req.method, "GET" | "HEAD");
        let bad = |message: &str| {
            Response::json(
                400,
                &json!({ "error": "invalid_request", "error_description": message }),
            )
            .header("Cache-Control", "no-store")
        };
        let response = match &req.path[CONTROL_PREFIX.len()..] {
            "rotate" if post => {
                let previous = self.key().kid().to_owned();
                match self.rotate() {
                    Ok(()) => {
                        let mut state = self.control_state();
                        state["previous_kid"] = previous.into();
                        Response::json(200, &state)
                    }
                    Err(_) => server_error(),
                }
            }
            "jwks" if post => match param("mode").as_deref().and_then(JwksMode::parse) {
                Some(mode) => {
                    self.control().jwks_mode = mode;
                    Response::json(200, &self.control_state())
                }
                None => return bad("mode must be ok, 500, stall, garbage, endless or huge_slow"),
            },
            "jwks_max_age" if post => match param("secs").and_then(|s| s.parse::<u32>().ok()) {
                Some(secs) => {
                    self.control().jwks_max_age = secs;
                    Response::json(200, &self.control_state())
                }
                None => return bad("secs must be a whole number of seconds"),
            },
            "reset" if post => {
                *self.control() = Control::default();
                self.jwks_requests.store(0, Ordering::Relaxed);
                self.token_requests.store(0, Ordering::Relaxed);
                self.authorization_requests.store(0, Ordering::Relaxed);
                Response::json(200, &self.control_state())
            }
            "risc" if post => self.control_risc(&param),
            "stats" if get => Response::json(200, &self.stats()),
            "twists" if get => {
                let list: Vec<Value> = Twist::ALL
                    .iter()
                    .map(|t| {
                        json!({
                            "name": t.name(),
                            "kind": t.kind().name(),
                            "acceptable": t.is_acceptable(),
                        })
                    })
                    .collect();
                Response::json(200, &json!({ "twists": list }))
            }
            "rotate" | "jwks" | "jwks_max_age" | "reset" | "risc" => {
                return method_not_allowed("POST");
            }
            "stats" | "twists" => return method_not_allowed("GET, HEAD"),
            _ => Response::json(404, &json!({ "error": "not_found" })),
        };
        response.header("Cache-Control", "no-store")
    }

    /// Replaces the signing key with a fresh one (new `kid`); the old one leaves the JWKS.
    pub fn rotate(&self) -> Result<(), String> {
        let key = Arc::new(SigningKey::generate()?);
        *self.key.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }

    /// `{"jwks_requests": N, "token_requests": N, "authorization_requests": N}` since start or
    /// the last reset.
    pub fn stats(&self) -> Value {
        json!({
            "jwks_requests": self.jwks_requests.load(Ordering::Relaxed),
            "token_requests": self.token_requests.load(Ordering::Relaxed),
            "authorization_requests": self.authorization_requests.load(Ordering::Relaxed),
        })
    }

    fn control_state(&self) -> Value {
        let control = *self.control();
        json!({
            "kid": self.key().kid(),
            "jwks_mode": control.jwks_mode.name(),
            "jwks_max_age": control.jwks_max_age,
        })
    }
}
