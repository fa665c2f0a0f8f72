//! Unit tests of `gatehouse risc`: the printed commands (read back as a shell reads them), the
//! token (verified with the public half of a fresh key), and every refusal.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser as _;
use jwt_compact::UntrustedToken;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};

use super::*;

const EMAIL: &str = "risc-admin@my-project.iam.gserviceaccount.com";
const KEY_ID: &str = "0123456789abcdef0123456789abcdef01234567";
const RECEIVER: &str = "https://app.example.com/auth/risc";

/// One 2048-bit key for the whole test binary (making one takes a while).
fn key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap())
}

fn pem() -> String {
    key().to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
}

/// A key file as Google writes one, with `private_key` set to `pem`.
fn key_file_with(pem: &str) -> Value {
    json!({
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": KEY_ID,
        "private_key": pem,
        "client_email": EMAIL,
        "client_id": "123456789012345678901",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/x",
        "universe_domain": "googleapis.com"
    })
}

fn key_file() -> String {
    key_file_with(&pem()).to_string()
}

#[derive(clap::Parser, Debug)]
struct Risc {
    #[command(subcommand)]
    command: Command,
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

/// `gatehouse risc ARGS…`, the key file read from `file`.
fn risc(a: &[&str], file: &str) -> Result<Output, String> {
    let cli = Risc::try_parse_from(std::iter::once("risc").chain(a.iter().copied()))
        .map_err(|e| e.to_string())?;
    let file = file.to_owned();
    run(&cli.command, now(), move |path| {
        assert_eq!(path, Path::new("sa.json"));
        Ok(file)
    })
}

/// As [`risc`], for commands that must not read the key file.
fn risc_no_file(a: &[&str]) -> Result<Output, String> {
    let cli = Risc::try_parse_from(std::iter::once("risc").chain(a.iter().copied()))
        .map_err(|e| e.to_string())?;
    run(&cli.command, now(), |_| panic!("the key file was read"))
}

/// The words of a POSIX shell command of plain words, single quotes, `\'` and `\`-newline.
fn shell_words(cmd: &str) -> Vec<String> {
    let (mut words, mut word, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next().expect("an unterminated quote") {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '\\' => match chars.next().expect("a trailing backslash") {
                '\n' => {}
                c => {
                    in_word = true;
                    word.push(c);
                }
            },
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                assert!(
                    c.is_ascii_alphanumeric() || "-_./:".contains(c),
                    "{c:?} unquoted in {cmd}"
                );
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// What a `curl -sS -X POST URL -H … -H … --data-raw BODY -w FORMAT` command sends.
struct Request {
    url: String,
    headers: Vec<String>,
    body: String,
}

fn request(cmd: &str) -> Request {
    let words = shell_words(cmd);
    assert_eq!(words[..4], ["curl", "-sS", "-X", "POST"], "{cmd}");
    let (mut headers, mut body) = (Vec::new(), None);
    let mut rest = words[5..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().expect("a flag's value").clone();
        match flag.as_str() {
            "-H" => headers.push(value),
            "--data-raw" => body = Some(value),
            "-w" => assert_eq!(value, r"\nHTTP %{http_code}\n"),
            other => panic!("unexpected {other} in {cmd}"),
        }
    }
    Request {
        url: words[4].clone(),
        headers,
        body: body.expect("a body"),
    }
}

/// The bearer token of a request, checked to be its only Authorization header.
fn bearer(req: &Request) -> String {
    let auth: Vec<_> = req
        .headers
        .iter()
        .filter_map(|h| h.strip_prefix("Authorization: Bearer "))
        .collect();
    assert_eq!(auth.len(), 1, "{:?}", req.headers);
    assert!(
        req.headers
            .contains(&"Content-Type: application/json".to_owned())
    );
    assert_eq!(req.headers.len(), 2);
    auth[0].to_owned()
}

/// Verifies `jwt` with the public half of [`key`] and checks its header and claims.
fn check_token(jwt: &str) {
    let public = StrongKey::try_from(key().to_public_key()).unwrap();
    let untrusted = UntrustedToken::new(jwt).unwrap();
    let token = StrongAlg(Rsa::rs256())
        .validator::<Map<String, Value>>(&public)
        .validate(&untrusted)
        .expect("the token verifies with the key's public half");
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({ "alg": "RS256", "typ": "JWT", "kid": KEY_ID })
    );
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let iat = now().timestamp();
    assert_eq!(
        claims,
        json!({
            "iss": EMAIL,
            "sub": EMAIL,
            "aud": "https://risc.googleapis.com/google.identity.risc.v1beta.RiscManagementService",
            "iat": iat,
            "exp": iat + 3600,
        })
    );
    assert_eq!(
        token.claims().expiration,
        Some(now() + Duration::seconds(3600))
    );
}

/// The registration body, written out as Google documents it.
fn expected_body(url: &str) -> Value {
    json!({
        "delivery": {
            "delivery_method": "https://schemas.openid.net/secevent/risc/delivery-method/push",
            "url": url
        },
        "events_requested": [
            "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked",
            "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked",
            "https://schemas.openid.net/secevent/risc/event-type/account-disabled",
            "https://schemas.openid.net/secevent/risc/event-type/account-enabled",
            "https://schemas.openid.net/secevent/risc/event-type/account-credential-change-required",
            "https://schemas.openid.net/secevent/risc/event-type/verification"
        ]
    })
}

#[test]
fn register_prints_a_curl_command_with_the_body_and_a_signed_token() {
    let out = risc(
        &[
            "register",
            "--credentials",
            "sa.json",
            "--receiver",
            RECEIVER,
        ],
        &key_file(),
    )
    .unwrap();
    let req = request(&out.stdout);
    assert_eq!(req.url, "https://risc.googleapis.com/v1beta/stream:update");
    let body: Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body, expected_body(RECEIVER));
    check_token(&bearer(&req));
    let note = out.note.unwrap();
    assert!(!note.contains('\n'), "{note}");
    assert!(note.contains(RECEIVER), "{note}");
    assert!(note.contains("expires in an hour"), "{note}");
    assert!(note.contains("2026-01-01 01:00:00 UTC"), "{note}");
}

#[test]
fn verify_prints_a_curl_command_with_the_state() {
    let state = "it's \"mine\" $(touch /tmp/x) `x` \\ ;\n";
    let out = risc(
        &["verify", "--credentials", "sa.json", "--state", state],
        &key_file(),
    )
    .unwrap();
    let req = request(&out.stdout);
    assert_eq!(req.url, "https://risc.googleapis.com/v1beta/stream:verify");
    let body: Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body, json!({ "state": state }));
    check_token(&bearer(&req));
    let note = out.note.unwrap();
    assert!(note.contains("risc_verification"), "{note}");
    assert!(note.contains("expires in an hour"), "{note}");
    assert!(!note.contains('\n'), "{note}");
}

#[test]
fn verify_without_state_makes_16_random_hex_digits_and_says_them() {
    let states: Vec<String> = (0..2)
        .map(|_| {
            let out = risc(&["verify", "--credentials", "sa.json"], &key_file()).unwrap();
            let body: Value = serde_json::from_str(&request(&out.stdout).body).unwrap();
            let state = body["state"].as_str().unwrap().to_owned();
            assert_eq!(state.len(), 16);
            assert!(
                state
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(out.note.unwrap().contains(&state));
            state
        })
        .collect();
    assert_ne!(states[0], states[1]);
    let empty = risc(
        &["verify", "--credentials", "sa.json", "--state", ""],
        &key_file(),
    );
    assert!(empty.unwrap_err().contains("--state"));
}

#[test]
fn body_prints_the_registration_only() {
    let out = risc_no_file(&["body", "--receiver", RECEIVER]).unwrap();
    assert!(out.note.is_none());
    let body: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(body, expected_body(RECEIVER));
}

/// A real shell reads the printed command into the same words as [`shell_words`].
#[test]
fn a_posix_shell_reads_the_words_back() {
    if !Path::new("/bin/sh").exists() {
        return;
    }
    let state = "a'b\"c $HOME `id` \\n \\ 'd' '\\'' \n!*?[x]";
    let out = risc(
        &["verify", "--credentials", "sa.json", "--state", state],
        &key_file(),
    )
    .unwrap();
    let printf = out.stdout.replacen("curl", "printf '%s\\0'", 1);
    let ran = std::process::Command::new("/bin/sh")
        .args(["-c", &printf])
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let words: Vec<String> = String::from_utf8(ran.stdout)
        .unwrap()
        .split_terminator('\0')
        .map(str::to_owned)
        .collect();
    let mut expected = shell_words(&out.stdout);
    expected.remove(0);
    assert_eq!(words, expected);
    let body: Value = serde_json::from_str(&request(&out.stdout).body).unwrap();
    assert_eq!(body["state"], state);
}

#[test]
fn receivers_accepted() {
    for (given, printed) in [
        (RECEIVER, RECEIVER),
        (
            "https://app.example.com:8443/auth/risc",
            "https://app.example.com:8443/auth/risc",
        ),
        ("HTTPS://App.Example.COM/auth/risc", RECEIVER),
        (
            "http://localhost:8787/auth/risc",
            "http://localhost:8787/auth/risc",
        ),
        (
            "http://127.0.0.1:8787/auth/risc",
            "http://127.0.0.1:8787/auth/risc",
        ),
        ("http://[::1]:8787/auth/risc", "http://[::1]:8787/auth/risc"),
    ] {
        let out = risc_no_file(&["body", "--receiver", given]).unwrap();
        let body: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(body["delivery"]["url"], printed, "{given}");
    }
}

#[test]
fn receivers_refused() {
    for (receiver, says) in [
        ("https://app.example.com/auth/risc/", "path"),
        ("https://app.example.com/risc", "path"),
        ("https://app.example.com/auth/RISC", "path"),
        ("https://app.example.com/auth/%72isc", "path"),
        ("https://app.example.com", "path"),
        ("https://app.example.com/app/auth/risc", "path"),
        ("http://app.example.com/auth/risc", "https"),
        ("http://127.0.0.2/auth/risc", "https"),
        ("http://localhost.example.com/auth/risc", "https"),
        ("ftp://app.example.com/auth/risc", "https"),
        ("file:///auth/risc", "host"),
        ("https://app.example.com/auth/risc?x=1", "query"),
        ("https://app.example.com/auth/risc?", "query"),
        ("https://app.example.com/auth/risc#x", "fragment"),
        ("https://app.example.com/auth/risc#", "fragment"),
        ("https://user:s3cr3t@app.example.com/auth/risc", "user name"),
        ("https://user@app.example.com/auth/risc", "user name"),
        ("/auth/risc", "absolute"),
        ("app.example.com/auth/risc", "absolute"),
        ("", "absolute"),
    ] {
        for run in [
            risc_no_file(&["body", "--receiver", receiver]),
            // The receiver is checked before the key file is read.
            risc_no_file(&[
                "register",
                "--credentials",
                "sa.json",
                "--receiver",
                receiver,
            ]),
        ] {
            let e = run.unwrap_err();
            assert!(e.contains(says), "{receiver}: {e}");
            assert!(!e.contains('\n'), "{e}");
            assert!(!e.contains("s3cr3t"), "{e}");
        }
    }
}

/// The base64 of `pem`'s body, and whether any 12 consecutive characters of it are in `text`.
fn leaks(text: &str, pem: &str) -> bool {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let b64: Vec<char> = b64.chars().collect();
    b64.windows(12)
        .any(|w| text.contains(&w.iter().collect::<String>()))
}

fn refused(file: &str) -> String {
    let e = risc(
        &[
            "register",
            "--credentials",
            "sa.json",
            "--receiver",
            RECEIVER,
        ],
        file,
    )
    .err()
    .unwrap_or_else(|| panic!("accepted: {file}"));
    assert!(e.starts_with("sa.json: "), "{e}");
    assert!(!e.contains('\n'), "{e}");
    assert!(!leaks(&e, &pem()), "{e}");
    let verify = risc(&["verify", "--credentials", "sa.json"], file).unwrap_err();
    assert_eq!(verify, e);
    e
}

fn without(field: &str) -> String {
    let mut file = key_file_with(&pem());
    file.as_object_mut().unwrap().remove(field);
    file.to_string()
}

fn with(field: &str, value: Value) -> String {
    let mut file = key_file_with(&pem());
    file[field] = value;
    file.to_string()
}

#[test]
fn key_files_refused() {
    for field in ["client_email", "private_key_id", "private_key"] {
        assert!(refused(&without(field)).contains(field));
        assert!(refused(&with(field, json!(""))).contains(field));
        assert!(refused(&with(field, json!("  "))).contains(field));
        assert!(refused(&with(field, json!(42))).contains(field));
    }
    assert!(refused(&without("type")).contains("service_account"));
    let user = refused(&with("type", json!("authorized_user")));
    assert!(user.contains("authorized_user"), "{user}");
    assert!(refused(&with("type", json!("Service_Account"))).contains("service_account"));
    assert!(refused("").contains("JSON"));
    assert!(refused("[1, 2]").contains("JSON object"));
    // A syntax error after the key: only its position is told.
    let broken = key_file().replacen("\"type\"", "type", 1);
    assert!(refused(&broken).contains("line 1"));
    let e = run(
        &Command::Verify {
            credentials: "missing.json".into(),
            state: None,
        },
        now(),
        |_| Err("No such file or directory (os error 2)".into()),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "cannot read missing.json: No such file or directory (os error 2)"
    );
}

#[test]
fn private_keys_refused() {
    let pem = pem();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    // No PEM armour: the bare base64 of the key.
    let e = refused(&key_file_with(&body).to_string());
    assert!(e.contains("not a PEM private key"), "{e}");
    let e = refused(&key_file_with("not a key").to_string());
    assert!(e.contains("not a PEM private key"), "{e}");
    // PKCS#1 armour.
    let pkcs1 = key().to_pkcs1_pem(LineEnding::LF).unwrap().to_string();
    let e = refused(&key_file_with(&pkcs1).to_string());
    assert!(e.contains("PKCS#1"), "{e}");
    assert!(!leaks(&e, &pkcs1), "{e}");
    // PKCS#8 armour around a truncated key.
    let lines: Vec<&str> = pem.lines().collect();
    let truncated = [&lines[..5], &lines[lines.len() - 1..]].concat().join("\n");
    let e = refused(&key_file_with(&truncated).to_string());
    assert!(e.contains("does not parse"), "{e}");
    // PKCS#8 armour, PKCS#8 structure, another algorithm (the RSA OID's last arc changed).
    let mut der = key().to_pkcs8_der().unwrap().as_bytes().to_vec();
    let oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let at = der.windows(oid.len()).position(|w| w == oid).unwrap();
    der[at + oid.len() - 1] = 0x02;
    let other = rsa::pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &der).unwrap();
    let e = refused(&key_file_with(&other).to_string());
    assert!(e.contains("not an RSA key"), "{e}");
    assert!(!leaks(&e, &other), "{e}");
    // A 1024-bit RSA key: parsed, but too short for RS256 here.
    let short = RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024)
        .unwrap()
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap()
        .to_string();
    let e = refused(&key_file_with(&short).to_string());
    assert!(e.contains("size"), "{e}");
    assert!(!leaks(&e, &short), "{e}");
}

#[test]
fn sh_quote_escapes_single_quotes() {
    assert_eq!(sh_quote("a"), "'a'");
    assert_eq!(sh_quote(""), "''");
    assert_eq!(sh_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_words(&sh_quote("'a'' b '")), ["'a'' b '"]);
}
