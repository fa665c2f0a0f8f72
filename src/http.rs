//! The outgoing HTTP seam (token endpoint, JWKS). Same types as the `oauth2` crate's
//! `AsyncHttpClient`, so one implementation serves both.

/// An outgoing request.
pub type HttpRequest = http::Request<Vec<u8>>;
/// Its response.
pub type HttpResponse = http::Response<Vec<u8>>;

/// Why a request got no response. The message never holds the request's body or headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError(pub String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

/// Sends requests: the Workers `Fetch` API (with a timeout, in `runtime`) in production,
/// closures in tests.
#[expect(
    async_fn_in_trait,
    reason = "single-threaded wasm: no Send bound wanted"
)]
pub trait HttpClient {
    /// Sends `request` and waits for the whole response (bounded by a timeout).
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError>;
}
