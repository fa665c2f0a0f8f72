//! The user and session store seam: D1 in production (`runtime::d1`), memory in tests.

use crate::time::UnixTime;

/// A user row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Random id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Picture URL.
    pub image: Option<String>,
    /// Role.
    pub role: String,
    /// When disabled, if disabled.
    pub disabled_at: Option<i64>,
}

/// A session row with its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session id.
    pub id: String,
    /// Absolute end.
    pub expires_at: i64,
    /// When revoked, if revoked.
    pub revoked_at: Option<i64>,
    /// Its user.
    pub user: User,
}

impl SessionRecord {
    /// Whether this session may be renewed at `now`.
    pub fn is_live(&self, now: UnixTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now.secs() && self.user.disabled_at.is_none()
    }
}

/// Everything a successful ID-token check asks the store to record.
#[derive(Clone, Debug)]
pub struct SignIn {
    /// `google`.
    pub provider: &'static str,
    /// The provider's `sub`.
    pub subject: String,
    /// Verified email.
    pub email: String,
    /// Name from the ID token.
    pub name: Option<String>,
    /// Picture from the ID token.
    pub image: Option<String>,
    /// Whether `ADMIN_EMAILS` lists this email.
    pub make_admin: bool,
    /// Id for the user row, if one must be created.
    pub new_user_id: String,
    /// Id of the new session row.
    pub session_id: String,
    /// Now.
    pub now: UnixTime,
    /// Session end.
    pub expires_at: UnixTime,
    /// `User-Agent`, truncated.
    pub user_agent: Option<String>,
}

/// What signing in found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignInOutcome {
    /// User found or created; session row inserted.
    SignedIn {
        /// The user as stored now.
        user: User,
        /// The Google account's email has changed to one that belongs to another user: the
        /// stored email (and role) were kept. Worth a warning in the log.
        email_kept: bool,
    },
    /// The email belongs to a user linked to another account: nothing written.
    NotLinked,
    /// The user is disabled: no session written.
    Disabled,
}

/// A store failure; the message has no user data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl StoreError {
    /// Whether D1 said the schema is not what Gatehouse expects (migrations not applied): the
    /// operator must fix that (`Configuration`), whereas any other failure is an outage that
    /// passes (`Unavailable`).
    pub fn is_schema(&self) -> bool {
        ["no such table", "no such column", "has no column named"]
            .iter()
            .any(|s| self.0.contains(s))
    }
}

/// A user as the admin page lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSummary {
    /// The user.
    pub user: User,
    /// When the user first signed in.
    pub created_at: i64,
    /// Latest `last_seen_at` of the user's sessions.
    pub last_seen_at: Option<i64>,
    /// Sessions neither revoked nor expired.
    pub active_sessions: i64,
}

/// One session of a user, for the admin page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// Created.
    pub created_at: i64,
    /// Last renewal.
    pub last_seen_at: i64,
    /// Absolute end.
    pub expires_at: i64,
    /// Revoked, if so.
    pub revoked_at: Option<i64>,
    /// Browser, as sent at sign-in.
    pub user_agent: Option<String>,
}

/// One admin action, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who (email), if known.
    pub actor: Option<String>,
    /// What.
    pub action: String,
    /// On whom or what.
    pub target: Option<String>,
    /// When.
    pub created_at: i64,
}

/// A change an admin makes. Applied together with its audit row, atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminAction {
    /// Give `user_id` the role `role`.
    SetRole {
        /// Target user.
        user_id: String,
        /// New role.
        role: String,
    },
    /// Lock the user out: `disabled_at` set and every session revoked.
    Disable {
        /// Target user.
        user_id: String,
    },
    /// Let the user sign in again.
    Enable {
        /// Target user.
        user_id: String,
    },
    /// End one session of the user.
    RevokeSession {
        /// Its user.
        user_id: String,
        /// The session.
        session_id: String,
    },
    /// End every session of the user.
    RevokeAll {
        /// Target user.
        user_id: String,
    },
}

impl AdminAction {
    /// The target user.
    pub fn user_id(&self) -> &str {
        match self {
            Self::SetRole { user_id, .. }
            | Self::Disable { user_id }
            | Self::Enable { user_id }
            | Self::RevokeSession { user_id, .. }
            | Self::RevokeAll { user_id } => user_id,
        }
    }

