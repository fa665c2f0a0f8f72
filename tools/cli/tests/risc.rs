//! `gatehouse risc` as the operator runs it: what goes to stdout and stderr, and the exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rsa::RsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};
use serde_json::json;

const RECEIVER: &str = "https://app.example.com/auth/risc";

fn gatehouse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .output()
        .unwrap()
}

/// A directory of this test process's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-risc-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn key_file(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.0.join(name);
        let file = json!({
            "type": "service_account",
            "project_id": "my-project",
            "private_key_id": "abc123",
            "private_key": pem,
            "client_email": "risc-admin@my-project.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token"
        });
        std::fs::write(&path, file.to_string()).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// Exit code 2, nothing on stdout, one `gatehouse risc:` line on stderr.
fn assert_refused(out: &Output) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(err.starts_with("gatehouse risc: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn register_prints_a_command_on_stdout_and_one_line_on_stderr() {
    let dir = TempDir::new("ok");
    let pem = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
        .unwrap()
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap()
        .to_string();
    let file = dir.key_file("sa.json", &pem);
    let out = gatehouse(&[
        "risc",
        "register",
        "--credentials",
        path(&file),
        "--receiver",
        RECEIVER,
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("curl -sS -X POST 'https://risc.googleapis.com/v1beta/stream:update'"),
        "{stdout}"
    );
    assert!(stdout.contains("'Authorization: Bearer ey"), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("expires in an hour"), "{stderr}");

    let out = gatehouse(&["risc", "verify", "--credentials", path(&file)]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("stream:verify"));
    assert!(text(&out.stderr).contains("risc_verification"));
}

#[test]
fn refusals_exit_2_with_one_line_and_no_key() {
    let dir = TempDir::new("refused");
    let out = assert_refused(&gatehouse(&[
        "risc",
        "body",
        "--receiver",
        "http://app.example.com/auth/risc",
    ]));
    assert!(out.contains("https"), "{out}");
    assert_refused(&gatehouse(&[
        "risc",
        "body",
        "--receiver",
        "https://app.example.com/auth/risc?x",
    ]));

    // Key material under PKCS#8 armour that does not parse: the error quotes none of it.
    let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n\
                MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu";
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
    let file = dir.key_file("bad.json", &pem);
    let err = assert_refused(&gatehouse(&[
        "risc",
        "register",
        "--credentials",
        path(&file),
        "--receiver",
        RECEIVER,
    ]));
    assert!(err.contains("private_key"), "{err}");
    for line in body.lines() {
        for part in line.as_bytes().chunks(8) {
            assert!(!err.contains(std::str::from_utf8(part).unwrap()), "{err}");
        }
    }

    let missing = dir.0.join("missing.json");
    let err = assert_refused(&gatehouse(&[
        "risc",
        "verify",
        "--credentials",
        path(&missing),
    ]));
    assert!(err.contains("cannot read"), "{err}");

    // Usage errors are clap's, with its exit code 2.
    assert_eq!(gatehouse(&["risc"]).status.code(), Some(2));
    assert_eq!(
        gatehouse(&["risc", "register", "--receiver", RECEIVER])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn help_says_what_the_operator_needs() {
    let out = gatehouse(&["risc", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needed in [
        "register",
        "verify",
        "body",
        "RISC Configuration Admin",
        "docs/risc.md",
    ] {
        assert!(help.contains(needed), "{needed} not in {help}");
    }
}
