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

/// Provider responses larger than this are refused (a JWKS or token response is a few KB).
pub const MAX_BODY: usize = 1 << 20;

/// A response body was (or was announced as) larger than its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// A response body collected chunk by chunk, never past its limit: refused as soon as more
/// than `limit` bytes have arrived, or at once when `Content-Length` announces more, so a huge
/// or never-ending answer costs at most `limit` bytes of memory and is cut off early.
#[derive(Debug)]
pub struct BoundedBody {
    bytes: Vec<u8>,
    limit: usize,
}

impl BoundedBody {
    /// An empty body; `TooLarge` if `content_length` (the header's value) announces more than
    /// `limit`. A value that is not a number is ignored: the chunks are counted anyway.
    pub fn new(limit: usize, content_length: Option<&str>) -> Result<Self, TooLarge> {
        let announced = content_length.and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(TooLarge);
        }
        Ok(Self {
            bytes: Vec::new(),
            limit,
        })
    }

    /// Adds a chunk; `TooLarge` (and the chunk dropped) once the total would pass the limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), TooLarge> {
        if chunk.len() > self.limit - self.bytes.len() {
            return Err(TooLarge);
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole body.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Sends requests: the Workers `Fetch` API (with a timeout, in `runtime`) in production,
/// closures in tests.
#[expect(
    async_fn_in_trait,
    reason = "single-threaded wasm: no Send bound wanted"
)]
pub trait HttpClient {
    /// Sends `request` and waits for the whole response (bounded by a timeout, and by
    /// [`MAX_BODY`]: a larger body is an error as soon as it is seen, see [`BoundedBody`]).
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
    fn a_body_up_to_the_limit_is_kept_whole() {
        let mut body = BoundedBody::new(10, Some("10")).unwrap();
        body.push(b"hello").unwrap();
        body.push(b"").unwrap();
        body.push(b"world").unwrap();
        assert_eq!(body.into_bytes(), b"helloworld");
        assert_eq!(MAX_BODY, 1024 * 1024);
    }

    #[test]
    fn one_byte_past_the_limit_is_refused_while_streaming() {
        let mut body = BoundedBody::new(10, None).unwrap();
        body.push(b"0123456789").unwrap();
        assert_eq!(body.push(b"x"), Err(TooLarge));
        let mut body = BoundedBody::new(10, None).unwrap();
        body.push(b"0123").unwrap();
        assert_eq!(body.push(&[b'x'; 7]), Err(TooLarge));
        // An endless stream stops at the first chunk past the limit, never buffering more.
        let mut body = BoundedBody::new(MAX_BODY, None).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let accepted = std::iter::repeat_n(&chunk, 1000)
            .take_while(|c| body.push(c).is_ok())
            .count();
        assert_eq!(accepted, 16);
    }

    #[test]
    fn an_announced_length_over_the_limit_is_refused_before_any_byte() {
        assert_eq!(
            BoundedBody::new(MAX_BODY, Some("3145728")).unwrap_err(),
            TooLarge
        );
        assert!(BoundedBody::new(MAX_BODY, Some(" 1048576 ")).is_ok());
        assert_eq!(
            BoundedBody::new(MAX_BODY, Some("1048577")).unwrap_err(),
            TooLarge
        );
        assert_eq!(
            BoundedBody::new(MAX_BODY, Some("99999999999999999999")).map(|_| ()),
            Ok(()),
            "a length that is not a u64 is ignored; the chunks are still counted"
        );
        // A lie the other way is caught by counting.
        let mut body = BoundedBody::new(10, Some("2")).unwrap();
        assert_eq!(body.push(&[0; 11]), Err(TooLarge));
    }

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
