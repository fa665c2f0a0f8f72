//! The admin page's decisions: which actions exist, which roles may be given, and the rules
//! that keep an admin from locking themselves out. Plain data in, plain data out.

use crate::config::Config;
use crate::store::AdminAction;

/// Users per page.
pub const PAGE_SIZE: u32 = 50;

/// Why an admin action was refused (shown to the admin in words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not one of the actions.
    UnknownAction,
    /// A field the action needs is missing.
    MissingField,
    /// The role is neither `user`, `admin` nor one named in `ROLE_PATHS`.
    RoleNotAllowed,
    /// An admin may not remove their own admin role or disable themselves.
    SelfLockout,
    /// No such user.
    UnknownUser,
    /// No such live session of that user (unknown, another user's, or already ended).
    UnknownSession,
    /// The user has no live session to end.
    NoSessions,
}

impl Refusal {
    /// The code in the redirect (`?refused=`).
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownAction => "unknown-action",
            Self::MissingField => "missing-field",
            Self::RoleNotAllowed => "role-not-allowed",
            Self::SelfLockout => "self-lockout",
            Self::UnknownUser => "unknown-user",
            Self::UnknownSession => "unknown-session",
            Self::NoSessions => "no-sessions",
        }
    }

    /// Why `action` was refused when its target matched nothing in the store.
    pub fn no_match(action: &AdminAction) -> Self {
        match action {
            AdminAction::RevokeSession { .. } => Self::UnknownSession,
            AdminAction::RevokeAll { .. } => Self::NoSessions,
            AdminAction::SetRole { .. }
            | AdminAction::Disable { .. }
            | AdminAction::Enable { .. } => Self::UnknownUser,
        }
    }

    /// The message for a code from the query string, if it is one.
    pub fn message(code: &str) -> Option<&'static str> {
        Some(match code {
            "unknown-action" => "That action does not exist.",
            "missing-field" => "The form was incomplete; nothing was changed.",
            "role-not-allowed" => "That role is not used on this site; nothing was changed.",
            "self-lockout" => {
                "You cannot remove your own admin role or disable yourself; ask another admin."
            }
            "unknown-user" => "There is no such user; nothing was changed.",
            "unknown-session" => {
                "That session does not exist, is not this user's, or has already ended; nothing was changed."
            }
            "no-sessions" => "This user has no live sessions to end; nothing was changed.",
            _ => return None,
        })
    }
}

/// What an action did, in words (`?done=`).
pub fn done_message(name: &str) -> Option<&'static str> {
    Some(match name {
        "set-role" => "Role changed.",
        "disable" => "User disabled; their sessions end at their next check.",
        "enable" => "User enabled; they can sign in again.",
        "revoke-session" => "Session ended; it stops working at its next check.",
        "revoke-all" => "All sessions ended; they stop working at their next check.",
        _ => return None,
    })
}

/// A time for the page: `2026-11-26 17:00 UTC`.
pub fn when(t: i64) -> String {
    let rfc = crate::time::UnixTime(t).to_rfc3339();
    format!("{} UTC", rfc.get(..16).unwrap_or(&rfc).replace('T', " "))
}

/// An interval in words.
pub fn duration(secs: i64) -> String {
    match secs {
        s if s % 3600 == 0 && s >= 3600 => {
            format!("{} hour{}", s / 3600, if s == 3600 { "" } else { "s" })
        }
        s if s % 60 == 0 && s >= 60 => {
            format!("{} minute{}", s / 60, if s == 60 { "" } else { "s" })
        }
        s => format!("{s} second{}", if s == 1 { "" } else { "s" }),
    }
}

