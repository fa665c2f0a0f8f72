//! `gatehouse risc …`: the requests that register the worker's Cross-Account Protection (RISC)
//! receiver, `POST /auth/risc`, with Google, written out as `curl` commands for the operator to
//! run. Nothing is sent from here (this command needs no network).
//!
//! Google's RISC API is authorised with a JWT the service account signs itself (RS256, `kid` the
//! key's `private_key_id`, `iss` = `sub` = `client_email`, `aud` the RISC management service, one
//! hour of validity); the service account needs the "RISC Configuration Admin" role. See
//! <https://developers.google.com/identity/protocols/risc> and docs/risc.md.
//!
//! The private key is never printed, whole or in part: the errors about it name the field and the
//! kind of problem only, and nothing that holds the key derives `Debug`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::{Rsa, StrongAlg, StrongKey};
use jwt_compact::{AlgorithmExt as _, Claims, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey as _;
use serde_json::{Map, Value, json};
use url::{Host, Url};

/// The worker's receiver path: the only path `--receiver` may have.
pub const RECEIVER_PATH: &str = "/auth/risc";
/// The `aud` of the self-signed token.
pub const AUDIENCE: &str =
    "https://risc.googleapis.com/google.identity.risc.v1beta.RiscManagementService";
/// Registers (or replaces) the project's event stream.
pub const UPDATE_URL: &str = "https://risc.googleapis.com/v1beta/stream:update";
/// Asks Google to push a `verification` event to the registered receiver.
pub const VERIFY_URL: &str = "https://risc.googleapis.com/v1beta/stream:verify";
/// Push delivery (RFC 8935).
pub const PUSH_DELIVERY: &str = "https://schemas.openid.net/secevent/risc/delivery-method/push";
/// The events the receiver asks for.
pub const EVENTS: [&str; 6] = [
    "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked",
    "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked",
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled",
    "https://schemas.openid.net/secevent/risc/event-type/account-enabled",
    "https://schemas.openid.net/secevent/risc/event-type/account-credential-change-required",
    "https://schemas.openid.net/secevent/risc/event-type/verification",
];
/// How long the bearer token is valid (Google accepts at most an hour).
pub const TOKEN_LIFETIME: Duration = Duration::hours(1);

pub const AFTER_HELP: &str = "\
The commands build the requests and print them as curl commands; they send nothing.
You need a Google Cloud service account with the role \"RISC Configuration Admin\" (in the
project of the OAuth client) and its JSON key file, and the RISC API enabled in that project.

  gatehouse risc register --credentials sa.json --receiver https://example.com/auth/risc | sh
  gatehouse risc verify --credentials sa.json | sh
      then look for a risc_verification line with the printed state in the worker's log
      (npx wrangler tail)
  gatehouse risc body --receiver https://example.com/auth/risc

The bearer token in a printed command expires an hour after it is made. See docs/risc.md.";

/// `gatehouse risc`'s subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Print a curl command that registers the --receiver URL as the project's RISC receiver
    /// (POST stream:update, with a bearer token valid one hour)
    Register {
        /// The service account's JSON key file (role "RISC Configuration Admin")
        #[arg(long, value_name = "PATH")]
        credentials: PathBuf,
        /// The worker's receiver: https://HOST/auth/risc (http only for localhost/127.0.0.1)
        #[arg(long, value_name = "URL")]
        receiver: String,
    },
    /// Print a curl command that asks Google to send a verification event to the registered
    /// receiver (POST stream:verify); the worker logs it as a risc_verification line
    Verify {
        /// The service account's JSON key file (role "RISC Configuration Admin")
        #[arg(long, value_name = "PATH")]
        credentials: PathBuf,
        /// The state the event carries [default: 16 random hex digits, printed on stderr]
        #[arg(long, value_name = "TEXT")]
        state: Option<String>,
    },
    /// Print the JSON body of the registration only (for your own tooling; no credentials)
    Body {
        /// The worker's receiver: https://HOST/auth/risc (http only for localhost/127.0.0.1)
        #[arg(long, value_name = "URL")]
        receiver: String,
    },
}

/// What a command prints: `stdout`, and a line for stderr.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub note: Option<String>,
}