    /// The audit log's `action`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SetRole { .. } => "set-role",
            Self::Disable { .. } => "disable",
            Self::Enable { .. } => "enable",
            Self::RevokeSession { .. } => "revoke-session",
            Self::RevokeAll { .. } => "revoke-all",
        }
    }

    /// The audit log's `action` when the command line (`gatehouse users …`) made the change:
    /// `cli:` and the command's name.
    pub fn cli_name(&self) -> &'static str {
        match self {
            Self::SetRole { .. } => "cli:set-role",
            Self::Disable { .. } => "cli:disable",
            Self::Enable { .. } => "cli:enable",
            Self::RevokeSession { .. } => "cli:revoke-session",
            Self::RevokeAll { .. } => "cli:revoke",
        }
    }

    /// The audit log's `target`.
    pub fn target(&self) -> String {
        match self {
            Self::SetRole { user_id, role } => format!("{user_id} role={role}"),
            Self::RevokeSession {
                user_id,
                session_id,
            } => format!("{user_id} session={session_id}"),
            Self::Disable { user_id } | Self::Enable { user_id } | Self::RevokeAll { user_id } => {
                user_id.clone()
            }
        }
    }
}

/// What applying an admin action did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The change was made and recorded in the audit log.
    Done,
    /// Its target matched nothing (no such user, no such live session of that user, no live
    /// session at all): nothing was changed and nothing recorded.
    NoMatch,
}

/// Users, accounts and sessions.
#[expect(
    async_fn_in_trait,
    reason = "single-threaded wasm: no Send bound wanted"
)]
pub trait UserStore {
    /// Finds the user by provider and subject (never by email alone), creates it if the email
    /// is free, updates its profile (email, name, picture) and inserts a session — atomically,
    /// so concurrent first sign-ins of one person end with one user. A changed email is taken
    /// only if no other user has it (case-insensitively); otherwise the stored one is kept.
    async fn sign_in(&self, sign_in: &SignIn) -> Result<SignInOutcome, StoreError>;

    /// The session and its user (one read), for renewal.
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Marks a renewal: `last_seen_at`.
    async fn renewed(&self, id: &str, now: UnixTime) -> Result<(), StoreError>;

    /// Revokes one session.
    async fn revoke_session(&self, id: &str, now: UnixTime) -> Result<(), StoreError>;

    /// Revokes every session of a user.
    async fn revoke_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<(), StoreError>;

    /// Users by email, after `after` (keyset pagination), whose email starts with `search`
    /// (case-insensitive), at most `limit`.
    async fn list_users(
        &self,
        search: Option<&str>,
        after: Option<&str>,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<UserSummary>, StoreError>;

    /// One user.
    async fn user(&self, id: &str, now: UnixTime) -> Result<Option<UserSummary>, StoreError>;

    /// The user's latest sessions (newest first, at most 50).
    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>, StoreError>;

    /// Applies `action` and records it in the audit log, atomically; an action whose target
    /// matches nothing changes nothing, records nothing, and says so ([`Applied::NoMatch`]).
    async fn apply(
        &self,
        actor_user_id: &str,
        action: &AdminAction,
        now: UnixTime,
    ) -> Result<Applied, StoreError>;

    /// The newest audit entries.
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}

#[cfg(test)]
pub mod memory {
    //! The in-memory store the native tests use; same contract as D1.

    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use super::*;

    struct MemUser {
        user: User,
        created_at: i64,
    }

    struct MemSession {
        info: SessionInfo,
        user_id: String,
    }

    #[derive(Default)]
    struct Data {
        users: Vec<MemUser>,
        accounts: HashMap<(String, String), String>,
        sessions: Vec<MemSession>,
        audit: Vec<(String, String, String, i64)>,
    }

    /// In-memory store; counts reads so tests can show the hot path never reads.
    #[derive(Default)]
    pub struct MemoryStore {
        data: RefCell<Data>,
        /// Number of `session` reads.
        pub reads: Cell<usize>,
        /// When set, every call fails.
        pub broken: Cell<bool>,
    }

    impl MemoryStore {
        fn check(&self) -> Result<(), StoreError> {
            if self.broken.get() {
                Err(StoreError("store is broken".into()))
            } else {
                Ok(())
            }
        }

        /// Number of users.
        pub fn user_count(&self) -> usize {
            self.data.borrow().users.len()
        }

        /// Number of audit log rows.
        pub fn audit_count(&self) -> usize {
            self.data.borrow().audit.len()
        }

