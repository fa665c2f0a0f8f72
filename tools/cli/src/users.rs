//! `gatehouse users …`: list users, set roles, disable, enable and revoke sessions, on local or
//! remote D1 through `wrangler d1 execute` (see [`crate::wrangler`]).
//!
//! `wrangler d1 execute --command` takes no bound parameters, so the few values a command needs
//! (an email, a role, a search prefix) are written into the SQL as string literals. Each is
//! validated first into a type ([`Email`], [`Role`], [`Search`]) that admits only what must be
//! admitted, and the SQL builders take only those types: raw input never reaches SQL. The
//! literals are then written by [`sql_str`], which would be safe on its own.

use std::fmt::Write as _;

use serde_json::Value;

use gatehouse::store::AdminAction;

use crate::wrangler::{Output, Row, Target};

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

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 10_000;
const RENEWAL: &str = "within SESSION_CHECK_INTERVAL (300 s unless configured otherwise)";

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

// ---------------------------------------------------------------------------------------------
// Validated values: the only things that are ever written into SQL.

/// An email address as users are looked up by: the worker's own canonical form
/// ([`gatehouse::oidc::canonical_email`]: trimmed, lowercased, one `@` with something on both
/// sides, printable ASCII without spaces), and, because it is written into SQL, without quotes,
/// backslashes or semicolons. So nothing that could end a string literal or a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

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
pub struct Role(String);

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
pub struct Search(String);

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

/// `s` as an SQL string literal, for the values `wrangler d1 execute --command` cannot bind.
///
/// Safe for any text: inside an SQLite string literal the only special character is `'`,
/// written `''` (SQLite has no backslash escapes), so the result is always exactly one literal,
/// and wrangler's statement splitter reads quotes the same way. Every value that reaches here
/// has also been validated (no quotes, backslashes, whitespace or control characters), so this
/// is the second line of defence, not the only one.
fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------------
// Commands and their SQL

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
    List { search: Option<Search>, limit: u32 },
    Change { email: Email, action: Action },
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
    };
    Ok((command, target))
}

/// Sessions neither revoked nor expired, for the user `u`; uses the index `sessions_user_id`.
const ACTIVE_SESSIONS: &str = "(SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id \
     AND s.revoked_at IS NULL AND s.expires_at > unixepoch())";
/// Sessions not yet revoked (expired or not), for the user `u`: what `revoke` would touch.
const REVOCABLE_SESSIONS: &str =
    "(SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL)";

/// One query for the list: the correlated subqueries run per listed user on `sessions_user_id`,
/// the prefix `LIKE` and the order use the `email` index (its collation is NOCASE, as `LIKE` is).
/// Asks for one row more than `limit` to tell whether there are more.
pub fn list_sql(search: Option<&Search>, limit: u32) -> String {
    let filter = match search {
        Some(Search(prefix)) => format!(" WHERE u.email LIKE {}", sql_str(&format!("{prefix}%"))),
        None => String::new(),
    };
    format!(
        "SELECT u.email, u.name, u.role, u.created_at, u.disabled_at, \
         (SELECT MAX(s.last_seen_at) FROM sessions s WHERE s.user_id = u.id) AS last_seen_at, \
         {ACTIVE_SESSIONS} AS active_sessions \
         FROM users u{filter} ORDER BY u.email LIMIT {}",
        u64::from(limit) + 1
    )
}

