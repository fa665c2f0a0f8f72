//! `gatehouse users …`: list users, set roles, disable, enable and revoke sessions, on local or
//! remote D1 through `wrangler d1 execute` (see [`crate::wrangler`]).
//!
//! `wrangler d1 execute --command` takes no bound parameters, so the few values a command needs
//! (an email, a role, a search prefix) are written into the SQL as string literals. Each is
//! validated first into a type ([`Email`], [`Role`], [`Search`]) that admits only what must be
//! admitted, and the SQL builders take only those types: raw input never reaches SQL. The
//! literals are then written by [`sql_str`], which would be safe on its own.
//!
//! `gatehouse users statements`, left out of the usage, prints every statement the commands
//! can issue (with example values) as JSON, running nothing: the store contract suite checks
//! each one's query plan on migrated D1 (`tests/e2e/store_contract.test.mjs`).

use gatehouse::store::AdminAction;

use crate::wrangler::{Output, Row};

mod args;
mod format;
mod sql;

use args::{Email, Role, Search, parse_args};
use format::{clean, format_change, format_list, int, text};
use sql::{change_statements, every_statement, list_sql, sql_str};

pub const USAGE: &str = "usage:
  gatehouse users list [--search TEXT] [--limit N]   [D1 options]
  gatehouse users set-role EMAIL ROLE                [D1 options]
  gatehouse users disable EMAIL                      [D1 options]
  gatehouse users enable EMAIL                       [D1 options]
  gatehouse users revoke EMAIL                       [D1 options]

commands:
  list      users ordered by email: email, name, role, created (UTC date), last seen (latest
            session activity, UTC), active sessions (neither revoked nor expired), disabled
              --search TEXT   only emails starting with TEXT (case-insensitive; no %, _ or quotes)
              --limit N       at most N users (default 50, at most 10000)
  set-role  give the user ROLE (letters, digits, _ and -, at most 32 characters), e.g. admin,
            user, or a role named in ROLE_PATHS; admin passes every role check
  disable   lock the user out: signing in is refused and every session of the user is revoked
  enable    let a disabled user sign in again (sessions revoked before stay revoked)
  revoke    end every session of the user (they may sign in again; disable keeps them out);
            a user without live sessions exits with code 1 and nothing is logged

  EMAIL is matched case-insensitively. A user exists from their first sign-in; an unknown EMAIL
  exits with code 1. Sessions already signed in see a change at their next renewal, within
  SESSION_CHECK_INTERVAL (300 s unless configured otherwise). Every change writes an audit_log
  row: action cli:set-role, cli:disable, cli:enable or cli:revoke, target the user id (and the
  role), no actor.
  EMAIL is read as the worker reads emails (trimmed, lowercased, one @, printable ASCII).
  `wrangler d1 execute` has no bound parameters, so values are written into the SQL: an EMAIL
  with quotes, backslashes, semicolons, spaces or more than one @ is refused before anything
  runs.

D1 options:
  --local            the local database of `wrangler dev` (the default)
  --remote           the deployed database (needs `wrangler login` or CLOUDFLARE_API_TOKEN)
  --database DB      D1 binding or database name (default DB)
  --config PATH      the wrangler configuration file (default: wrangler's own lookup)
  --persist-to DIR   local state directory, as `wrangler dev --persist-to DIR` (with --local)

the first admin:
  sign in once (that makes your user), then
      gatehouse users set-role you@example.com admin --remote
  or list your email in ADMIN_EMAILS: those users are admin at every sign-in and renewal,
  whatever their stored role (so to demote one, remove it from ADMIN_EMAILS too).

how it runs: `wrangler d1 execute DB --local|--remote --json --command \"<SQL>\"`, with
  node_modules/.bin/wrangler of the current directory or of the project root (the nearest
  directory above holding wrangler.toml), else `npx wrangler`.

exit codes: 0 done; 1 no user with that email, or nothing to change (revoke of a user without
  live sessions); 2 bad arguments, or wrangler or D1 failed
  (wrangler's own messages are shown).";

/// Why a `users` command did not do its work; [`Failure::exit_code`] is what the process returns.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Bad arguments or input that is refused (nothing was run).
    Usage(String),
    /// No user has that email, or the change would touch nothing (exit code 1).
    NotFound(String),
    /// Wrangler or D1 failed; the message holds what wrangler said.
    Wrangler(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::NotFound(_) => 1,
            Failure::Usage(_) | Failure::Wrangler(_) => 2,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Failure::Usage(m) => format!("{m}\n(see `gatehouse users --help`)"),
            Failure::NotFound(m) | Failure::Wrangler(m) => m.clone(),
        }
    }
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    SetRole(Role),
    Disable,
    Enable,
    Revoke,
}