        /// Changes a user directly, as SQL would.
        pub fn update_user(&self, id: &str, f: impl FnOnce(&mut User)) {
            if let Some(u) = self
                .data
                .borrow_mut()
                .users
                .iter_mut()
                .find(|u| u.user.id == id)
            {
                f(&mut u.user);
            }
        }

        /// Whether session `id` is revoked.
        pub fn is_revoked(&self, id: &str) -> bool {
            self.data
                .borrow()
                .sessions
                .iter()
                .any(|s| s.info.id == id && s.info.revoked_at.is_some())
        }

        fn summary(d: &Data, u: &MemUser, now: UnixTime) -> UserSummary {
            let mine = d.sessions.iter().filter(|s| s.user_id == u.user.id);
            UserSummary {
                user: u.user.clone(),
                created_at: u.created_at,
                last_seen_at: mine.clone().map(|s| s.info.last_seen_at).max(),
                active_sessions: mine
                    .filter(|s| s.info.revoked_at.is_none() && s.info.expires_at > now.secs())
                    .count() as i64,
            }
        }
    }

    impl UserStore for MemoryStore {
        async fn sign_in(&self, s: &SignIn) -> Result<SignInOutcome, StoreError> {
            self.check()?;
            let mut d = self.data.borrow_mut();
            let key = (s.provider.to_owned(), s.subject.clone());
            let user_id = match d.accounts.get(&key) {
                Some(id) => id.clone(),
                None => {
                    if d.users
                        .iter()
                        .any(|u| u.user.email.eq_ignore_ascii_case(&s.email))
                    {
                        return Ok(SignInOutcome::NotLinked);
                    }
                    d.users.push(MemUser {
                        user: User {
                            id: s.new_user_id.clone(),
                            email: s.email.clone(),
                            name: None,
                            image: None,
                            role: "user".into(),
                            disabled_at: None,
                        },
                        created_at: s.now.secs(),
                    });
                    d.accounts.insert(key, s.new_user_id.clone());
                    s.new_user_id.clone()
                }
            };
            // The email follows the Google account unless another user has that address.
            let taken = d
                .users
                .iter()
                .any(|u| u.user.id != user_id && u.user.email.eq_ignore_ascii_case(&s.email));
            let entry = d
                .users
                .iter_mut()
                .find(|u| u.user.id == user_id)
                .expect("account without user");
            let email_kept = taken;
            if !taken {
                entry.user.email = s.email.clone();
            }
            entry.user.name = s.name.clone();
            entry.user.image = s.image.clone();
            // `ADMIN_EMAILS` matched the new email: only if that email is now this user's.
            if s.make_admin && !taken {
                entry.user.role = "admin".into();
            }
            let user = entry.user.clone();
            if user.disabled_at.is_some() {
                return Ok(SignInOutcome::Disabled);
            }
            d.sessions.push(MemSession {
                info: SessionInfo {
                    id: s.session_id.clone(),
                    created_at: s.now.secs(),
                    last_seen_at: s.now.secs(),
                    expires_at: s.expires_at.secs(),
                    revoked_at: None,
                    user_agent: s.user_agent.clone(),
                },
                user_id: user.id.clone(),
            });
            Ok(SignInOutcome::SignedIn { user, email_kept })
        }

        async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
            self.check()?;
            self.reads.set(self.reads.get() + 1);
            let d = self.data.borrow();
            Ok(d.sessions
                .iter()
                .find(|s| s.info.id == id)
                .map(|s| SessionRecord {
                    id: s.info.id.clone(),
                    expires_at: s.info.expires_at,
                    revoked_at: s.info.revoked_at,
                    user: d
                        .users
                        .iter()
                        .find(|u| u.user.id == s.user_id)
                        .expect("session without user")
                        .user
                        .clone(),
                }))
        }

        async fn renewed(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
            self.check()?;
            for s in self
                .data
                .borrow_mut()
                .sessions
                .iter_mut()
                .filter(|s| s.info.id == id)
            {
                s.info.last_seen_at = now.secs();
            }
            Ok(())
        }

        async fn revoke_session(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
            self.check()?;
            for s in self
                .data
                .borrow_mut()
                .sessions
                .iter_mut()
                .filter(|s| s.info.id == id)
            {
                s.info.revoked_at.get_or_insert(now.secs());
            }
            Ok(())
        }

        async fn revoke_user_sessions(
            &self,
            user_id: &str,
            now: UnixTime,
        ) -> Result<(), StoreError> {
            self.check()?;
            for s in self
                .data
                .borrow_mut()
                .sessions
                .iter_mut()
                .filter(|s| s.user_id == user_id)
            {
                s.info.revoked_at.get_or_insert(now.secs());
            }
            Ok(())
        }