/// Whether `role` is well formed as a role name: 1 to 32 ASCII letters, digits, `_` or `-`.
/// The command line (`gatehouse users set-role`) accepts exactly these.
pub fn is_role_name(role: &str) -> bool {
    (1..=32).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The roles an admin may give: `user`, `admin` and every role named in `ROLE_PATHS`.
pub fn allowed_roles(config: &Config) -> Vec<String> {
    let mut roles = vec![String::from("user"), String::from("admin")];
    for role in config.rule_roles() {
        if !roles.iter().any(|r| r == role) {
            roles.push(role.to_owned());
        }
    }
    roles
}

/// Reads the action from the form's fields and checks it against the rules.
pub fn decide(
    field: impl Fn(&str) -> Option<String>,
    actor_user_id: &str,
    roles: &[String],
) -> Result<AdminAction, Refusal> {
    let need = |name: &str| {
        field(name)
            .filter(|v| !v.is_empty())
            .ok_or(Refusal::MissingField)
    };
    let user_id = need("user_id")?;
    let action = match need("action")?.as_str() {
        "set-role" => {
            let role = need("role")?;
            if !roles.contains(&role) {
                return Err(Refusal::RoleNotAllowed);
            }
            AdminAction::SetRole { user_id, role }
        }
        "disable" => AdminAction::Disable { user_id },
        "enable" => AdminAction::Enable { user_id },
        "revoke-session" => AdminAction::RevokeSession {
            user_id,
            session_id: need("session_id")?,
        },
        "revoke-all" => AdminAction::RevokeAll { user_id },
        _ => return Err(Refusal::UnknownAction),
    };
    // Lock-out protection: the acting admin keeps admin and stays enabled.
    let own = action.user_id() == actor_user_id;
    match &action {
        AdminAction::SetRole { role, .. } if own && role != "admin" => Err(Refusal::SelfLockout),
        AdminAction::Disable { .. } if own => Err(Refusal::SelfLockout),
        _ => Ok(action),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    fn form<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn roles() -> Vec<String> {
        allowed_roles(&config(&[(
            "ROLE_PATHS",
            "/finance/*=finance,/admin/*=admin",
        )]))
    }

    #[test]
    fn times_and_intervals_read_well() {
        assert_eq!(when(1_800_000_000), "2027-01-15 08:00 UTC");
        assert_eq!(duration(300), "5 minutes");
        assert_eq!(duration(60), "1 minute");
        assert_eq!(duration(2), "2 seconds");
        assert_eq!(duration(7200), "2 hours");
    }

    #[test]
    fn roles_are_user_admin_and_those_of_role_paths() {
        assert_eq!(roles(), ["user", "admin", "finance"]);
    }

    #[test]
    fn actions_are_read_from_the_form() {
        let got = decide(
            form(&[
                ("action", "set-role"),
                ("user_id", "u2"),
                ("role", "finance"),
            ]),
            "u1",
            &roles(),
        );
        assert_eq!(
            got,
            Ok(AdminAction::SetRole {
                user_id: "u2".into(),
                role: "finance".into()
            })
        );
        let got = decide(
            form(&[
                ("action", "revoke-session"),
                ("user_id", "u2"),
                ("session_id", "s9"),
            ]),
            "u1",
            &roles(),
        );
        assert_eq!(
            got,
            Ok(AdminAction::RevokeSession {
                user_id: "u2".into(),
                session_id: "s9".into()
            })
        );
    }

    #[test]
    fn unknown_roles_actions_and_missing_fields_are_refused() {
        let r = roles();
        assert_eq!(
            decide(
                form(&[("action", "set-role"), ("user_id", "u2"), ("role", "root")]),
                "u1",
                &r
            ),
            Err(Refusal::RoleNotAllowed)
        );
        assert_eq!(
            decide(form(&[("action", "drop"), ("user_id", "u2")]), "u1", &r),
            Err(Refusal::UnknownAction)
        );
        assert_eq!(
            decide(form(&[("action", "disable")]), "u1", &r),
            Err(Refusal::MissingField)
        );
        assert_eq!(
            decide(
                form(&[("action", "revoke-session"), ("user_id", "u2")]),
                "u1",
                &r
            ),
            Err(Refusal::MissingField)
        );
    }

    #[test]
    fn an_admin_cannot_lock_themselves_out() {
        let r = roles();
        assert_eq!(
            decide(
                form(&[("action", "set-role"), ("user_id", "me"), ("role", "user")]),
                "me",
                &r
            ),
            Err(Refusal::SelfLockout)
        );
        assert_eq!(
            decide(form(&[("action", "disable"), ("user_id", "me")]), "me", &r),
            Err(Refusal::SelfLockout)
        );
        assert!(
            decide(
                form(&[("action", "set-role"), ("user_id", "me"), ("role", "admin")]),
                "me",
                &r
            )
            .is_ok()
        );
        assert!(
            decide(
                form(&[("action", "revoke-all"), ("user_id", "me")]),
                "me",
                &r
            )
            .is_ok()
        );
        assert!(
            decide(
                form(&[("action", "disable"), ("user_id", "other")]),
                "me",
                &r
            )
            .is_ok()
        );
    }
}
