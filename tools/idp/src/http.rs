//! A small HTTP/1.1 server on `std::net`: one thread per connection, so a slow or stalled
//! exchange never holds up another, and full control of the socket, which the hostile mode
//! needs (answer late, trickle a body, or hang up without answering).
//!
//! It reads `Content-Length` and `chunked` request bodies up to [`MAX_BODY`], answers
//! `Expect: 100-continue`, keeps HTTP/1.1 connections alive, and closes HTTP/1.0 ones after
//! the answer. It logs one line per request, `METHOD /path STATUS`, never the query, headers
//! or body (they carry codes, tokens and secrets).

use std::collections::HashMap;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::server::{Request, Response};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 64 * 1024;
/// Request line plus headers.
const MAX_HEAD: u64 = 32 * 1024;
const MAX_HEADERS: usize = 100;
/// Connections open at once; more are answered 503 and closed.
const MAX_CONNECTIONS: usize = 512;
/// How long a kept-alive connection may sit idle before the next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the rest of a request may take once it has begun, and a write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How a response goes on the wire. Everything but [`Delivery::Normal`] is hostile mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Normal,
    /// Wait this long, then answer normally.
    After(Duration),
    /// Hang up without answering.
    Close,
    /// Send the head at once, then the body one byte per interval, then close.
    Trickle(Duration),
    /// Send the head (chunked, no `Content-Length`) and the body at once, then `chunk` more
    /// bytes of `x` every `interval`, never ending: until the client hangs up, a write times
    /// out, or the server stops.
    Endless {
        /// Bytes per chunk after the body.
        chunk: usize,
        /// Pause between chunks.
        interval: Duration,
    },
}

/// A stop signal that sleepers can wait on: [`Stopper::sleep`] returns early once stopped.
#[derive(Default)]
pub struct Stopper {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stopper {
    fn lock(&self) -> MutexGuard<'_, bool> {
        self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stop(&self) {
        *self.lock() = true;
        self.wake.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self.lock()
    }