        async fn list_users(
            &self,
            search: Option<&str>,
            after: Option<&str>,
            limit: u32,
            now: UnixTime,
        ) -> Result<Vec<UserSummary>, StoreError> {
            self.check()?;
            let d = self.data.borrow();
            let mut users: Vec<&MemUser> = d
                .users
                .iter()
                .filter(|u| {
                    search
                        .is_none_or(|q| u.user.email.to_lowercase().starts_with(&q.to_lowercase()))
                })
                .filter(|u| after.is_none_or(|a| u.user.email.to_lowercase() > a.to_lowercase()))
                .collect();
            users.sort_by_key(|u| u.user.email.to_lowercase());
            Ok(users
                .into_iter()
                .take(limit as usize)
                .map(|u| Self::summary(&d, u, now))
                .collect())
        }

        async fn user(&self, id: &str, now: UnixTime) -> Result<Option<UserSummary>, StoreError> {
            self.check()?;
            let d = self.data.borrow();
            Ok(d.users
                .iter()
                .find(|u| u.user.id == id)
                .map(|u| Self::summary(&d, u, now)))
        }

        async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>, StoreError> {
            self.check()?;
            let d = self.data.borrow();
            let mut v: Vec<SessionInfo> = d
                .sessions
                .iter()
                .filter(|s| s.user_id == user_id)
                .map(|s| s.info.clone())
                .collect();
            v.sort_by_key(|s| std::cmp::Reverse(s.created_at));
            v.truncate(50);
            Ok(v)
        }

        async fn apply(
            &self,
            actor: &str,
            action: &AdminAction,
            now: UnixTime,
        ) -> Result<Applied, StoreError> {
            self.check()?;
            let t = now.secs();
            let mut d = self.data.borrow_mut();
            let uid = action.user_id().to_owned();
            let live = |s: &MemSession| s.user_id == uid && s.info.revoked_at.is_none();
            // Same rule as D1: an action whose change would touch no row is refused, unrecorded.
            let matches = match action {
                AdminAction::SetRole { .. }
                | AdminAction::Disable { .. }
                | AdminAction::Enable { .. } => d.users.iter().any(|u| u.user.id == uid),
                AdminAction::RevokeSession { session_id, .. } => d
                    .sessions
                    .iter()
                    .any(|s| s.info.id == *session_id && live(s)),
                AdminAction::RevokeAll { .. } => d.sessions.iter().any(live),
            };
            if !matches {
                return Ok(Applied::NoMatch);
            }
            match action {
                AdminAction::SetRole { role, .. } => {
                    for u in d.users.iter_mut().filter(|u| u.user.id == uid) {
                        u.user.role = role.clone();
                    }
                }
                AdminAction::Disable { .. } => {
                    for u in d.users.iter_mut().filter(|u| u.user.id == uid) {
                        u.user.disabled_at.get_or_insert(t);
                    }
                    for s in d.sessions.iter_mut().filter(|s| s.user_id == uid) {
                        s.info.revoked_at.get_or_insert(t);
                    }
                }
                AdminAction::Enable { .. } => {
                    for u in d.users.iter_mut().filter(|u| u.user.id == uid) {
                        u.user.disabled_at = None;
                    }
                }
                AdminAction::RevokeSession { session_id, .. } => {
                    for s in d
                        .sessions
                        .iter_mut()
                        .filter(|s| s.info.id == *session_id && s.user_id == uid)
                    {
                        s.info.revoked_at.get_or_insert(t);
                    }
                }
                AdminAction::RevokeAll { .. } => {
                    for s in d.sessions.iter_mut().filter(|s| s.user_id == uid) {
                        s.info.revoked_at.get_or_insert(t);
                    }
                }
            }
            d.audit.push((
                actor.to_owned(),
                action.name().to_owned(),
                action.target(),
                t,
            ));
            Ok(Applied::Done)
        }

        async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
            self.check()?;
            let d = self.data.borrow();
            Ok(d.audit
                .iter()
                .rev()
                .take(limit as usize)
                .map(|(actor, action, target, at)| AuditEntry {
                    actor: d
                        .users
                        .iter()
                        .find(|u| u.user.id == *actor)
                        .map(|u| u.user.email.clone()),
                    action: action.clone(),
                    target: Some(target.clone()),
                    created_at: *at,
                })
                .collect())
        }
    }
}
