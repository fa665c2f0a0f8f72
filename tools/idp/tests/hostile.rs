//! Hostile mode over the wire: the twists that change how the token endpoint's answer travels
//! (stall, hang-up, trickle), and that they leave everything else working.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CLIENT_ID: &str = "test-client.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "secret";
const REDIRECT_URI: &str = "http://localhost:8787/cb";
// RFC 7636, Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct Idp {
    child: Child,
    port: u16,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Idp {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse-idp"))
        .args(["--port", "0", "--client-id", CLIENT_ID])
        .env("IDP_CLIENT_SECRET", CLIENT_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gatehouse-idp");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim_end()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
    Idp { child, port }
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// One HTTP/1.0 exchange: status and body.
fn exchange(port: u16, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut stream = connect(port);
    write!(
        stream,
        "{method} {target} HTTP/1.0\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn code_for(port: u16, twists: &[&str]) -> String {
    let mut pairs = vec![
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("response_type", "code"),
        ("scope", "openid email"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("test_email", "ada@example.com"),
    ];
    pairs.extend(twists.iter().map(|t| ("test_twist", *t)));
    let mut stream = connect(port);
    write!(
        stream,
        "GET /o/oauth2/v2/auth?{} HTTP/1.0\r\nHost: x\r\n\r\n",
        form(&pairs)
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    // An HTTP/1.0 request is answered in HTTP/1.0.
    assert!(
        raw.starts_with("HTTP/1.0 302") || raw.starts_with("HTTP/1.1 302"),
        "{raw}"
    );
    let location = raw
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .unwrap();
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

fn token_body(code: &str) -> String {
    form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ])
}

/// Sends a keep-alive HTTP/1.1 token request for `code` and returns the open stream.
fn send_token_request(port: u16, code: &str) -> TcpStream {
    let body = token_body(code);
    let mut stream = connect(port);
    write!(
        stream,
        "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream
}

fn stats(port: u16) -> Value {
    serde_json::from_str(&exchange(port, "GET", "/_control/stats", "").1).unwrap()
}

#[test]
fn stalls_do_not_block_others_and_sigterm_still_ends_the_process() {
    let idp = start();
    // More stalled exchanges than the old worker pool had threads.
    let stalled: Vec<TcpStream> = (0..12)
        .map(|_| send_token_request(idp.port, &code_for(idp.port, &["token_stall"])))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(exchange(idp.port, "GET", "/oauth2/v3/certs", "").0, 200);
    }
    let code = code_for(idp.port, &[]);
    let (status, body) = exchange(idp.port, "POST", "/token", &token_body(&code));
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(stats(idp.port)["token_requests"], 13);

    #[cfg(unix)]
    {
        let mut idp = idp;
        let pid = idp.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = idp.child.try_wait().unwrap() {
                assert!(!status.success(), "ended by the signal");
                break;
            }
            assert!(Instant::now() < deadline, "still running 5 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(stalled);
}

#[test]
fn token_close_hangs_up_a_kept_alive_connection_without_answering() {
    let idp = start();
    let mut stream = send_token_request(idp.port, &code_for(idp.port, &["token_close"]));
    let mut raw = Vec::new();
    let started = Instant::now();
    // EOF or a reset, with no bytes: either way no response.
    let _ = stream.read_to_end(&mut raw);
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn token_slow_body_sends_the_head_then_a_byte_a_second() {
    let idp = start();
    let mut stream = send_token_request(idp.port, &code_for(idp.port, &["token_slow_body"]));
    let started = Instant::now();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0);
        raw.extend_from_slice(&buf[..n]);
    }
    assert!(started.elapsed() < Duration::from_secs(2), "head at once");
    let head = String::from_utf8_lossy(&raw).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(length > 500, "the whole token response is promised");
    let body_start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut body = raw[body_start..].to_vec();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while started.elapsed() < Duration::from_millis(2600) {
        if let Ok(n) = stream.read(&mut buf) {
            assert!(n > 0, "closed early");
            body.extend_from_slice(&buf[..n]);
        }
    }
    assert!(
        (1..=4).contains(&body.len()),
        "{} body bytes after 2.6 s",
        body.len()
    );
    assert!(body.starts_with(b"{\""));
}

/// Reads the head of a response (up to the empty line); returns it and what came after.
fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the head ended");
        raw.extend_from_slice(&buf[..n]);
    }
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (
        String::from_utf8_lossy(&raw[..end]).into_owned(),
        raw[end..].to_vec(),
    )
}

/// Reads for `how_long` and returns how many bytes arrived (the connection stays open).
fn bytes_within(stream: &mut TcpStream, how_long: Duration) -> usize {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    while started.elapsed() < how_long {
        if let Ok(n) = stream.read(&mut buf) {
            assert!(n > 0, "the endless body ended");
            total += n;
        }
    }
    total
}

#[test]
fn token_endless_streams_a_chunked_body_that_never_ends() {
    let idp = start();
    let mut stream = send_token_request(idp.port, &code_for(idp.port, &["token_endless"]));
    let (head, rest) = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    let first = String::from_utf8_lossy(&rest).into_owned();
    assert!(first.contains("{\"padding\":\""), "{first}");
    // Well over 1 MiB within a second and a half, and still going.
    let got = rest.len() + bytes_within(&mut stream, Duration::from_millis(1500));
    assert!(got > 1024 * 1024, "{got} bytes in 1.5 s");
    let more = bytes_within(&mut stream, Duration::from_millis(300));
    assert!(more > 0, "still sending");
}

#[test]
fn jwks_endless_and_huge_slow_modes() {
    let idp = start();
    assert_eq!(
        exchange(idp.port, "POST", "/_control/jwks?mode=endless", "").0,
        200
    );
    let mut stream = connect(idp.port);
    write!(stream, "GET /oauth2/v3/certs HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (head, _) = read_head(&mut stream);
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    assert!(bytes_within(&mut stream, Duration::from_millis(1500)) > 1024 * 1024);
    drop(stream);

    assert_eq!(
        exchange(idp.port, "POST", "/_control/jwks?mode=huge_slow", "").0,
        200
    );
    let mut stream = connect(idp.port);
    write!(stream, "GET /oauth2/v3/certs HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let started = Instant::now();
    let (head, rest) = read_head(&mut stream);
    assert!(started.elapsed() < Duration::from_secs(2), "head at once");
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", 3 * 1024 * 1024)),
        "{head}"
    );
    let got = rest.len() + bytes_within(&mut stream, Duration::from_millis(1500));
    assert!((0..=3).contains(&got), "{got} body bytes in 1.5 s");
}

#[test]
fn in_process_stop_cuts_stalls_short() {
    let config = gatehouse_idp::config::Config {
        host: "127.0.0.1".into(),
        port: 0,
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        issuer: None,
    };
    let running = gatehouse_idp::server::start(&config).unwrap();
    let port = running.addr().port();
    let mut stalled = send_token_request(port, &code_for(port, &["token_stall"]));
    assert_eq!(
        exchange(port, "POST", "/_control/jwks?mode=stall", "").0,
        200
    );
    let mut jwks = connect(port);
    jwks.write_all(b"GET /oauth2/v3/certs HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    running.stop();
    assert!(started.elapsed() < Duration::from_secs(3));
    for stream in [&mut stalled, &mut jwks] {
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    }
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn http11_keep_alive_chunked_and_expect_continue() {
    let idp = start();
    let mut stream = connect(idp.port);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut read_response = || {
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        (status, String::from_utf8(body).unwrap())
    };
    // Two requests on one connection.
    stream
        .write_all(b"GET /_control/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(read_response().0.starts_with("HTTP/1.1 200"));
    // A chunked body, with 100-continue.
    let body = token_body(&code_for(idp.port, &[]));
    let (a, b) = body.split_at(10);
    write!(
        stream,
        "POST /token HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
    .unwrap();
    let (status, _) = read_response();
    assert!(status.starts_with("HTTP/1.1 100"), "{status}");
    let (status, body) = read_response();
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
    let tokens: Value = serde_json::from_str(&body).unwrap();
    assert!(tokens["id_token"].is_string());
    // Ambiguous framing is refused.
    let mut bad = connect(idp.port);
    bad.write_all(
        b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .unwrap();
    let mut raw = String::new();
    bad.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
}
