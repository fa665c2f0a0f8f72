//! `HttpClient` over `worker::Fetch`, bounded by a timeout (an abort signal).

use std::time::Duration;

use futures_util::StreamExt as _;
use worker::{AbortController, Fetch, Headers, Method, RequestInit, ResponseBody};

use crate::http::{BoundedBody, HttpClient, HttpError, HttpRequest, HttpResponse, MAX_BODY};

/// Fetches with a timeout.
pub(super) struct FetchClient {
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
        let too_large = || HttpError(format!("response of {host} is too large (over 1 MiB)"));
        let exchange = async {
            let mut resp = Fetch::Request(req)
                .send_with_signal(&signal)
                .await
                .map_err(|_| HttpError(format!("connection to {host} failed")))?;
            let status = resp.status_code();
            let headers: Vec<(String, String)> = resp.headers().entries().collect();
            let announced = headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .map(|(_, value)| value.as_str());
            // Read as a stream and stop at the first byte past 1 MiB (or before any byte when
            // Content-Length says more): a huge or endless answer never fills memory.
            let mut body = BoundedBody::new(MAX_BODY, announced).map_err(|_| too_large())?;
            let read_failed = || HttpError(format!("reading the response of {host} failed"));
            if let ResponseBody::Body(bytes) = resp.body() {
                body.push(bytes).map_err(|_| too_large())?;
            } else if matches!(resp.body(), ResponseBody::Stream(_)) {
                let mut chunks = resp.stream().map_err(|_| read_failed())?;
                while let Some(chunk) = chunks.next().await {
                    body.push(&chunk.map_err(|_| read_failed())?)
                        .map_err(|_| too_large())?;
                }
            }
            Ok::<_, HttpError>((status, headers, body.into_bytes()))
        };
        let (status, headers, bytes) = match super::within(self.timeout, exchange).await {
            Some(Ok(exchange)) => exchange,
            Some(Err(e)) => {
                // Cancel whatever is still coming (the rest of a body that was too large).
                controller.abort();
                return Err(e);
            }
            None => {
                controller.abort();
                return Err(HttpError(format!(
                    "{host} did not answer within {} s",
                    self.timeout.as_secs()
                )));
            }
        };
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder
            .body(bytes)
            .map_err(|_| HttpError(format!("unreadable response from {host}")))
    }
}
