//! `POST /auth/risc`: the receiver of Google's Cross-Account Protection security events (RFC
//! 8935 push delivery). A verified event ends, or disables, the sessions of the user whose
//! Google account it names; they take effect at each session's next check, within
//! `SESSION_CHECK_INTERVAL`, like every revocation.

use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::{App, Request, Response};
use crate::http::HttpClient;
use crate::oidc::keys_for;
use crate::oidc::risc::{
    self, CONTENT_TYPE, Event, Expected, JTI_RETENTION_SECS, SecurityEvent, SetError,
};
use crate::store::{Delivery, RiscChange, UserStore};

/// Largest SET read (Google's are about 1 KiB).
const MAX_SET_BYTES: usize = 16 * 1024;

/// Why a pushed SET was not acted on.
enum Refused {
    /// The SET (or the request carrying it) is not acceptable: 400, never retried.
    Invalid(String),
    /// The issuer's keys or D1 are unavailable: 503, so the transmitter tries again.
    Unavailable(String),
}

impl<H: HttpClient, S: UserStore> App<'_, H, S> {
    /// Receives one SET: 202 once it is acted on (or recognised as needing nothing), a generic
    /// 400 when it is refused (the reason goes to the log, not to the sender), 503 when the
    /// issuer's keys or D1 are unavailable. 404 while `RISC_ENABLED` is not `true`.
    pub(super) async fn risc(&self, req: &Request) -> Response {
        let Some(configuration_url) = &self.config.risc else {
            return super::WireError::NotFound.response();
        };
        let refused = match self.receive(req, configuration_url).await {
            Ok(()) => {
                let mut r = Response::new(Vec::new());
                *r.status_mut() = StatusCode::ACCEPTED;
                return r;
            }
            Err(refused) => refused,
        };
        let (status, body) = match refused {
            Refused::Invalid(reason) => {
                self.risc_line("warn", "risc_refused", json!({ "reason": reason }));
                // RFC 8935, 2.3: an error code and a description; one generic answer for every
                // refusal, so the sender learns nothing about which check failed.
                (
                    StatusCode::BAD_REQUEST,
                    json!({ "err": "invalid_request", "description": "The security event token was not accepted." }),
                )
            }
            Refused::Unavailable(reason) => {
                self.risc_line("error", "risc_unavailable", json!({ "reason": reason }));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "error": "Unavailable" }),
                )
            }
        };
        let mut r = super::json_response(status, &body);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        r
    }

    async fn receive(&self, req: &Request, configuration_url: &url::Url) -> Result<(), Refused> {
        let media_type = req
            .header(header::CONTENT_TYPE)
            .and_then(|v| v.split(';').next())
            .map(str::trim);
        if !media_type.is_some_and(|m| m.eq_ignore_ascii_case(CONTENT_TYPE)) {
            return Err(Refused::Invalid(format!(
                "Content-Type is not {CONTENT_TYPE}"
            )));
        }
        if req.body.len() > MAX_SET_BYTES {
            return Err(Refused::Invalid("body over 16 KiB".into()));
        }
        let token = std::str::from_utf8(&req.body)
            .map(str::trim)
            .map_err(|_| Refused::Invalid("body is not text".into()))?;
        let kid = risc::key_id(token).map_err(|e| Refused::Invalid(e.reason()))?;
        let configuration = self
            .risc
            .configuration(self.http, configuration_url, self.now)
            .await
            .map_err(Refused::Unavailable)?;
        let keys = keys_for(
            self.http,
            &self.risc.keys,
            &configuration.jwks_uri,
            &kid,
            self.now,
        )
        .await
        .map_err(Refused::Unavailable)?;
        let expected = Expected {
            issuer: &configuration.issuer,
            client_id: &self.config.client_id,
            now: self.now,
        };
        let check =
            risc::signature_check(token, &keys).map_err(|e| Refused::Invalid(e.reason()))?;
        if !self.rs256.verify(&check).await {
            return Err(Refused::Invalid(SetError::BadSignature.reason()));
        }
        let set = risc::validate_checked(token, &keys, expected, &check.passed())
            .map_err(|e: SetError| Refused::Invalid(e.reason()))?;
        self.act(&set).await
    }

    /// Records the SET's `jti` and applies its events, in one transaction; logs each event.
    async fn act(&self, set: &SecurityEvent) -> Result<(), Refused> {
        let details: Vec<Option<String>> = set
            .events
            .iter()
            .map(|e| match e {
                Event::AccountDisabled {
                    reason: Some(reason),
                    ..
                } => Some(format!("reason={reason}")),
                _ => None,
            })
            .collect();
        let changes: Vec<RiscChange<'_>> = set
            .events
            .iter()
            .zip(&details)
            .filter_map(|(event, detail)| {
                event.effect().map(|(subject, effect, action)| RiscChange {
                    subject,
                    effect,
                    action,
                    detail: detail.as_deref(),
                })
            })
            .collect();
        let delivery = self
            .store
            .security_event(
                &set.jti,
                &changes,
                self.now,
                self.now.plus(-JTI_RETENTION_SECS),
            )
            .await
            .map_err(|e| Refused::Unavailable(e.0))?;
        let matched = match delivery {
            Delivery::Replayed => return Err(Refused::Invalid("jti already received".into())),
            Delivery::Applied { matched } => matched,
        };
        for event in &set.events {
            match event {
                Event::Verification { state } => {
                    self.risc_line("info", "risc_verification", json!({ "state": state }));
                }
                Event::Ignored { kind } => {
                    self.risc_line("info", "risc_ignored", json!({ "type": kind }));
                }
                _ => {}
            }
        }
        if !changes.is_empty() {
            // Never the Google account id or an email: which events, and whether a user of
            // this site was concerned.
            let types: Vec<&str> = set
                .events
                .iter()
                .filter(|e| e.effect().is_some())
                .map(Event::name)
                .collect();
            self.risc_line(
                "info",
                "risc_event",
                json!({ "types": types, "matched": matched }),
            );
        }
        Ok(())
    }

    fn risc_line(&self, level: &str, event: &str, fields: serde_json::Value) {
        let mut line = json!({ "level": level, "event": event });
        if let (Some(line), serde_json::Value::Object(fields)) = (line.as_object_mut(), fields) {
            line.extend(fields);
        }
        self.log.line(&line.to_string());
    }
}
