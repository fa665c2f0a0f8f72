//! `gatehouse`: the site owner's command line.
//!
//! ```text
//! gatehouse keygen [--alg hs256|eddsa] [--kid ID]            print a new SESSION_KEYS JWK Set
//! gatehouse keygen --rotate [--alg …] [--kid ID] < old.json  print old.json with a new first key
//! gatehouse users list|set-role|disable|enable|revoke …      manage users on local or remote D1
//! gatehouse check [--config wrangler.toml]                    refuse Static Assets settings that expose protected files
//! gatehouse risc register|verify|body …                       curl commands that register the RISC receiver with Google
//! ```

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::session::keys::KeySet;
use jwt_compact::jwk::JsonWebKey;
use serde_json::{Value, json};

mod check;
mod risc;
mod users;
mod wrangler;

/// `gatehouse`: the site owner's command line.
#[derive(clap::Parser, Debug)]
#[command(
    name = "gatehouse",
    about = "Gatehouse's command line: session keys, users on D1, a check of the assets settings, \
             and the RISC receiver's registration with Google",
    after_help = AFTER_HELP
)]
enum Cli {
    /// Print a new SESSION_KEYS JWK Set (with --rotate: the set on stdin with a new first key)
    Keygen(KeygenArgs),
    /// Manage users on local or remote D1: list, set-role, disable, enable, revoke (see
    /// `gatehouse users --help`)
    #[command(disable_help_flag = true)]
    Users {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Refuse [assets] settings that would serve protected files
    Check {
        /// The wrangler configuration file
        #[arg(long, value_name = "PATH", default_value = "wrangler.toml")]
        config: PathBuf,
    },
    /// Print curl commands that register the worker's RISC receiver (/auth/risc) with Google
    /// and ask for a test event; nothing is sent
    #[command(after_help = risc::AFTER_HELP)]
    Risc {
        #[command(subcommand)]
        command: risc::Command,
    },
}

const AFTER_HELP: &str = "\
Store the keygen output as a secret: gatehouse keygen | npx wrangler secret put SESSION_KEYS
The first admin: sign in once, then gatehouse users set-role you@example.com admin --remote
(or list the email in ADMIN_EMAILS).";

#[derive(clap::Args, Debug)]
struct KeygenArgs {
    /// The new key's algorithm
    #[arg(long, value_enum, ignore_case = true, default_value = "hs256")]
    alg: Alg,
    /// The new key's id [default: k- and 8 random characters]
    #[arg(long, value_name = "ID")]
    kid: Option<String>,
    /// Read a JWK Set on stdin and print it with the new key first
    #[arg(long)]
    rotate: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Alg {
    Hs256,
    #[value(name = "eddsa", alias = "ed25519")]
    EdDsa,
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| format!("no random source: {e}"))?;
    Ok(buf)
}

/// A new key: 32 random bytes for HS256 (RFC 7518 3.2: at least the hash size), or an
/// Ed25519 key pair from a 32-byte random seed.
fn new_key(alg: Alg, kid: &str) -> Result<Value, String> {
    let mut jwk = match alg {
        Alg::Hs256 => json!({ "kty": "oct", "k": URL_SAFE_NO_PAD.encode(random::<32>()?) }),
        Alg::EdDsa => {
            let pair =
                ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(random::<32>()?));
            serde_json::to_value(JsonWebKey::from(&pair.sk)).map_err(|e| e.to_string())?
        }
    };
    let map = jwk.as_object_mut().ok_or("a JWK is an object")?;
    map.insert("kid".into(), kid.into());
    map.insert(
        "alg".into(),
        if alg == Alg::Hs256 { "HS256" } else { "EdDSA" }.into(),
    );
    map.insert("use".into(), "sig".into());
    Ok(jwk)
}

fn default_kid() -> Result<String, String> {
    Ok(format!("k-{}", URL_SAFE_NO_PAD.encode(random::<6>()?)))
}

fn keygen(
    args: &KeygenArgs,
    stdin: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    let KeygenArgs { alg, kid, rotate } = args;
    let (alg, kid, rotate) = (*alg, kid.clone(), *rotate);
    let mut keys: Vec<Value> = if rotate {
        let old: Value = serde_json::from_str(&stdin()?)
            .map_err(|_| "stdin is not JSON (expected a JWK Set)")?;
        old.get("keys")
            .and_then(Value::as_array)
            .cloned()
            .ok_or("stdin is not a JWK Set: no \"keys\" array")?
    } else {
        Vec::new()
    };
    let kid = match kid {
        Some(k) => k,
        None => default_kid()?,
    };
    if keys
        .iter()
        .any(|k| k.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
    {
        return Err(format!("kid {kid:?} is already in the set"));
    }
    keys.insert(0, new_key(alg, &kid)?);
    let set = json!({ "keys": keys }).to_string();
    // What the worker will read: its own parser checks every key before anything is printed.
    KeySet::from_jwk_set(&set)
        .map_err(|problems| format!("the new key set would be refused: {}", problems.join("; ")))?;
    Ok(set)
}

fn users_main(args: &[String]) -> ExitCode {
    let result = match std::env::current_dir() {
        Ok(cwd) => {
            let program = wrangler::locate(&cwd);
            users::run(args, |a| {
                wrangler::retry_busy(|| wrangler::run(&program, a), std::thread::sleep)
            })
        }
        Err(e) => Err(users::Failure::Wrangler(format!(
            "no current directory ({e})"
        ))),
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("gatehouse users: {}", f.message());
            ExitCode::from(f.exit_code())
        }
    }
}

