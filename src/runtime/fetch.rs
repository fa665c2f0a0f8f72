//! `HttpClient` over `worker::Fetch`, bounded by a timeout (an abort signal).

use std::time::Duration;

use futures_util::future::{Either, select};
use worker::{AbortController, Delay, Fetch, Headers, Method, RequestInit};

use crate::http::{HttpClient, HttpError, HttpRequest, HttpResponse};

/// Responses larger than this are refused (a JWKS or token response is a few KB).
const MAX_BODY: usize = 1 << 20;

/// Fetches with a timeout.
pub struct FetchClient {
    /// How long a request may take, start to last byte.
    pub timeout: Duration,
}

impl HttpClient for FetchClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let host = parts.uri.host().unwrap_or_default().to_owned();
        let headers = Headers::new();
        for (name, value) in &parts.headers {
            let value = value
                .to_str()
                .map_err(|_| HttpError("request header is not text".into()))?;
            headers
                .set(name.as_str(), value)
                .map_err(|_| HttpError("request header refused".into()))?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(parts.method.as_str().to_owned()))
            .with_headers(headers);
        if !body.is_empty() {
            init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
        }
        let req = worker::Request::new_with_init(&parts.uri.to_string(), &init)
            .map_err(|_| HttpError(format!("bad request URL for {host}")))?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let mut resp = Fetch::Request(req)
                .send_with_signal(&signal)
                .await
                .map_err(|_| HttpError(format!("connection to {host} failed")))?;
            let status = resp.status_code();
            let headers: Vec<(String, String)> = resp.headers().entries().collect();
            let bytes = resp
                .bytes()
                .await
                .map_err(|_| HttpError(format!("reading the response of {host} failed")))?;
            Ok::<_, HttpError>((status, headers, bytes))
        };
        let timeout = Delay::from(self.timeout);
        futures_util::pin_mut!(exchange);
        let (status, headers, bytes) = match select(exchange, timeout).await {
            Either::Left((result, _)) => result?,
            Either::Right(_) => {
                controller.abort();
                return Err(HttpError(format!(
                    "{host} did not answer within {} s",
                    self.timeout.as_secs()
                )));
            }
        };
        if bytes.len() > MAX_BODY {
            return Err(HttpError(format!("response of {host} is too large")));
        }
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder
            .body(bytes)
            .map_err(|_| HttpError(format!("unreadable response from {host}")))
    }
}