    /// Sleeps for `duration`; `false` if woken early by [`Stopper::stop`].
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut stopped = self.lock();
        loop {
            if *stopped {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            stopped = self
                .wake
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Open connections, so [`Server::stop`] can hang them up.
#[derive(Default)]
struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, TcpStream>>,
    closed: Condvar,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes its connection from the registry when the connection thread ends, even by panic.
struct Registered {
    id: u64,
    connections: Arc<Connections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
        self.connections.closed.notify_all();
    }
}

/// Answers one request.
pub type Handler = dyn Fn(&Request<'_>) -> Response + Send + Sync;

/// A listening server.
pub struct Server {
    addr: SocketAddr,
    stopper: Arc<Stopper>,
    connections: Arc<Connections>,
    acceptor: JoinHandle<()>,
}

impl Server {
    /// Starts accepting on `listener`; each connection gets a thread.
    pub fn start(
        listener: TcpListener,
        handler: Arc<Handler>,
        stopper: Arc<Stopper>,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let connections = Arc::new(Connections::default());
        let (conns, stop) = (connections.clone(), stopper.clone());
        let acceptor = std::thread::Builder::new()
            .name("idp-accept".into())
            .spawn(move || accept_loop(&listener, &handler, &stop, &conns))?;
        Ok(Self {
            addr,
            stopper,
            connections,
            acceptor,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process ends.
    pub fn wait(self) {
        let _ = self.acceptor.join();
    }

    /// Stops accepting, wakes sleepers, hangs up open connections and waits (briefly) for
    /// their threads.
    pub fn stop(self) {
        self.stopper.stop();
        // Wake the blocking accept with a connection of our own.
        let wake = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
            IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
            ip => ip,
        };
        let _ = TcpStream::connect_timeout(
            &SocketAddr::new(wake, self.addr.port()),
            Duration::from_secs(1),
        );
        let _ = self.acceptor.join();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut open = self.connections.lock();
        for stream in open.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        while !open.is_empty() && Instant::now() < deadline {
            open = self
                .connections
                .closed
                .wait_timeout(open, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    handler: &Arc<Handler>,
    stopper: &Arc<Stopper>,
    connections: &Arc<Connections>,
) {
    for stream in listener.incoming() {
        if stopper.is_stopped() {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(_) => {
                // Out of file descriptors and the like: back off a little.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = connections.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut open = connections.lock();
            if open.len() >= MAX_CONNECTIONS {
                drop(open);
                refuse(stream, 503, "too many connections");
                continue;
            }
            open.insert(id, clone);
        }
        let registered = Registered {
            id,
            connections: connections.clone(),
        };
        let (handler, stopper) = (handler.clone(), stopper.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("idp-conn-{id}"))
            .spawn(move || {
                let _registered = registered;
                serve_connection(stream, &*handler, &stopper);
            });
        if spawned.is_err() {
            // The closure (and with it the registration and the stream) is dropped.
            eprintln!("cannot start a connection thread");
        }
    }
}

/// A request head that cannot be served: answer `status` and close.
struct Refusal {
    status: u16,
    reason: &'static str,
}

fn refusal(status: u16, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

enum ReadOutcome {
    /// A complete request.
    Request(Incoming),
    /// The client closed (or went idle) between requests.
    Gone,
    Refused(Refusal),
}

struct Incoming {
    method: String,
    target: String,
    http11: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client asks to keep the connection (HTTP/1.1 unless `Connection: close`).
    fn keep_alive(&self) -> bool {
        let close = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("close"));
        self.http11 && !close
    }
}

fn serve_connection(stream: TcpStream, handler: &Handler, stopper: &Stopper) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        if stopper.is_stopped() {
            return;
        }
        let incoming = match read_request(&mut reader, &mut writer) {
            ReadOutcome::Request(incoming) => incoming,
            ReadOutcome::Gone => return,
            ReadOutcome::Refused(r) => {
                eprintln!("refused a request: {} {}", r.reason, r.status);
                refuse(writer, r.status, r.reason);
                return;
            }
        };
        let keep_alive = incoming.keep_alive() && !stopper.is_stopped();
        let (path, query) = split_target(&incoming.target);
        let response = handler(&Request {
            method: &incoming.method,
            path,
            query,
            headers: &incoming.headers,
            body: &incoming.body,
        });
        log(&incoming.method, path, &response);
        let head_only = incoming.method == "HEAD";
        let kept = match response.delivery {
            Delivery::Normal => write_response(&mut writer, &response, head_only, keep_alive),
            Delivery::After(delay) => {
                stopper.sleep(delay)
                    && write_response(&mut writer, &response, head_only, keep_alive)
            }
            Delivery::Close => {
                let _ = writer.shutdown(Shutdown::Both);
                false
            }
            Delivery::Trickle(interval) => {
                trickle(&mut writer, &response, interval, stopper);
                false
            }
            Delivery::Endless { chunk, interval } => {
                endless(&mut writer, &response, chunk, interval, stopper);
                false
            }
        };
        if !kept {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// `(path, query)` of an origin-form (`/p?q`) or absolute-form (`http://h/p?q`) target.
fn split_target(target: &str) -> (&str, &str) {
    let rest = if target.starts_with('/') {
        target
    } else {
        // Absolute form: skip `scheme://authority`.
        target
            .split_once("://")
            .and_then(|(_, after)| after.find('/').map(|i| &after[i..]))
            .unwrap_or("/")
    };
    rest.split_once('?').unwrap_or((rest, ""))
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

/// Reads one line (up to `\n`) within what is left of `budget`.
fn read_line(reader: &mut BufReader<TcpStream>, budget: &mut u64) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = reader.by_ref().take(*budget).read_until(b'\n', &mut line)?;
    *budget -= n as u64;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn read_request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> ReadOutcome {
    // Wait for the next request as long as an idle connection may stay open, then give the
    // rest of it a shorter deadline.
    let _ = reader.get_ref().set_read_timeout(Some(IDLE_TIMEOUT));
    match reader.fill_buf() {
        Ok([]) | Err(_) => return ReadOutcome::Gone,
        Ok(_) => {}
    }
    let _ = reader.get_ref().set_read_timeout(Some(IO_TIMEOUT));

    let mut budget = MAX_HEAD;
    let too_big = || ReadOutcome::Refused(refusal(431, "request head too large"));
    let bad = |reason| ReadOutcome::Refused(refusal(400, reason));
    // Request line, after any empty lines (RFC 9112, section 2.2).
    let line = loop {
        match read_line(reader, &mut budget) {
            Ok(Some(l)) if l.is_empty() => continue,
            Ok(Some(l)) => break l,
            Ok(None) => return ReadOutcome::Gone,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return too_big(),
            Err(_) => return ReadOutcome::Gone,
        }
    };
    let Ok(line) = String::from_utf8(line) else {
        return bad("request line is not UTF-8");
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad("malformed request line");
    };
    if !is_token(method) || target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return bad("malformed request line");
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => {
            return ReadOutcome::Refused(refusal(505, "HTTP version not supported"));
        }
        _ => return bad("malformed request line"),
    };

    let mut headers = Vec::new();
    loop {
        let line = match read_line(reader, &mut budget) {
            Ok(Some(l)) => l,
            Ok(None) => return ReadOutcome::Gone,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return too_big(),
            Err(_) => return ReadOutcome::Gone,
        };
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return too_big();
        }
        let line = String::from_utf8_lossy(&line);
        let Some((name, value)) = line.split_once(':') else {
            return bad("malformed header");
        };
        if !is_token(name) {
            // Also refuses obsolete line folding (a line starting with whitespace).
            return bad("malformed header");
        }
        headers.push((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()));
    }
    let mut incoming = Incoming {
        method: method.to_owned(),
        target: target.to_owned(),
        http11,
        headers,
        body: Vec::new(),
    };

    let chunked = match incoming.header("Transfer-Encoding") {
        None => false,
        Some(te) if te.trim().eq_ignore_ascii_case("chunked") => true,
        Some(_) => return ReadOutcome::Refused(refusal(501, "unsupported transfer encoding")),
    };
    let lengths: Vec<&str> = incoming
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str())
        .collect();
    if chunked && !lengths.is_empty() {
        return bad("both Transfer-Encoding and Content-Length");
    }
    let length = match lengths.as_slice() {
        [] => 0,
        [first, rest @ ..] if rest.iter().all(|l| l == first) => match first.parse::<u64>() {
            Ok(n) if first.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return bad("malformed Content-Length"),
        },
        _ => return bad("conflicting Content-Length"),
    };
    if length > MAX_BODY as u64 {
        return ReadOutcome::Refused(refusal(413, "request body too large"));
    }
    match incoming.header("Expect") {
        None => {}
        Some(e) if e.eq_ignore_ascii_case("100-continue") && http11 && (chunked || length > 0) => {
            let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        Some(e) if e.eq_ignore_ascii_case("100-continue") => {}
        Some(_) => return ReadOutcome::Refused(refusal(417, "unsupported expectation")),
    }
    let body = if chunked {
        read_chunked(reader)
    } else {
        // `length` is at most MAX_BODY here.
        let mut body = vec![0u8; usize::try_from(length).unwrap_or(MAX_BODY)];
        reader.read_exact(&mut body).map(|()| body).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                refusal(400, "request body ended early")
            } else {
                refusal(408, "request body too slow")
            }
        })
    };
    match body {
        Ok(body) => {
            incoming.body = body;
            ReadOutcome::Request(incoming)
        }
        Err(r) => ReadOutcome::Refused(r),
    }
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, Refusal> {
    let mut body = Vec::new();
    let mut budget = MAX_BODY as u64 + MAX_HEAD;
    let broken = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            refusal(408, "request body too slow")
        }
        _ => refusal(400, "malformed chunked body"),
    };
    loop {
        let line = read_line(reader, &mut budget)
            .map_err(broken)?
            .ok_or(refusal(400, "malformed chunked body"))?;
        let size = String::from_utf8_lossy(&line);
        let size = size.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| refusal(400, "malformed chunked body"))?;
        if size == 0 {
            // Trailer fields, up to the empty line; ignored.
            loop {
                match read_line(reader, &mut budget).map_err(broken)? {
                    Some(l) if l.is_empty() => return Ok(body),
                    Some(_) => {}
                    None => return Err(refusal(400, "malformed chunked body")),
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY {
            return Err(refusal(413, "request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(broken)?;
        match read_line(reader, &mut budget).map_err(broken)? {
            Some(l) if l.is_empty() => {}
            _ => return Err(refusal(400, "malformed chunked body")),
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        302 => "Found",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// Status line and headers, with `Date`, `Content-Length` and `Connection` added.
fn head(response: &Response, keep_alive: bool) -> Vec<u8> {
    head_framed(response, keep_alive, false)
}

/// The head; `chunked` announces `Transfer-Encoding: chunked` instead of a `Content-Length`.
fn head_framed(response: &Response, keep_alive: bool, chunked: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nDate: {}\r\n",
        response.status,
        reason_phrase(response.status),
        chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT")
    );
    for (name, value) in &response.headers {
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) || !is_token(name) {
            eprintln!("dropped invalid {name} header");
            continue;
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if chunked {
        out.push_str("Transfer-Encoding: chunked\r\n");
    } else {
        out.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    if !keep_alive {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Writes the whole response; whether the connection can be used again.
fn write_response(
    writer: &mut TcpStream,
    response: &Response,
    head_only: bool,
    keep_alive: bool,
) -> bool {
    let mut out = head(response, keep_alive);
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    writer.write_all(&out).and_then(|()| writer.flush()).is_ok() && keep_alive
}

fn trickle(writer: &mut TcpStream, response: &Response, interval: Duration, stopper: &Stopper) {
    if writer.write_all(&head(response, false)).is_err() {
        return;
    }
    for byte in &response.body {
        if !stopper.sleep(interval) || writer.write_all(&[*byte]).is_err() {
            return;
        }
    }
}

/// The head and body as one chunk, then chunks of `x` forever (see [`Delivery::Endless`]).
fn endless(
    writer: &mut TcpStream,
    response: &Response,
    chunk: usize,
    interval: Duration,
    stopper: &Stopper,
) {
    let frame = |data: &[u8]| {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    };
    let mut first = head_framed(response, false, true);
    if !response.body.is_empty() {
        first.extend(frame(&response.body));
    }
    if writer
        .write_all(&first)
        .and_then(|()| writer.flush())
        .is_err()
    {
        return;
    }
    let filler = frame(&vec![b'x'; chunk.max(1)]);
    while stopper.sleep(interval) {
        if writer
            .write_all(&filler)
            .and_then(|()| writer.flush())
            .is_err()
        {
            return;
        }
    }
}

/// Answers `status` with a small JSON error and closes, reading (and discarding) what the client
/// still sends for a moment so the answer is not lost to a reset.
fn refuse(mut stream: TcpStream, status: u16, reason: &str) {
    let body = serde_json::json!({ "error": "invalid_request", "error_description": reason });
    let response = Response {
        status,
        headers: vec![("Content-Type", "application/json; charset=utf-8".into())],
        body: body.to_string().into_bytes(),
        delivery: Delivery::Normal,
    };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(&head(&response, false));
    let _ = stream.write_all(&response.body);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = io::copy(&mut stream.take(4 * 1024 * 1024), &mut io::sink());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(split_target("/a?b=1"), ("/a", "b=1"));
        assert_eq!(split_target("/a"), ("/a", ""));
        assert_eq!(split_target("http://h:1/x/y?z"), ("/x/y", "z"));
        assert_eq!(split_target("http://h"), ("/", ""));
        assert_eq!(split_target("*"), ("/", ""));
    }

    #[test]
    fn stopper_wakes_sleepers() {
        let stopper = Arc::new(Stopper::default());
        assert!(stopper.sleep(Duration::from_millis(1)));
        let s = stopper.clone();
        let sleeper = std::thread::spawn(move || s.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        stopper.stop();
        assert!(!sleeper.join().unwrap());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(stopper.is_stopped());
    }
}