fn risc_main(command: &risc::Command) -> ExitCode {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| chrono::DateTime::from_timestamp(i64::try_from(d.as_secs()).ok()?, 0));
    let result = match now {
        Some(now) => risc::run(command, now, |path| {
            std::fs::read_to_string(path).map_err(|e| e.to_string())
        }),
        None => Err("the system clock is before 1970".into()),
    };
    match result {
        Ok(out) => {
            println!("{}", out.stdout);
            if let Some(note) = out.note {
                eprintln!("gatehouse risc: {note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gatehouse risc: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse() {
        Cli::Keygen(args) => keygen(&args, || {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("reading stdin: {e}"))?;
            Ok(s)
        }),
        Cli::Users { args } => return users_main(&args),
        Cli::Risc { command } => return risc_main(&command),
        Cli::Check { config } => match check::main(&config) {
            Ok(out) => Ok(out),
            Err(e) => {
                eprintln!("gatehouse check: {e}");
                return ExitCode::from(1);
            }
        },
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{Args as _, FromArgMatches as _};

    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    /// `gatehouse keygen ARGS…`.
    fn keygen(
        a: &[String],
        stdin: impl FnOnce() -> Result<String, String>,
    ) -> Result<String, String> {
        let args = KeygenArgs::from_arg_matches(
            &KeygenArgs::augment_args(clap::Command::new("keygen"))
                .try_get_matches_from(std::iter::once("keygen".to_owned()).chain(a.iter().cloned()))
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        super::keygen(&args, stdin)
    }

    fn no_stdin() -> Result<String, String> {
        panic!("stdin read without --rotate")
    }

    #[test]
    fn hs256_key_is_32_random_bytes_with_kid_and_alg() {
        let a: Value =
            serde_json::from_str(&keygen(&args(&["--kid", "one"]), no_stdin).unwrap()).unwrap();
        let b: Value = serde_json::from_str(&keygen(&args(&[]), no_stdin).unwrap()).unwrap();
        let key = &a["keys"][0];
        assert_eq!(
            (
                key["kty"].as_str(),
                key["alg"].as_str(),
                key["kid"].as_str()
            ),
            (Some("oct"), Some("HS256"), Some("one"))
        );
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(key["k"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_ne!(a["keys"][0]["k"], b["keys"][0]["k"]);
        assert_ne!(b["keys"][0]["kid"], "one");
    }

    #[test]
    fn eddsa_key_has_matching_private_and_public_parts() {
        let set: Value =
            serde_json::from_str(&keygen(&args(&["--alg", "eddsa"]), no_stdin).unwrap()).unwrap();
        let key = &set["keys"][0];
        assert_eq!(
            (
                key["kty"].as_str(),
                key["crv"].as_str(),
                key["alg"].as_str()
            ),
            (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
        );
        let jwk: JsonWebKey<'_> = serde_json::from_value(key.clone()).unwrap();
        let sk = ed25519_compact::SecretKey::try_from(&jwk).expect("d matches x");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap(),
            sk.public_key().to_vec()
        );
    }

    #[test]
    fn rotate_puts_a_new_key_first_and_keeps_the_old_ones() {
        let old = keygen(&args(&["--kid", "old"]), no_stdin).unwrap();
        let new: Value = serde_json::from_str(
            &keygen(&args(&["--rotate", "--kid", "new"]), || Ok(old.clone())).unwrap(),
        )
        .unwrap();
        let kids: Vec<_> = new["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, ["new", "old"]);
        let old: Value = serde_json::from_str(&old).unwrap();
        assert_eq!(new["keys"][1], old["keys"][0]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(keygen(&args(&["--rotate"]), || Ok("nope".into())).is_err());
        assert!(keygen(&args(&["--rotate"]), || Ok("{}".into())).is_err());
        assert!(keygen(&args(&["--alg", "rs256"]), no_stdin).is_err());
        assert!(keygen(&args(&["--kid"]), no_stdin).is_err());
        // Checked by the worker's own parser before printing: an empty kid is refused there.
        let empty = keygen(&args(&["--kid", ""]), no_stdin).unwrap_err();
        assert!(empty.contains("would be refused"), "{empty}");
        let old = keygen(&args(&["--kid", "k"]), no_stdin).unwrap();
        assert!(keygen(&args(&["--rotate", "--kid", "k"]), || Ok(old.clone())).is_err());
    }
}