/// The statements of one change, run by wrangler as one batch: first the user as it was (no
/// row: unknown email, and every later statement then touches nothing), then its audit_log row,
/// then the change. The audit row is written only when the change will touch a row: the user
/// exists and, for `revoke`, has a session not yet revoked (the same condition as the change's
/// own WHERE, read before the change in the same batch).
pub fn change_sql(email: &Email, action: &Action) -> String {
    let e = sql_str(email.as_str());
    let user = format!("email = {e}");
    let user_id = format!("(SELECT id FROM users WHERE {user})");
    let revoke_all = format!(
        "UPDATE sessions SET revoked_at = unixepoch() WHERE user_id = {user_id} AND revoked_at IS NULL"
    );
    let mut statements = vec![format!(
        "SELECT u.id, u.email, u.role, u.disabled_at, {ACTIVE_SESSIONS} AS active_sessions, \
         {REVOCABLE_SESSIONS} AS revocable_sessions FROM users u WHERE u.{user}"
    )];
    let mut changes = Vec::new();
    let mut only_if = String::new();
    match action {
        Action::SetRole(role) => {
            let r = sql_str(role.as_str());
            changes.push(format!(
                "UPDATE users SET role = {r}, updated_at = unixepoch() WHERE {user}"
            ));
        }
        Action::Disable => {
            // Already disabled: keep the first time.
            changes.push(format!(
                "UPDATE users SET disabled_at = COALESCE(disabled_at, unixepoch()), \
                 updated_at = unixepoch() WHERE {user}"
            ));
            changes.push(revoke_all);
        }
        Action::Enable => {
            changes.push(format!(
                "UPDATE users SET disabled_at = NULL, updated_at = unixepoch() WHERE {user}"
            ));
        }
        Action::Revoke => {
            changes.push(revoke_all);
            // Nothing to revoke: refused, never logged as done.
            only_if = " AND EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = users.id \
                       AND s.revoked_at IS NULL)"
                .into();
        }
    }
    statements.push(format!(
        "INSERT INTO audit_log (actor_user_id, action, target, created_at) \
         SELECT NULL, {}, {}, unixepoch() FROM users WHERE {user}{only_if}",
        sql_str(action.audit_name()),
        action.audit_target_sql()
    ));
    statements.extend(changes);
    statements.join("; ")
}

fn statement_count(action: &Action) -> usize {
    match action {
        Action::Disable => 4,
        _ => 3,
    }
}

// ---------------------------------------------------------------------------------------------
// Output

/// Text from D1 fit for a terminal: control characters (escape sequences) shown as `?`, long
/// values cut.
fn clean(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.pop();
        out.push('…');
    }
    out
}