/// Runs a command at `now`; `read` reads the credentials file.
pub fn run(
    command: &Command,
    now: DateTime<Utc>,
    read: impl FnOnce(&Path) -> Result<String, String>,
) -> Result<Output, String> {
    match command {
        Command::Body { receiver } => Ok(Output {
            stdout: serde_json::to_string_pretty(&registration_body(&Receiver::parse(receiver)?))
                .map_err(|e| e.to_string())?,
            note: None,
        }),
        Command::Register {
            credentials,
            receiver,
        } => {
            // The receiver first: a typo there needs no key file.
            let receiver = Receiver::parse(receiver)?;
            let creds = Credentials::load(credentials, read)?;
            let token = bearer_token(&creds, now)?;
            let body = registration_body(&receiver).to_string();
            Ok(Output {
                stdout: curl(UPDATE_URL, &token, &body),
                note: Some(format!(
                    "a curl command that registers {} as the RISC receiver of {}'s project \
                     (POST stream:update); its bearer token expires in an hour, at {}",
                    receiver.as_str(),
                    creds.client_email,
                    expiry(now)
                )),
            })
        }
        Command::Verify { credentials, state } => {
            let state = match state {
                Some(s) if s.is_empty() => return Err("--state must not be empty".into()),
                Some(s) => s.clone(),
                None => random_state()?,
            };
            let creds = Credentials::load(credentials, read)?;
            let token = bearer_token(&creds, now)?;
            let body = json!({ "state": state }).to_string();
            Ok(Output {
                stdout: curl(VERIFY_URL, &token, &body),
                note: Some(format!(
                    "a curl command that asks Google to send a verification event with state \
                     {state:?} to {}'s registered receiver (look for it in a risc_verification \
                     line of the worker's log); its bearer token expires in an hour, at {}",
                    creds.client_email,
                    expiry(now)
                )),
            })
        }
    }
}

