//! Cross-Account Protection (RISC), the transmitter's side: the configuration document
//! (`/.well-known/risc-configuration`) and `POST /_control/risc`, which makes a Security Event
//! Token ([`crate::risc`]) and, given a `receiver`, pushes it there (RFC 8935).
//!
//! The push is the provider's one outgoing request. Handlers are synchronous and run on the
//! blocking pool ([`crate::http`]), so it simply blocks its own thread on a small runtime of its
//! own for at most [`PUSH_TIMEOUT`]; nothing else waits for it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde_json::json;
use url::{Position, Url};

use super::{JWKS_PATH, Provider, Response};
use crate::risc::{Event, SetInput, SetTwist, build_set};

pub const RISC_CONFIG_PATH: &str = "/.well-known/risc-configuration";
/// RFC 8935 push delivery, the one method offered.
pub const PUSH_DELIVERY_METHOD: &str =
    "https://schemas.openid.net/secevent/risc/delivery-method/push";
/// The media type of a pushed SET (RFC 8935, section 2).
pub const SET_CONTENT_TYPE: &str = "application/secevent+jwt";
/// How long a push may take, from connecting to the end of the receiver's answer.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of the receiver's answer `POST /_control/risc` reports.
pub const PUSH_BODY_LIMIT: usize = 4096;

/// Google's stream management endpoints: listed in the configuration document, not served.
const STREAM_ENDPOINTS: [(&str, &str); 7] = [
    ("add_subject_endpoint", "/v1beta/subjects:add"),
    ("remove_subject_endpoint", "/v1beta/subjects:remove"),
    ("set_stream_endpoint", "/v1beta/stream:update"),
    ("get_stream_endpoint", "/v1beta/stream"),
    ("get_status_endpoint", "/v1beta/stream/status"),
    ("set_status_endpoint", "/v1beta/stream/status:update"),
    ("verification_endpoint", "/v1beta/stream:verify"),
];

impl Provider {
    /// The RISC issuer: the ID-token issuer with a trailing `/` (Google's ID tokens say
    /// `https://accounts.google.com`, its SETs `https://accounts.google.com/`).
    pub fn risc_issuer(&self) -> String {
        format!("{}/", self.issuer)
    }

    /// `GET /.well-known/risc-configuration`.
    pub(super) fn risc_configuration(&self) -> Response {
        let base = &self.issuer;
        let mut doc = json!({
            "issuer": self.risc_issuer(),
            "jwks_uri": format!("{base}{JWKS_PATH}"),
            "delivery_methods_supported": [PUSH_DELIVERY_METHOD],
        });
        for (name, path) in STREAM_ENDPOINTS {
            doc[name] = format!("{base}{path}").into();
        }
        Response::json(200, &doc).header("Cache-Control", "public, max-age=3600")
    }

    /// `POST /_control/risc`: makes a SET from the parameters and, given `receiver`, pushes it.
    pub(super) fn control_risc(&self, param: &dyn Fn(&str) -> Option<String>) -> Response {
        let bad = |message: &str| {
            Response::json(
                400,
                &json!({ "error": "invalid_request", "error_description": message }),
            )
        };
        let event = match param("event") {
            None => return bad("event is required"),
            Some(name) => match Event::parse(&name) {
                Some(event) => event,
                None => {
                    let known = Event::ALL.map(Event::name).join(", ");
                    return bad(&format!("event must be one of {known}"));
                }
            },
        };
        let twist = match param("twist") {
            None => None,
            Some(name) => match SetTwist::parse(&name) {
                Some(twist) => Some(twist),
                None => {
                    let known = SetTwist::ALL.map(SetTwist::name).join(", ");
                    return bad(&format!("twist must be one of {known}"));
                }
            },
        };
        let receiver = match param("receiver").map(|r| Url::parse(&r)) {
            None => None,
            Some(Ok(url)) if url.scheme() == "http" && url.has_host() => Some(url),
            Some(_) => return bad("receiver must be an http:// URL"),
        };
        let (sub, reason, state) = (param("sub"), param("reason"), param("state"));
        let aud = param("aud").unwrap_or_else(|| self.client_id.clone());
        let jti = param("jti").unwrap_or_else(|| crate::store::random_hex(16));
        let issuer = self.risc_issuer();
        let input = SetInput {
            issuer: &issuer,
            aud: &aud,
            jti: &jti,
            event,
            sub: sub.as_deref(),
            reason: reason.as_deref(),
            state: state.as_deref(),
            twist,
            now: chrono::Utc::now().timestamp(),
        };
        if let Err(message) = input.check() {
            return bad(&message);
        }
        let Ok(set) = build_set(&self.key(), &input) else {
            return super::server_error();
        };
        // The `jti` the SET carries (none with `no_jti`).
        let jti = Some(jti).filter(|_| twist != Some(SetTwist::NoJti));
        let Some(receiver) = receiver else {
            return Response::json(200, &json!({ "jti": jti, "set": set }));
        };
        match push(&receiver, &set) {
            Ok((status, body)) => Response::json(
                200,
                &json!({ "jti": jti, "set": set, "status": status, "body": body }),
            ),
            Err(why) => Response::json(
                502,
                &json!({ "error": "receiver_unreachable", "error_description": why, "jti": jti }),
            ),
        }
    }
}

/// POSTs `set` to `receiver` (plain `http://`) as RFC 8935 says, within [`PUSH_TIMEOUT`]:
/// the receiver's status and the start of its body ([`PUSH_BODY_LIMIT`] bytes, as text), or why
/// there is no answer. Blocks the calling thread, which must not be a runtime's worker.
pub fn push(receiver: &Url, set: &str) -> Result<(u16, String), String> {
    let addrs = receiver
        .socket_addrs(|| None)
        .map_err(|e| format!("cannot resolve the receiver: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime for the push: {e}"))?;
    runtime.block_on(async {
        tokio::time::timeout(PUSH_TIMEOUT, exchange(&addrs, receiver, set))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", PUSH_TIMEOUT.as_secs())))
    })
}

async fn exchange(
    addrs: &[std::net::SocketAddr],
    receiver: &Url,
    set: &str,
) -> Result<(u16, String), String> {
    let stream = tokio::net::TcpStream::connect(addrs)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let request = hyper::Request::post(&receiver[Position::BeforePath..Position::AfterQuery])
        .header(HOST, &receiver[Position::BeforeHost..Position::AfterPort])
        .header(CONTENT_TYPE, SET_CONTENT_TYPE)
        .header(ACCEPT, "application/json")
        .body(Full::new(Bytes::from(set.to_owned())))
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut read = Vec::new();
    while read.len() < PUSH_BODY_LIMIT {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| format!("reading the answer: {e}"))?;
        if let Ok(data) = frame.into_data() {
            let room = PUSH_BODY_LIMIT - read.len();
            read.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok((status, String::from_utf8_lossy(&read).into_owned()))
}

#[cfg(test)]
mod tests;
