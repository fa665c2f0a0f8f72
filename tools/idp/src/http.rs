//! The HTTP/1.1 server: hyper 1.x on a tokio runtime of its own. Every connection is a task and
//! every request is answered on the blocking pool (signing is CPU work), so a slow or stalled
//! exchange never holds up another.
//!
//! The hostile mode is expressed in hyper's terms: a delay is a sleep before the response, a
//! trickle or an endless body is a streamed body (each piece written as it comes), and hanging
//! up without answering is the service failing, on which hyper closes the connection without
//! writing anything.
//!
//! Request bodies over [`MAX_BODY`] are refused with 413. It logs one line per request,
//! `METHOD /path STATUS`, never the query, headers or body (they carry codes, tokens and
//! secrets).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;

use crate::server::{Request, Response};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 64 * 1024;
/// How long a connection may take to send a request head, waiting between requests included.
const HEAD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a runtime being stopped waits for answers still being computed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How a response goes on the wire. Everything but [`Delivery::Normal`] is hostile mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Normal,
    /// Wait this long, then answer normally.
    After(Duration),
    /// Hang up without answering.
    Close,
    /// Send the head (with the full `Content-Length`) at once, then the body one byte per
    /// interval.
    Trickle(Duration),
    /// Send the head (chunked, no `Content-Length`) and the body at once, then `chunk` more
    /// bytes of `x` every `interval`, never ending: until the client hangs up or the server
    /// stops.
    Endless {
        /// Bytes per chunk after the body.
        chunk: usize,
        /// Pause between chunks.
        interval: Duration,
    },
}

/// Answers one request.
pub type Handler = dyn Fn(&Request<'_>) -> Response + Send + Sync;

type Body = BoxBody<Bytes, io::Error>;

/// A listening server.
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: JoinHandle<()>,
}

impl Server {
    /// Starts serving `listener` on a runtime of its own (on a thread of its own).
    pub fn start(listener: TcpListener, handler: Arc<Handler>) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("idp-worker")
            .enable_all()
            .build()?;
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("idp-server".into())
            .spawn(move || {
                runtime.block_on(serve(listener, handler, stopped));
                // Drops every connection task: open connections are closed.
                runtime.shutdown_timeout(STOP_GRACE);
            })?;
        Ok(Self { addr, stop, thread })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process ends.
    pub fn wait(self) {
        let _ = self.thread.join();
    }

    /// Stops accepting, cuts waits short, and closes open connections.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.thread.join();
    }
}

/// Resolves once the server is told to stop (never, if it cannot be any more).
async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    if stopped.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sleeps for `duration`; `false` if cut short because the server stops.
async fn sleep(duration: Duration, stopped: &watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = until_stopped(stopped.clone()) => false,
    }
}

async fn serve(listener: TcpListener, handler: Arc<Handler>, stopped: watch::Receiver<bool>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot serve: {e}");
            return;
        }
    };
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors and the like: back off a little.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = until_stopped(stopped.clone()) => return,
        };
        let _ = stream.set_nodelay(true);
        let (handler, stopped) = (handler.clone(), stopped.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, handler.clone(), stopped.clone()));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                // `Content-Type`, as Google writes them (and raw-socket tests read them).
                .title_case_headers(true)
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The service failing on purpose: hyper then closes the connection without an answer.
fn hang_up() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "hung up on purpose")
}

async fn answer(
    req: hyper::Request<Incoming>,
    handler: Arc<Handler>,
    stopped: watch::Receiver<bool>,
) -> Result<hyper::Response<Body>, io::Error> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            let response = refusal(413, "request body too large");
            log(parts.method.as_str(), parts.uri.path(), &response);
            return Ok(to_hyper(response));
        }
        // The client went away or sent a broken body.
        Err(_) => return Err(hang_up()),
    };
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let (m, p) = (method.clone(), path.clone());
    let response = tokio::task::spawn_blocking(move || {
        handler(&Request {
            method: &m,
            path: &p,
            query: &query,
            headers: &headers,
            body: &body,
        })
    })
    .await
    .map_err(|_| hang_up())?;
    log(&method, &path, &response);

    match response.delivery {
        Delivery::Normal => Ok(to_hyper(response)),
        Delivery::After(delay) => {
            if sleep(delay, &stopped).await {
                Ok(to_hyper(response))
            } else {
                Err(hang_up())
            }
        }
        Delivery::Close => Err(hang_up()),
        Delivery::Trickle(interval) => {
            let length = response.body.len();
            let bytes = Bytes::from(response.body.clone());
            let body = stream::unfold((0, stopped), move |(i, stopped)| {
                let bytes = bytes.clone();
                async move {
                    if i >= bytes.len() || !sleep(interval, &stopped).await {
                        return None;
                    }
                    let frame = Frame::data(bytes.slice(i..=i));
                    Some((Ok(frame), (i + 1, stopped)))
                }
            });
            let mut out = to_hyper(response);
            out.headers_mut()
                .insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(length));
            *out.body_mut() = StreamBody::new(body).boxed();
            Ok(out)
        }
        Delivery::Endless { chunk, interval } => {
            let first = Bytes::from(response.body.clone());
            let filler = Bytes::from(vec![b'x'; chunk.max(1)]);
            let body = stream::unfold((Some(first), stopped), move |(first, stopped)| {
                let filler = filler.clone();
                async move {
                    let data = match first {
                        Some(first) if !first.is_empty() => first,
                        _ if sleep(interval, &stopped).await => filler,
                        _ => return None,
                    };
                    Some((Ok(Frame::data(data)), (None, stopped)))
                }
            });
            let mut out = to_hyper(response);
            *out.body_mut() = StreamBody::new(body).boxed();
            Ok(out)
        }
    }
}

/// The response as hyper's, its body in full; invalid headers are dropped (and logged).
fn to_hyper(response: Response) -> hyper::Response<Body> {
    let mut out = hyper::Response::new(
        Full::new(Bytes::from(response.body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *out.status_mut() = hyper::StatusCode::from_u16(response.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(name), Ok(value)) => {
                out.headers_mut().append(name, value);
            }
            _ => eprintln!("dropped invalid {name} header"),
        }
    }
    out
}

/// A small JSON error.
fn refusal(status: u16, reason: &str) -> Response {
    let body = serde_json::json!({ "error": "invalid_request", "error_description": reason });
    Response {
        status,
        headers: vec![("Content-Type", "application/json; charset=utf-8".into())],
        body: body.to_string().into_bytes(),
        delivery: Delivery::Normal,
    }
}

fn log(method: &str, path: &str, response: &Response) {
    let path: String = path
        .chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect();
    let method: String = method
        .chars()
        .take(20)
        .flat_map(char::escape_debug)
        .collect();
    match response.delivery {
        Delivery::Normal => eprintln!("{method} {path} {}", response.status),
        Delivery::After(d) => eprintln!(
            "{method} {path} {} (after {} s)",
            response.status,
            d.as_secs()
        ),
        Delivery::Close => eprintln!("{method} {path} - (closed without a response)"),
        Delivery::Trickle(d) => eprintln!(
            "{method} {path} {} (body 1 byte per {} ms)",
            response.status,
            d.as_millis()
        ),
        Delivery::Endless { chunk, interval } => eprintln!(
            "{method} {path} {} (endless body: {chunk} bytes per {} ms)",
            response.status,
            interval.as_millis()
        ),
    }
}
