//! Command line and environment.

/// How to run the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// The one OAuth client this provider knows.
    pub client_id: String,
    pub client_secret: String,
    /// `iss` and base of the endpoint URLs; `None` means `http://HOST:PORT`.
    pub issuer: Option<String>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Config),
    Help,
}

/// The flags, as clap reads them; the environment fills in what they leave out ([`parse`]).
#[derive(clap::Parser, Debug)]
#[command(
    name = "gatehouse-idp",
    about = "Local Google-compatible OpenID Connect provider for development and tests. Not Google.",
    after_help = AFTER_HELP
)]
struct Args {
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long, value_name = "HOST")]
    host: Option<String>,
    /// Port; 0 picks a free one [default: 0; env IDP_PORT]
    #[arg(long, value_name = "N")]
    port: Option<String>,
    /// The OAuth client id it accepts [env IDP_CLIENT_ID]
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    /// That client's secret [env IDP_CLIENT_SECRET]
    #[arg(long, value_name = "SECRET")]
    client_secret: Option<String>,
    /// `iss` and endpoint base [default: http://HOST:PORT]
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
}

const AFTER_HELP: &str = "\
Prints `gatehouse-idp listening on http://HOST:PORT` to stdout when ready.

For tests: test_email=… on the authorization request approves at once, test_twist=NAME makes that
sign-in hostile (bad ID token or token response), /_control/ (rotate, jwks, jwks_max_age,
reset, stats, twists) changes the whole provider, and POST /_control/risc makes (and pushes)
RISC security event tokens. The crate docs (src/lib.rs) list them all.";

/// The help text (`--help`).
pub fn usage() -> String {
    <Args as clap::CommandFactory>::command()
        .render_help()
        .to_string()
}

/// Parses the arguments (without the program name); `env` reads environment variables, which
/// fill in what the flags leave out.
pub fn parse<I, F>(args: I, env: F) -> Result<Command, String>
where
    I: IntoIterator<Item = String>,
    F: Fn(&str) -> Option<String>,
{
    let args = std::iter::once("gatehouse-idp".to_owned()).chain(args);
    let Args {
        host,
        port,
        client_id,
        client_secret,
        issuer,
    } = match <Args as clap::Parser>::try_parse_from(args) {
        Ok(args) => args,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => return Ok(Command::Help),
        Err(e) => return Err(e.render().to_string().trim_end().to_owned()),
    };

    let port = match port.or_else(|| env("IDP_PORT")) {
        None => 0,
        Some(p) => p
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("invalid port `{p}`"))?,
    };
    let client_id = client_id
        .or_else(|| env("IDP_CLIENT_ID"))
        .filter(|s| !s.is_empty())
        .ok_or("--client-id (or IDP_CLIENT_ID) is required")?;
    let client_secret = client_secret
        .or_else(|| env("IDP_CLIENT_SECRET"))
        .filter(|s| !s.is_empty())
        .ok_or("--client-secret (or IDP_CLIENT_SECRET) is required")?;
    let issuer = issuer.map(|i| check_issuer(&i)).transpose()?;
    Ok(Command::Run(Config {
        host: host.unwrap_or_else(|| "127.0.0.1".to_owned()),
        port,
        client_id,
        client_secret,
        issuer,
    }))
}

/// An issuer is an `http`/`https` URL without query or fragment (OpenID Connect Discovery 1.0,
/// section 3); a trailing `/` is dropped so endpoint URLs can be appended.
fn check_issuer(issuer: &str) -> Result<String, String> {
    let bad =
        || format!("invalid issuer `{issuer}`: need an http(s) URL without query or fragment");
    let url = url::Url::parse(issuer).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.has_host()
    {
        return Err(bad());
    }
    Ok(issuer.trim_end_matches('/').to_owned())
}

/// `host:port` as it appears in a URL (IPv6 addresses in brackets).
pub fn url_authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn flags_and_defaults() {
        let cmd = parse(args(&["--client-id", "cid", "--client-secret=sec"]), no_env).unwrap();
        assert_eq!(
            cmd,
            Command::Run(Config {
                host: "127.0.0.1".into(),
                port: 0,
                client_id: "cid".into(),
                client_secret: "sec".into(),
                issuer: None,
            })
        );
        let cmd = parse(
            args(&[
                "--port",
                "9000",
                "--client-id",
                "a",
                "--client-secret",
                "b",
                "--issuer",
                "http://idp.test:9000/",
            ]),
            no_env,
        )
        .unwrap();
        let Command::Run(cfg) = cmd else {
            panic!("expected run")
        };
        assert_eq!(cfg.port, 9000);
        assert_eq!(cfg.issuer.as_deref(), Some("http://idp.test:9000"));
        assert_eq!(parse(args(&["--help"]), no_env).unwrap(), Command::Help);
    }

    #[test]
    fn env_fills_in_and_flags_win() {
        let env = |k: &str| match k {
            "IDP_PORT" => Some("8123".to_owned()),
            "IDP_CLIENT_ID" => Some("env-id".to_owned()),
            "IDP_CLIENT_SECRET" => Some("env-secret".to_owned()),
            _ => None,
        };
        let Command::Run(cfg) = parse(args(&["--client-id", "flag-id"]), env).unwrap() else {
            panic!("expected run")
        };
        assert_eq!(cfg.port, 8123);
        assert_eq!(cfg.client_id, "flag-id");
        assert_eq!(cfg.client_secret, "env-secret");
    }

    #[test]
    fn errors() {
        assert!(parse(args(&["--client-secret", "s"]), no_env).is_err());
        assert!(parse(args(&["--client-id", "c"]), no_env).is_err());
        assert!(
            parse(
                args(&["--client-id", "c", "--client-secret", "s", "--port", "x"]),
                no_env
            )
            .is_err()
        );
        assert!(
            parse(
                args(&["--client-id", "c", "--client-secret", "s", "--bogus"]),
                no_env
            )
            .is_err()
        );
        assert!(parse(args(&["--client-id"]), no_env).is_err());
        assert!(
            parse(
                args(&[
                    "--client-id",
                    "c",
                    "--client-secret",
                    "s",
                    "--issuer",
                    "ftp://x"
                ]),
                no_env
            )
            .is_err()
        );
        assert!(
            parse(
                args(&[
                    "--client-id",
                    "c",
                    "--client-secret",
                    "s",
                    "--issuer",
                    "http://x/?a"
                ]),
                no_env
            )
            .is_err()
        );
    }

    #[test]
    fn authority() {
        assert_eq!(url_authority("127.0.0.1", 80), "127.0.0.1:80");
        assert_eq!(url_authority("::1", 80), "[::1]:80");
    }
}
