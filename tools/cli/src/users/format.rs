//! What `gatehouse users` prints: the list as a table, and what a change did.

use std::fmt::Write as _;

use serde_json::Value;

use super::Action;
use super::args::Search;
use crate::wrangler::{Row, Target};

const RENEWAL: &str = "within SESSION_CHECK_INTERVAL (300 s unless configured otherwise)";

/// Text from D1 fit for a terminal: control characters (escape sequences) shown as `?`, long
/// values cut.
pub(super) fn clean(s: &str, max: usize) -> String {
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

pub(super) fn text(row: &Row, key: &str) -> Option<String> {
    match row.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub(super) fn int(row: &Row, key: &str) -> Option<i64> {
    let v = row.get(key)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// Unix seconds as a UTC calendar date (`2026-12-05`); out of range as the number, none as `-`.
pub(super) fn date(secs: Option<i64>) -> String {
    utc(secs, "%Y-%m-%d")
}

/// Unix seconds as a UTC date and time to the minute (`2026-12-05 09:30`).
pub(super) fn date_time(secs: Option<i64>) -> String {
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
