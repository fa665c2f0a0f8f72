//! The SQL of `gatehouse users`: string literals, the list query, and the statements of a change.

use gatehouse::prune::LAST_SEEN_OF_U;

use super::Action;
use super::args::{Email, Role, Search};

/// `s` as an SQL string literal, for the values `wrangler d1 execute --command` cannot bind.
///
/// Safe for any text: inside an SQLite string literal the only special character is `'`,
/// written `''` (SQLite has no backslash escapes), so the result is always exactly one literal,
/// and wrangler's statement splitter reads quotes the same way. Every value that reaches here
/// has also been validated (no quotes, backslashes, whitespace or control characters), so this
/// is the second line of defence, not the only one.
pub(super) fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Sessions neither revoked nor expired, for the user `u`; uses the index `sessions_user_id`.
const ACTIVE_SESSIONS: &str = "(SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id \
     AND s.revoked_at IS NULL AND s.expires_at > unixepoch())";
/// Sessions not yet revoked (expired or not), for the user `u`: what `revoke` would touch.
const REVOCABLE_SESSIONS: &str =
    "(SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL)";

/// One query for the list: the correlated subqueries run per listed user on `sessions_user_id`
/// (last seen as the admin page has it, the user row's kept from pruned sessions included),
/// the prefix `LIKE` and the order use the `email` index (its collation is NOCASE, as `LIKE` is).
/// Asks for one row more than `limit` to tell whether there are more.
pub fn list_sql(search: Option<&Search>, limit: u32) -> String {
    let filter = match search {
        Some(Search(prefix)) => format!(" WHERE u.email LIKE {}", sql_str(&format!("{prefix}%"))),
        None => String::new(),
    };
    format!(
        "SELECT u.email, u.name, u.role, u.created_at, u.disabled_at, \
         {LAST_SEEN_OF_U} AS last_seen_at, \
         {ACTIVE_SESSIONS} AS active_sessions \
         FROM users u{filter} ORDER BY u.email LIMIT {}",
        u64::from(limit) + 1
    )
}

/// The statements of one change, run by wrangler as one batch (joined by `; `: no value
/// written into them holds a `;`): first the user as it was (no row: unknown email, and every
/// later statement then touches nothing), then its audit_log row, then the change. The audit row
/// is written only when the change will touch a row: the user exists and, for `revoke`, has a
/// session not yet revoked (the same condition as the change's own WHERE, read before the change
/// in the same batch).
pub fn change_statements(email: &Email, action: &Action) -> Vec<String> {
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
    statements
}

/// Every statement the command line can issue, one entry per command and option shape, with
/// example values: what `gatehouse users statements` prints for the query plan check
/// (`tests/e2e/store_contract.test.mjs`). A list's limit and the values are written into the
/// SQL but change no plan.
pub fn every_statement() -> Vec<(&'static str, Vec<String>)> {
    let email = Email("someone@example.com".into());
    let search = Search("some".into());
    let change = |action: Action| change_statements(&email, &action);
    vec![
        ("list", vec![list_sql(None, 50)]),
        ("list --search", vec![list_sql(Some(&search), 50)]),
        ("set-role", change(Action::SetRole(Role("admin".into())))),
        ("disable", change(Action::Disable)),
        ("enable", change(Action::Enable)),
        ("revoke", change(Action::Revoke)),
    ]
}
