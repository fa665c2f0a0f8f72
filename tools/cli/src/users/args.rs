//! The arguments of `gatehouse users`: the validated values written into SQL, and clap's parse.

use super::{Action, Command, Failure, usage};
use crate::wrangler::Target;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 10_000;

// ---------------------------------------------------------------------------------------------
// Validated values: the only things that are ever written into SQL.

/// An email address as users are looked up by: the worker's own canonical form
/// ([`gatehouse::oidc::canonical_email`]: trimmed, lowercased, one `@` with something on both
/// sides, printable ASCII without spaces), and, because it is written into SQL, without quotes,
/// backslashes or semicolons. So nothing that could end a string literal or a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(pub(super) String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Err("EMAIL is empty".into());
        }
        let refuse = |why: &str| {
            Err(format!(
                "{:?} is not an email address we accept: {why}",
                raw.trim()
            ))
        };
        let Some(email) = gatehouse::oidc::canonical_email(raw) else {
            return refuse("need one @ with something on both sides, printable ASCII, no spaces");
        };
        if email.contains(['\'', '"', '\\', ';']) {
            return refuse("no quotes, backslashes or semicolons");
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A role name, as [`gatehouse::admin::is_role_name`] accepts: `[A-Za-z0-9_-]{1,32}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role(pub(super) String);

impl Role {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if gatehouse::admin::is_role_name(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} is not a role: use 1 to 32 letters, digits, _ or -"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email prefix to search for: trimmed printable ASCII (spaces allowed) without the `LIKE`
/// wildcards `%` and `_`, quotes or backslashes, at most 254 characters. Empty means no search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search(pub(super) String);

impl Search {
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if s.len() > 254 {
            return Err("--search text is longer than 254 characters".into());
        }
        let ok = |c: char| (' '..='~').contains(&c) && !"%_'\"\\".contains(c);
        if !s.chars().all(ok) {
            return Err(format!(
                "--search {s:?}: use printable ASCII without %, _, quotes or backslashes \
                 (search for the part before such a character)"
            ));
        }
        Ok(Some(Self(s.to_owned())))
    }
}

/// `gatehouse users …` as clap reads it; [`parse_args`] turns it into a [`Command`].
#[derive(clap::Parser, Debug)]
#[command(
    name = "gatehouse users",
    bin_name = "gatehouse users",
    disable_help_subcommand = true
)]
struct UsersArgs {
    /// The local database of `wrangler dev` (the default)
    #[arg(long, global = true, conflicts_with = "remote")]
    local: bool,
    /// The deployed database
    #[arg(long, global = true)]
    remote: bool,
    /// D1 binding or database name
    #[arg(long, global = true, value_parser = database_name)]
    database: Option<String>,
    /// The wrangler configuration file
    #[arg(long, global = true, value_parser = non_empty)]
    config: Option<String>,
    /// Local state directory (with --local)
    #[arg(long, global = true, value_parser = non_empty, conflicts_with = "remote")]
    persist_to: Option<String>,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    List {
        #[arg(long)]
        search: Option<String>,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT)))]
        limit: Option<u32>,
    },
    SetRole {
        #[arg(value_parser = Email::parse)]
        email: Email,
        #[arg(value_parser = Role::parse)]
        role: Role,
    },
    Disable {
        #[arg(value_parser = Email::parse)]
        email: Email,
    },
    Enable {
        #[arg(value_parser = Email::parse)]
        email: Email,
    },
    Revoke {
        #[arg(value_parser = Email::parse)]
        email: Email,
    },
    Help,
    /// Every statement the commands can issue, as JSON (for the tests; runs nothing).
    #[command(hide = true)]
    Statements,
}

/// The subcommands that run SQL, as clap knows them: every one but `help` and the hidden ones.
#[cfg(test)]
pub(super) fn sql_commands() -> Vec<String> {
    <UsersArgs as clap::CommandFactory>::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| c.get_name().to_owned())
        .collect()
}

fn non_empty(v: &str) -> Result<String, String> {
    if v.is_empty() {
        Err("takes a non-empty value".into())
    } else {
        Ok(v.to_owned())
    }
}

/// A D1 binding or database name: 1 to 64 letters, digits, `_` and `-`, not starting with `-`.
fn database_name(db: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&db.len())
        && !db.starts_with('-')
        && db
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(db.to_owned())
    } else {
        Err("a D1 binding or database name is letters, digits, _ and -".into())
    }
}

/// Parses the arguments after `users`.
pub fn parse_args(args: &[String]) -> Result<(Command, Target), Failure> {
    let args = std::iter::once("gatehouse users".to_owned()).chain(args.iter().cloned());
    let parsed = match <UsersArgs as clap::Parser>::try_parse_from(args) {
        Ok(parsed) => parsed,
        // USAGE is the help.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            return Ok((Command::Help, Target::default()));
        }
        Err(e) => {
            let message = e.render().to_string();
            return Err(usage(message.trim_end().trim_start_matches("error: ")));
        }
    };
    let target = Target {
        remote: parsed.remote,
        database: parsed
            .database
            .unwrap_or_else(|| Target::default().database),
        config: parsed.config,
        persist_to: parsed.persist_to,
    };
    let change = |email, action| Command::Change { email, action };
    let command = match parsed.command {
        None | Some(Sub::Help) => Command::Help,
        Some(Sub::List { search, limit }) => Command::List {
            search: search
                .as_deref()
                .map(Search::parse)
                .transpose()
                .map_err(usage)?
                .flatten(),
            limit: limit.unwrap_or(DEFAULT_LIMIT),
        },
        Some(Sub::SetRole { email, role }) => change(email, Action::SetRole(role)),
        Some(Sub::Disable { email }) => change(email, Action::Disable),
        Some(Sub::Enable { email }) => change(email, Action::Enable),
        Some(Sub::Revoke { email }) => change(email, Action::Revoke),
        Some(Sub::Statements) => Command::Statements,
    };
    Ok((command, target))
}