impl Action {
    /// The worker's admin action for this command on user `user_id`: its audit names and
    /// targets are the command line's too.
    fn admin_action(&self, user_id: String) -> AdminAction {
        match self {
            Action::SetRole(role) => AdminAction::SetRole {
                user_id,
                role: role.as_str().to_owned(),
            },
            Action::Disable => AdminAction::Disable { user_id },
            Action::Enable => AdminAction::Enable { user_id },
            Action::Revoke => AdminAction::RevokeAll { user_id },
        }
    }

    /// The audit log's `action`: `cli:set-role`, `cli:disable`, `cli:enable`, `cli:revoke`.
    fn audit_name(&self) -> &'static str {
        self.admin_action(String::new()).cli_name()
    }

    /// The audit log's `target` as SQL: [`AdminAction::target`] with the user id read in SQL
    /// (`id`) and the rest (` role=ROLE` for set-role) as a literal.
    fn audit_target_sql(&self) -> String {
        let rest = self.admin_action(String::new()).target();
        if rest.is_empty() {
            "id".into()
        } else {
            format!("id || {}", sql_str(&rest))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    List {
        search: Option<Search>,
        limit: u32,
    },
    Change {
        email: Email,
        action: Action,
    },
    /// `gatehouse users statements` (not in the usage: for the tests): every statement the
    /// commands can issue, as JSON, without running any.
    Statements,
}

/// Runs `gatehouse users <args>`; `wrangler` runs wrangler with the given arguments (the real
/// one is [`crate::wrangler::run`]). Returns what to print on success.
pub fn run(
    args: &[String],
    wrangler: impl FnOnce(&[String]) -> Result<Output, String>,
) -> Result<String, Failure> {
    let (command, target) = parse_args(args)?;
    let execute = |sql: String| -> Result<Vec<Vec<Row>>, Failure> {
        let out = wrangler(&target.args(&sql)).map_err(Failure::Wrangler)?;
        crate::wrangler::results(&out).map_err(Failure::Wrangler)
    };
    match command {
        Command::Help => Ok(USAGE.into()),
        Command::List { search, limit } => {
            let results = execute(list_sql(search.as_ref(), limit))?;
            let rows = results.last().ok_or_else(|| {
                Failure::Wrangler("wrangler returned no result for the query".into())
            })?;
            Ok(format_list(rows, search.as_ref(), limit))
        }
        Command::Statements => {
            let all: Vec<serde_json::Value> = every_statement()
                .into_iter()
                .map(|(command, sql)| serde_json::json!({ "command": command, "statements": sql }))
                .collect();
            Ok(serde_json::Value::Array(all).to_string())
        }
        Command::Change { email, action } => {
            let statements = change_statements(&email, &action);
            let results = execute(statements.join("; "))?;
            if results.len() != statements.len() {
                return Err(Failure::Wrangler(format!(
                    "wrangler returned {} results for {} statements",
                    results.len(),
                    statements.len()
                )));
            }
            match results[0].first() {
                // The audit row was not written either (same condition, same batch).
                Some(before)
                    if action == Action::Revoke
                        && int(before, "revocable_sessions").unwrap_or(0) == 0 =>
                {
                    Err(Failure::NotFound(format!(
                        "{} (user {}) has no live sessions in the {}: nothing changed, nothing \
                         logged. (`gatehouse users disable EMAIL` keeps a user from signing in.)",
                        clean(&text(before, "email").unwrap_or_default(), 254),
                        clean(&text(before, "id").unwrap_or_default(), 64),
                        target.describe()
                    )))
                }
                Some(before) => Ok(format_change(before, &action, &target)),
                None => Err(Failure::NotFound(format!(
                    "no user with email {} in the {} (nothing changed). A user exists from \
                     their first sign-in; `gatehouse users list --search TEXT` shows who does.",
                    email.as_str(),
                    target.describe()
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests;