fn expiry(now: DateTime<Utc>) -> String {
    (now + TOKEN_LIFETIME)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// 16 random hex digits.
fn random_state() -> Result<String, String> {
    Ok(crate::random::<8>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A receiver URL that passed [`Receiver::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver(Url);

impl Receiver {
    /// An absolute `https` URL (or `http` to localhost, 127.0.0.1 or [::1]) whose path is exactly
    /// `/auth/risc`, with no query, fragment, user name or password. The errors do not repeat
    /// the input (it may hold a password).
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = Url::parse(s).map_err(|e| {
            format!("--receiver is not an absolute URL ({e}); expected https://HOST{RECEIVER_PATH}")
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("--receiver must not hold a user name or password".into());
        }
        let loopback = match url.host() {
            Some(Host::Domain(d)) => d == "localhost",
            Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
            Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
            None => {
                return Err(format!(
                    "--receiver has no host; expected https://HOST{RECEIVER_PATH}"
                ));
            }
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(
                    "--receiver must use https (http is allowed only for localhost and \
                     127.0.0.1, for local tests)"
                        .into(),
                );
            }
            other => return Err(format!("--receiver must be an https URL, not {other}:")),
        }
        if url.path() != RECEIVER_PATH {
            return Err(format!(
                "--receiver's path is {:?}; the worker's receiver is {RECEIVER_PATH}",
                url.path()
            ));
        }
        if url.query().is_some() {
            return Err("--receiver must have no query string (nothing after ?)".into());
        }
        if url.fragment().is_some() {
            return Err("--receiver must have no fragment (nothing after #)".into());
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// The body of `stream:update`: push delivery to the receiver, and the events it handles.
pub fn registration_body(receiver: &Receiver) -> Value {
    json!({
        "delivery": { "delivery_method": PUSH_DELIVERY, "url": receiver.as_str() },
        "events_requested": EVENTS,
    })
}

/// What the token needs from a service account key file. No `Debug`: it holds the key.
pub struct Credentials {
    pub client_email: String,
    pub private_key_id: String,
    key: StrongKey<RsaPrivateKey>,
}

impl Credentials {
    /// Reads and parses the key file; errors start with the file's path.
    pub fn load(
        path: &Path,
        read: impl FnOnce(&Path) -> Result<String, String>,
    ) -> Result<Self, String> {
        let text = read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A Google service account key file: `type` `service_account`, non-empty `client_email` and
    /// `private_key_id`, and `private_key` an RSA key of 2048, 3072 or 4096 bits in PKCS#8 PEM.
    pub fn parse(text: &str) -> Result<Self, String> {
        // Only the position of a syntax error: serde_json's messages can quote the input.
        let doc: Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a JSON service account key file (syntax error at line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let Some(doc) = doc.as_object() else {
            return Err("not a service account key file (not a JSON object)".into());
        };
        match doc.get("type") {
            Some(Value::String(t)) if t == "service_account" => {}
            Some(Value::String(t))
                if !t.is_empty()
                    && t.len() <= 40
                    && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                return Err(format!(
                    "not a service account key file (type is {t:?}, expected \"service_account\")"
                ));
            }
            _ => {
                return Err(
                    "not a service account key file (no \"type\": \"service_account\")".into(),
                );
            }
        }
        let field = |name: &str| match doc.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            _ => Err(format!("the field {name:?} is missing or empty")),
        };
        let client_email = field("client_email")?;
        let private_key_id = field("private_key_id")?;
        let pem = match doc.get("private_key") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
            _ => return Err("the field \"private_key\" is missing or empty".into()),
        };
        Ok(Self {
            client_email,
            private_key_id,
            key: parse_key(pem)?,
        })
    }
}

/// The key, or an error that describes the problem without quoting the key.
fn parse_key(pem: &str) -> Result<StrongKey<RsaPrivateKey>, String> {
    const EXPECTED: &str = "expected a PKCS#8 RSA key, -----BEGIN PRIVATE KEY-----, as in \
                            Google's key files";
    if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
        return Err(format!("\"private_key\" is a PKCS#1 key; {EXPECTED}"));
    }
    if pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(format!("\"private_key\" is encrypted; {EXPECTED}"));
    }
    if !pem.starts_with("-----BEGIN PRIVATE KEY-----") {
        return Err(format!(
            "\"private_key\" is not a PEM private key; {EXPECTED}"
        ));
    }
    let key = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| match e {
        rsa::pkcs8::Error::PublicKey(rsa::pkcs8::spki::Error::OidUnknown { .. }) => {
            format!("\"private_key\" is not an RSA key; {EXPECTED}")
        }
        _ => format!("\"private_key\" does not parse; {EXPECTED}"),
    })?;
    StrongKey::try_from(key).map_err(|_| {
        "\"private_key\" is an RSA key of an unsupported size (RS256 here takes 2048, 3072 or \
         4096 bits)"
            .to_owned()
    })
}

/// The self-signed RS256 token for the RISC API, valid [`TOKEN_LIFETIME`] from `now`.
pub fn bearer_token(creds: &Credentials, now: DateTime<Utc>) -> Result<String, String> {
    let header = Header::empty()
        .with_key_id(creds.private_key_id.clone())
        .with_token_type("JWT");
    let mut custom = Map::new();
    custom.insert("iss".into(), creds.client_email.clone().into());
    custom.insert("sub".into(), creds.client_email.clone().into());
    custom.insert("aud".into(), AUDIENCE.into());
    let mut claims = Claims::new(custom);
    claims.issued_at = Some(now);
    claims.expiration = Some(now + TOKEN_LIFETIME);
    StrongAlg(Rsa::rs256())
        .token(&header, &claims, &creds.key)
        .map_err(|e| format!("signing the token failed: {e}"))
}

/// `s` as one POSIX shell word: in single quotes, each `'` written as `'\''`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A `curl` command that POSTs the JSON `body` to `url` with the bearer `token`, and prints the
/// response and its status.
pub fn curl(url: &str, token: &str, body: &str) -> String {
    [
        format!("curl -sS -X POST {}", sh_quote(url)),
        format!("-H {}", sh_quote(&format!("Authorization: Bearer {token}"))),
        format!("-H {}", sh_quote("Content-Type: application/json")),
        format!("--data-raw {}", sh_quote(body)),
        format!("-w {}", sh_quote(r"\nHTTP %{http_code}\n")),
    ]
    .join(" \\\n  ")
}

#[cfg(test)]
mod tests;
