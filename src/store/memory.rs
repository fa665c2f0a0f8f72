//! The in-memory store the native tests use. It passes the same contract suite as D1
//! ([`super::contract`]): natively in `cargo test`, D1 end to end (`store_contract` suite).

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
    risc_events: HashMap<String, i64>,
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
                .count()
                .try_into()
                .unwrap_or(i64::MAX),
        }
    }
}

impl SessionStore for MemoryStore {
    async fn sign_in(&self, s: &SignIn) -> Result<SignInOutcome, StoreError> {
        self.check()?;
        let mut d = self.data.borrow_mut();
        let key = (s.provider.to_owned(), s.subject.clone());
        let user_id = if let Some(id) = d.accounts.get(&key) {
            id.clone()
        } else {
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

    async fn revoke_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<(), StoreError> {
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
}

impl AdminStore for MemoryStore {
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
                search.is_none_or(|q| u.user.email.to_lowercase().starts_with(&q.to_lowercase()))
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

impl RiscStore for MemoryStore {
    async fn security_event(
        &self,
        jti: &str,
        changes: &[RiscChange<'_>],
        now: UnixTime,
        forget_before: UnixTime,
    ) -> Result<Delivery, StoreError> {
        self.check()?;
        let t = now.secs();
        let mut d = self.data.borrow_mut();
        d.risc_events.retain(|_, at| *at >= forget_before.secs());
        if d.risc_events.contains_key(jti) {
            return Ok(Delivery::Replayed);
        }
        d.risc_events.insert(jti.to_owned(), t);
        let mut matched = 0;
        for change in changes {
            let key = ("google".to_owned(), change.subject.to_owned());
            let Some(uid) = d.accounts.get(&key).cloned() else {
                continue;
            };
            matched += 1;
            let target = match change.detail {
                Some(detail) => format!("{uid} {detail}"),
                None => uid.clone(),
            };
            d.audit
                .push((String::new(), change.action.to_owned(), target, t));
            if change.effect == RiscEffect::Disable {
                for u in d.users.iter_mut().filter(|u| u.user.id == uid) {
                    u.user.disabled_at.get_or_insert(t);
                }
            }
            if change.effect != RiscEffect::Record {
                for s in d.sessions.iter_mut().filter(|s| s.user_id == uid) {
                    s.info.revoked_at.get_or_insert(t);
                }
            }
        }
        Ok(Delivery::Applied { matched })
    }
}