fn text(row: &Row, key: &str) -> Option<String> {
    match row.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn int(row: &Row, key: &str) -> Option<i64> {
    let v = row.get(key)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// Unix seconds as a UTC calendar date (`2026-12-05`); out of range as the number, none as `-`.
fn date(secs: Option<i64>) -> String {
    utc(secs, "%Y-%m-%d")
}

/// Unix seconds as a UTC date and time to the minute (`2026-12-05 09:30`).
fn date_time(secs: Option<i64>) -> String {
    utc(secs, "%Y-%m-%d %H:%M")
}

fn utc(secs: Option<i64>, format: &str) -> String {
    match secs {
        Some(t) if (0..=253_402_300_799).contains(&t) => chrono::DateTime::from_timestamp(t, 0)
            .map_or_else(|| t.to_string(), |d| d.format(format).to_string()),
        Some(t) => t.to_string(),
        None => "-".into(),
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn format_list(rows: &[Row], search: Option<&Search>, limit: u32) -> String {
    let shown = &rows[..rows.len().min(limit as usize)];
    if shown.is_empty() {
        return match search {
            Some(Search(p)) => format!("No user's email starts with {p:?}."),
            None => "No users yet: a user is created at their first sign-in.".into(),
        };
    }
    let header = [
        "EMAIL",
        "NAME",
        "ROLE",
        "CREATED",
        "LAST SEEN (UTC)",
        "ACTIVE SESSIONS",
        "DISABLED",
    ];
    let table: Vec<[String; 7]> = shown
        .iter()
        .map(|r| {
            [
                clean(&text(r, "email").unwrap_or_default(), 254),
                clean(&text(r, "name").unwrap_or_else(|| "-".into()), 32),
                clean(&text(r, "role").unwrap_or_default(), 32),
                date(int(r, "created_at")),
                date_time(int(r, "last_seen_at")),
                int(r, "active_sessions").unwrap_or(0).to_string(),
                if r.get("disabled_at").is_some_and(|v| !v.is_null()) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = w - cell.chars().count();
            // Numbers right-aligned, text left-aligned.
            if i == 5 {
                let _ = write!(l, "{}{cell}", " ".repeat(pad));
            } else {
                let _ = write!(l, "{cell}{}", " ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &table {
        line(&row.each_ref().map(String::as_str));
    }
    if rows.len() > shown.len() {
        let _ = writeln!(
            out,
            "(the first {limit} users; more exist: narrow with --search or raise --limit)"
        );
    }
    out.trim_end().to_owned()
}

/// What a change did, from the user row as it was before it.
pub fn format_change(before: &Row, action: &Action, target: &Target) -> String {
    let email = clean(&text(before, "email").unwrap_or_default(), 254);
    let id = clean(&text(before, "id").unwrap_or_default(), 64);
    let old_role = clean(&text(before, "role").unwrap_or_default(), 32);
    let disabled_at = int(before, "disabled_at");
    let sessions = int(before, "active_sessions").unwrap_or(0);
    let place = target.describe();
    let mut out = match action {
        Action::SetRole(role) => {
            let role = role.as_str();
            let mut s = if role == old_role {
                format!("{email} (user {id}) already has role {role} in the {place}.")
            } else {
                format!(
                    "{email} (user {id}) now has role {role} (was {old_role}) in the {place}.\n\
                     Signed-in sessions get the new role at their next renewal, {RENEWAL}."
                )
            };
            if old_role == "admin" && role != "admin" {
                s.push_str(
                    "\nIf this email is listed in ADMIN_EMAILS it is admin again at its next \
                     sign-in or renewal: remove it there too.",
                );
            }
            s
        }
        Action::Disable => {
            let mut s = match disabled_at {
                Some(t) => format!(
                    "{email} (user {id}) was already disabled (since {}) in the {place}",
                    date_time(Some(t))
                ),
                None => format!("{email} (user {id}) is now disabled in the {place}"),
            };
            let _ = write!(
                s,
                "; {} revoked.\nSigning in is refused; signed-in sessions end at their next \
                 renewal, {RENEWAL}.\nUndo with: gatehouse users enable {email}",
                plural(sessions, "active session", "active sessions")
            );
            s
        }
        Action::Enable => match disabled_at {
            Some(_) => format!(
                "{email} (user {id}) is enabled again in the {place}: they can sign in \
                 (sessions revoked before stay revoked)."
            ),
            None => {
                format!("{email} (user {id}) was not disabled in the {place}; nothing changed.")
            }
        },
        Action::Revoke => format!(
            "{} of {email} (user {id}) revoked in the {place}.\nThey end at their next renewal, \
             {RENEWAL}. The user may sign in again (`gatehouse users disable` keeps them out).",
            plural(sessions, "active session", "active sessions")
        ),
    };
    if !target.remote {
        out.push_str("\n(This was the local database; add --remote for the deployed one.)");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Running

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
        Command::Change { email, action } => {
            let results = execute(change_sql(&email, &action))?;
            if results.len() != statement_count(&action) {
                return Err(Failure::Wrangler(format!(
                    "wrangler returned {} results for {} statements",
                    results.len(),
                    statement_count(&action)
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
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    fn parsed(a: &[&str]) -> Result<(Command, Target), Failure> {
        parse_args(&args(a))
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    const HOSTILE_EMAILS: &[&str] = &[
        "a'--@x.test",
        "x@y.test'; DROP TABLE users; --",
        "x@y.test';DROP/**/TABLE/**/users;--",
        "x@y.test\"",
        "x\\@y.test",
        "x\\'@y.test",
        "a b@x.test",
        "a@x.test\n; DELETE FROM users",
        "a@x.test\0",
        "a@b@x.test",
        "ab.x.test",
        "@x.test",
        "a@",
        "a@x.test;",
        "ä@x.test",
        "a@x.test\u{1b}[2J",
        "",
        "   ",
    ];

    #[test]
    fn emails_accepted_trimmed_and_refused() {
        for (ok, canonical) in [
            ("a@x.test", "a@x.test"),
            (
                "  Someone.Else+tag@Example.COM \n",
                "someone.else+tag@example.com",
            ),
            (
                "o_k-1!#$%&*/=?^`{|}~@sub.x-y.test",
                "o_k-1!#$%&*/=?^`{|}~@sub.x-y.test",
            ),
        ] {
            assert_eq!(Email::parse(ok).unwrap().as_str(), canonical, "{ok:?}");
            // The worker's own canonical form: what it stores and compares.
            assert_eq!(
                gatehouse::oidc::canonical_email(ok).as_deref(),
                Some(canonical)
            );
        }
        for bad in HOSTILE_EMAILS {
            assert!(Email::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn roles_and_searches() {
        for ok in ["admin", "user", "editor_2", "a-b", &"r".repeat(32)] {
            assert!(Role::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            &"r".repeat(33),
            "admin'",
            "admin' OR '1'='1",
            "ad min",
            "rôle",
            "a;b",
            "a\n",
        ] {
            assert!(Role::parse(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(Search::parse(" Al ").unwrap(), Some(Search("Al".into())));
        assert_eq!(Search::parse("  ").unwrap(), None);
        for bad in [
            "a%",
            "a_",
            "a'",
            "a\"",
            "a\\",
            "é",
            "a\tb",
            &"a".repeat(255),
        ] {
            assert!(Search::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn sql_str_doubles_quotes() {
        assert_eq!(sql_str("a@x.test"), "'a@x.test'");
        assert_eq!(sql_str("it's"), "'it''s'");
        assert_eq!(
            sql_str("'; DROP TABLE users; --"),
            "'''; DROP TABLE users; --'"
        );
        assert_eq!(sql_str(""), "''");
    }

    #[test]
    fn hostile_input_is_refused_before_any_sql_is_built_or_run() {
        let never = |a: &[String]| -> Result<Output, String> { panic!("wrangler run with {a:?}") };
        for bad in HOSTILE_EMAILS {
            for cmd in ["disable", "enable", "revoke"] {
                let r = run(&args(&[cmd, bad]), never);
                assert!(matches!(r, Err(Failure::Usage(_))), "{cmd} {bad:?}: {r:?}");
            }
            let r = run(&args(&["set-role", bad, "admin"]), never);
            assert!(
                matches!(r, Err(Failure::Usage(_))),
                "set-role {bad:?}: {r:?}"
            );
        }
        for role in ["admin'--", "admin'; DROP TABLE users; --", ""] {
            let r = run(&args(&["set-role", "a@x.test", role]), never);
            assert!(matches!(r, Err(Failure::Usage(_))), "role {role:?}: {r:?}");
        }
        for search in ["a'--", "%", "x' OR 1=1 --", "_"] {
            let r = run(&args(&["list", "--search", search]), never);
            assert!(
                matches!(r, Err(Failure::Usage(_))),
                "search {search:?}: {r:?}"
            );
        }
        let r = run(&args(&["list", "--database", "--remote"]), never);
        assert!(matches!(r, Err(Failure::Usage(_))));
        let r = run(&args(&["list", "--database", "DB;x"]), never);
        assert!(matches!(r, Err(Failure::Usage(_))));
        assert_eq!(
            run(&args(&["disable", "a'--@x.test"]), never)
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn argument_parsing() {
        assert_eq!(
            parsed(&["list"]).unwrap(),
            (
                Command::List {
                    search: None,
                    limit: 50
                },
                Target::default()
            )
        );
        let (cmd, target) = parsed(&[
            "list",
            "--search=Al",
            "--limit",
            "7",
            "--remote",
            "--database",
            "gatehouse",
            "--config",
            "site/wrangler.toml",
        ])
        .unwrap();
        assert_eq!(
            cmd,
            Command::List {
                search: Some(Search("Al".into())),
                limit: 7
            }
        );
        assert_eq!(
            target,
            Target {
                remote: true,
                database: "gatehouse".into(),
                config: Some("site/wrangler.toml".into()),
                persist_to: None
            }
        );
        let (cmd, target) = parsed(&[
            "--local",
            "--persist-to",
            "/tmp/s",
            "set-role",
            "A@x.test",
            "editor",
        ])
        .unwrap();
        assert_eq!(
            cmd,
            Command::Change {
                email: email("A@x.test"),
                action: Action::SetRole(Role("editor".into()))
            }
        );
        assert_eq!(target.persist_to.as_deref(), Some("/tmp/s"));
        assert!(!target.remote);
        for (sub, action) in [
            ("disable", Action::Disable),
            ("enable", Action::Enable),
            ("revoke", Action::Revoke),
        ] {
            assert_eq!(
                parsed(&[sub, "a@x.test"]).unwrap().0,
                Command::Change {
                    email: email("a@x.test"),
                    action
                }
            );
        }
        assert_eq!(parsed(&[]).unwrap().0, Command::Help);
        assert_eq!(parsed(&["disable", "--help"]).unwrap().0, Command::Help);
        assert_eq!(parsed(&["help"]).unwrap().0, Command::Help);

        for bad in [
            &["list", "--local", "--remote"][..],
            &["list", "--remote", "--persist-to", "x"],
            &["list", "--limit", "0"],
            &["list", "--limit", "10001"],
            &["list", "--limit", "-1"],
            &["list", "--limit", "many"],
            &["list", "--limit"],
            &["list", "--search"],
            &["list", "extra"],
            &["list", "--persist-to="],
            &["list", "--local=yes"],
            &["list", "--frobnicate"],
            &["disable"],
            &["disable", "a@x.test", "b@x.test"],
            &["disable", "a@x.test", "--search", "a"],
            &["set-role", "a@x.test"],
            &["set-role", "a@x.test", "admin", "more"],
            &["delete", "a@x.test"],
        ] {
            assert!(
                matches!(parsed(bad), Err(Failure::Usage(_))),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn list_sql_text() {
        assert_eq!(
            list_sql(None, 50),
            "SELECT u.email, u.name, u.role, u.created_at, u.disabled_at, \
             (SELECT MAX(s.last_seen_at) FROM sessions s WHERE s.user_id = u.id) AS last_seen_at, \
             (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL \
             AND s.expires_at > unixepoch()) AS active_sessions \
             FROM users u ORDER BY u.email LIMIT 51"
        );
        let s = list_sql(Search::parse("Al").unwrap().as_ref(), 5);
        assert!(
            s.ends_with("FROM users u WHERE u.email LIKE 'Al%' ORDER BY u.email LIMIT 6"),
            "{s}"
        );
    }

    #[test]
    fn change_sql_text() {
        let e = email("A@x.test");
        let lookup = "SELECT u.id, u.email, u.role, u.disabled_at, (SELECT COUNT(*) FROM sessions s \
             WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > unixepoch()) \
             AS active_sessions, (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND \
             s.revoked_at IS NULL) AS revocable_sessions FROM users u WHERE u.email = 'a@x.test'";
        let audit = |action: &str, target: &str| {
            format!(
                "INSERT INTO audit_log (actor_user_id, action, target, created_at) SELECT NULL, \
                 '{action}', {target}, unixepoch() FROM users WHERE email = 'a@x.test'"
            )
        };
        let revoke = "UPDATE sessions SET revoked_at = unixepoch() WHERE user_id = \
             (SELECT id FROM users WHERE email = 'a@x.test') AND revoked_at IS NULL";
        let cases = [
            (
                Action::SetRole(Role("editor".into())),
                vec![
                    lookup.to_owned(),
                    audit("cli:set-role", "id || ' role=editor'"),
                    "UPDATE users SET role = 'editor', updated_at = unixepoch() WHERE email = 'a@x.test'"
                        .into(),
                ],
            ),
            (
                Action::Disable,
                vec![
                    lookup.to_owned(),
                    audit("cli:disable", "id"),
                    "UPDATE users SET disabled_at = COALESCE(disabled_at, unixepoch()), \
                     updated_at = unixepoch() WHERE email = 'a@x.test'"
                        .into(),
                    revoke.into(),
                ],
            ),
            (
                Action::Enable,
                vec![
                    lookup.to_owned(),
                    audit("cli:enable", "id"),
                    "UPDATE users SET disabled_at = NULL, updated_at = unixepoch() WHERE email = 'a@x.test'"
                        .into(),
                ],
            ),
            (
                Action::Revoke,
                vec![
                    lookup.to_owned(),
                    format!(
                        "{} AND EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = users.id AND \
                         s.revoked_at IS NULL)",
                        audit("cli:revoke", "id")
                    ),
                    revoke.into(),
                ],
            ),
        ];
        for (action, statements) in cases {
            assert_eq!(statement_count(&action), statements.len());
            assert_eq!(change_sql(&e, &action), statements.join("; "), "{action:?}");
        }
    }

    fn wrangler_says(stdout: &'static str) -> impl FnOnce(&[String]) -> Result<Output, String> {
        move |_| {
            Ok(Output {
                code: Some(0),
                stdout: stdout.into(),
                stderr: String::new(),
            })
        }
    }

    #[test]
    fn list_runs_one_query_and_prints_a_table() {
        let mut seen = Vec::new();
        let out = run(
            &args(&["list", "--limit", "2", "--persist-to", "/s"]),
            |a| {
                seen = a.to_vec();
                Ok(Output {
                    code: Some(0),
                    stdout: r#"🌀 banner [x]
[{"results": [
  {"email": "a@x.test", "name": "Ann \u001b[31mRed", "role": "admin", "created_at": 1767225600,
   "disabled_at": null, "last_seen_at": 1767312000, "active_sessions": 2},
  {"email": "b@x.test", "name": null, "role": "user", "created_at": 1767225600,
   "disabled_at": 1767300000, "last_seen_at": null, "active_sessions": 0},
  {"email": "c@x.test", "name": "C", "role": "user", "created_at": 1, "disabled_at": null,
   "last_seen_at": null, "active_sessions": 0}
], "success": true, "meta": {}}]"#
                        .into(),
                    stderr: String::new(),
                })
            },
        )
        .unwrap();
        assert_eq!(
            seen[..7],
            [
                "d1",
                "execute",
                "DB",
                "--local",
                "--json",
                "--persist-to",
                "/s"
            ]
        );
        assert_eq!(seen[7], "--command");
        assert_eq!(seen[8], list_sql(None, 2));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("EMAIL     NAME"), "{out}");
        assert_eq!(
            lines[1],
            "a@x.test  Ann ?[31mRed  admin  2026-01-01  2026-01-02 00:00                2  no"
        );
        assert_eq!(
            lines[2],
            "b@x.test  -             user   2026-01-01  -                               0  yes"
        );
        assert!(lines[3].contains("more exist"), "{out}");
        assert!(!out.contains("c@x.test"));

        let none = run(
            &args(&["list", "--search", "zz"]),
            wrangler_says(r#"[{"results": [], "success": true}]"#),
        )
        .unwrap();
        assert!(none.contains("\"zz\""), "{none}");
    }

    #[test]
    fn changes_report_what_they_did_and_unknown_emails_exit_1() {
        let before = r#"[
          {"results": [{"id": "u1", "email": "a@x.test", "role": "user", "disabled_at": null, "active_sessions": 3}], "success": true},
          {"results": [], "success": true}, {"results": [], "success": true}, {"results": [], "success": true}
        ]"#;
        let out = run(&args(&["disable", "A@X.test"]), wrangler_says(before)).unwrap();
        assert!(out.contains("a@x.test (user u1) is now disabled in the local D1 database DB; 3 active sessions revoked"), "{out}");
        assert!(out.contains("SESSION_CHECK_INTERVAL"), "{out}");
        let three = r#"[
          {"results": [{"id": "u1", "email": "a@x.test", "role": "admin", "disabled_at": null, "active_sessions": 1, "revocable_sessions": 2}], "success": true},
          {"results": [], "success": true}, {"results": [], "success": true}
        ]"#;
        let out = run(
            &args(&["set-role", "a@x.test", "editor", "--remote"]),
            wrangler_says(three),
        )
        .unwrap();
        assert!(
            out.contains("now has role editor (was admin) in the remote D1 database DB"),
            "{out}"
        );
        assert!(
            out.contains("next renewal") && out.contains("ADMIN_EMAILS"),
            "{out}"
        );
        assert!(!out.contains("local database"), "{out}");
        let out = run(&args(&["revoke", "a@x.test"]), wrangler_says(three)).unwrap();
        assert!(
            out.contains("1 active session of a@x.test (user u1) revoked"),
            "{out}"
        );
        assert!(out.contains("SESSION_CHECK_INTERVAL"), "{out}");
        let out = run(&args(&["enable", "a@x.test"]), wrangler_says(three)).unwrap();
        assert!(out.contains("was not disabled"), "{out}");

        // Nothing left to revoke: exit 1, nothing changed (the audit row's condition is the same).
        let none = r#"[
          {"results": [{"id": "u1", "email": "a@x.test", "role": "user", "disabled_at": null, "active_sessions": 0, "revocable_sessions": 0}], "success": true},
          {"results": [], "success": true}, {"results": [], "success": true}
        ]"#;
        let e = run(&args(&["revoke", "a@x.test"]), wrangler_says(none)).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.message().contains("a@x.test (user u1) has no live sessions in the local D1 database DB: nothing changed, nothing logged"),
            "{e:?}"
        );

        let unknown = r#"[{"results": [], "success": true}, {"results": [], "success": true}, {"results": [], "success": true}]"#;
        let e = run(&args(&["revoke", "nobody@x.test"]), wrangler_says(unknown)).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.message().contains("no user with email nobody@x.test"),
            "{e:?}"
        );
        // Fewer results than statements: something is off, never "done".
        let e = run(&args(&["disable", "a@x.test"]), wrangler_says(three)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn wrangler_failures_exit_2_with_its_words() {
        let e = run(&args(&["list"]), |_| {
            Ok(Output {
                code: Some(1),
                stdout: String::new(),
                stderr: "✘ [ERROR] Not logged in.".into(),
            })
        })
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message().contains("Not logged in."), "{e:?}");
        let e = run(&args(&["list"]), |_| Err("could not run npx".into())).unwrap_err();
        assert_eq!(e, Failure::Wrangler("could not run npx".into()));
        let e = run(&args(&["list"]), wrangler_says("Oops, not JSON")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message().contains("Oops"), "{e:?}");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(date(Some(0)), "1970-01-01");
        assert_eq!(date(Some(951_782_400)), "2000-02-29");
        assert_eq!(date_time(Some(1_767_225_599)), "2025-12-31 23:59");
        assert_eq!(date(Some(-5)), "-5");
        assert_eq!(date(None), "-");
        assert_eq!(date_time(Some(i64::MAX)), i64::MAX.to_string());
    }
}
