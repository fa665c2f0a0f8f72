//! The outgoing HTTP seam (token endpoint, JWKS), with the same types as the `oauth2` crate's
//! `AsyncHttpClient` so one implementation serves both; and [`header_map`], the incoming
//! request's headers as the runtime hands them over.

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

/// Request headers as the runtime hands them over (name, value), into a `HeaderMap`.
///
/// The runtime gives header values as text: a value with non-ASCII bytes (say, another site's
/// cookie holding `café` in UTF-8) arrives as its UTF-8 text and is kept as those bytes, so the
/// full route sees the very `Cookie` header the hot path sees. Only what no header may hold
/// (an invalid name, a control character) is left out.
pub fn header_map<N, V>(entries: impl IntoIterator<Item = (N, V)>) -> http::HeaderMap
where
    N: AsRef<str>,
    V: AsRef<str>,
{
    let mut headers = http::HeaderMap::new();
    for (name, value) in entries {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_ref().as_bytes()),
            http::HeaderValue::from_bytes(value.as_ref().as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_keep_their_utf8_bytes() {
        let cookie = "pref=café; __Host-gatehouse_session=a.b.c; 名=値";
        let map = header_map([
            ("Cookie", cookie),
            ("accept", "text/html"),
            ("X-Many", "1"),
            ("x-many", "2"),
        ]);
        assert_eq!(map["cookie"].as_bytes(), cookie.as_bytes());
        assert_eq!(map["accept"], "text/html");
        let many: Vec<_> = map.get_all("x-many").iter().collect();
        assert_eq!(many, ["1", "2"]);
    }

    #[test]
    fn what_no_header_may_hold_is_left_out() {
        let map = header_map([
            ("bad name", "x"),
            ("x-ctl", "a\u{1}b"),
            ("x-newline", "a\r\nx-auth-role: admin"),
            ("x-ok", "fine"),
        ]);
        assert_eq!(map.len(), 1, "{map:?}");
        assert_eq!(map["x-ok"], "fine");
    }
}
