//! The in-memory store the native tests use. It passes the same contract suite as D1
//! ([`super::contract`]): natively in `cargo test`, D1 end to end (`store_contract` suite).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::*;

struct MemUser {
    user: User,
    created_at: i64,
    /// `users.last_seen_at`: the last activity of sessions pruned since.
    last_seen_at: Option<i64>,
}

struct MemSession {
    info: SessionInfo,
    user_id: String,
    /// The auth origin's session it was handed off from (`SITES`).
    parent_id: Option<String>,
}

#[derive(Default)]
struct Data {
    users: Vec<MemUser>,
    accounts: HashMap<(String, String), String>,
    sessions: Vec<MemSession>,
    audit: Vec<(String, String, String, i64)>,
    risc_events: HashMap<String, i64>,
    /// What D1's triggers write into `changes` (`migrations/0003_scale.sql`).
    changes: Vec<Change>,
    /// Hand-off codes, with `used_at`.
    hand_offs: Vec<(HandOff, Option<i64>)>,
}

impl Data {
    /// Revokes the sessions `which` selects that are not revoked yet, feeding `changes` as
    /// D1's trigger does.
    fn revoke(&mut self, t: i64, which: impl Fn(&MemSession) -> bool) {
        for s in self.sessions.iter_mut().filter(|s| which(s)) {
            if s.info.revoked_at.is_none() {
                s.info.revoked_at = Some(t);
                self.changes
                    .push(Change::Session(s.info.id.clone(), UnixTime(t)));
            }
        }
    }

    /// Changes user `uid` with `f`, feeding `changes` when a field the trigger watches changed.
    fn change_user(&mut self, uid: &str, t: i64, f: impl FnOnce(&mut User)) {
        if let Some(u) = self.users.iter_mut().find(|u| u.user.id == uid) {
            let before = u.user.clone();
            f(&mut u.user);
            if u.user != before {
                self.changes.push(Change::User(uid.to_owned(), UnixTime(t)));
            }
        }
    }
}

/// In-memory store; counts reads so tests can show the hot path never reads.
#[derive(Default)]
pub struct MemoryStore {
    data: RefCell<Data>,
    /// Number of `session` reads.
    pub reads: Cell<usize>,
    feed_reads: Cell<usize>,
    seen_writes: RefCell<HashMap<String, usize>>,
    reads_after: RefCell<Vec<String>>,
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

    /// Changes a user directly at time `at`, as SQL would (D1's trigger feeds `changes`).
    pub fn update_user(&self, id: &str, at: UnixTime, f: impl FnOnce(&mut User)) {
        self.data.borrow_mut().change_user(id, at.secs(), f);
    }

    /// How many `last_seen_at` writes session `id` had.
    pub fn seen_writes(&self, id: &str) -> usize {
        self.seen_writes.borrow().get(id).copied().unwrap_or(0)
    }

    /// The bookmarks `session_after` was asked to read after, in order.
    pub fn reads_after(&self) -> Vec<String> {
        self.reads_after.borrow().clone()
    }

    /// Number of `changes_since` reads.
    pub fn feed_reads(&self) -> usize {
        self.feed_reads.get()
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
            // As on D1: the later of the user row's (pruned sessions) and the sessions'.
            last_seen_at: mine
                .clone()
                .map(|s| s.info.last_seen_at)
                .max()
                .max(u.last_seen_at),
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
                    name: s.name.clone(),
                    image: s.image.clone(),
                    role: "user".into(),
                    disabled_at: None,
                },
                created_at: s.now.secs(),
                last_seen_at: None,
            });
            d.accounts.insert(key, s.new_user_id.clone());
            s.new_user_id.clone()
        };
        // The email follows the Google account unless another user has that address.
        let taken = d
            .users
            .iter()
            .any(|u| u.user.id != user_id && u.user.email.eq_ignore_ascii_case(&s.email));
        let email_kept = taken;
        let t = s.now.secs();
        d.change_user(&user_id, t, |u| {
            if !taken {
                u.email = s.email.clone();
            }
            u.name = s.name.clone();
            u.image = s.image.clone();
            // `ADMIN_EMAILS` matched the new email: only if that email is now this user's.
            if s.make_admin && !taken {
                u.role = "admin".into();
            }
        });
        let entry = d
            .users
            .iter()
            .find(|u| u.user.id == user_id)
            .expect("account without user");
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
                site: Some(s.site.clone()),
            },
            user_id: user.id.clone(),
            parent_id: None,
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

    async fn session_after(
        &self,
        id: &str,
        bookmark: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.reads_after.borrow_mut().push(bookmark.to_owned());
        self.session(id).await
    }

    async fn changes_since(&self, since: UnixTime, limit: usize) -> Result<Pulled, StoreError> {
        self.check()?;
        self.feed_reads.set(self.feed_reads.get() + 1);
        let changes = self
            .data
            .borrow()
            .changes
            .iter()
            .filter(|c| match c {
                Change::Session(_, at) | Change::User(_, at) => *at >= since,
            })
            .take(limit)
            .cloned()
            .collect();
        Ok(Pulled {
            changes,
            bookmark: Some(format!("memory-{}", self.feed_reads.get())),
        })
    }

    async fn seen(&self, ids: &[String], now: UnixTime) -> Result<(), StoreError> {
        self.check()?;
        for id in ids {
            *self.seen_writes.borrow_mut().entry(id.clone()).or_default() += 1;
        }
        for s in self
            .data
            .borrow_mut()
            .sessions
            .iter_mut()
            .filter(|s| ids.contains(&s.info.id))
        {
            s.info.last_seen_at = s.info.last_seen_at.max(now.secs());
        }
        Ok(())
    }

    async fn revoke_session(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
        self.check()?;
        let mut d = self.data.borrow_mut();
        let root = d
            .sessions
            .iter()
            .find(|s| s.info.id == id)
            .map(|s| s.parent_id.clone().unwrap_or_else(|| s.info.id.clone()));
        d.revoke(now.secs(), |s| {
            s.info.id == id
                || root
                    .as_ref()
                    .is_some_and(|r| s.info.id == *r || s.parent_id.as_ref() == Some(r))
        });
        Ok(())
    }

    async fn create_hand_off(&self, code: &HandOff, now: UnixTime) -> Result<(), StoreError> {
        self.check()?;
        let mut d = self.data.borrow_mut();
        d.hand_offs.retain(|(c, _)| c.expires_at >= now.secs());
        if d.hand_offs
            .iter()
            .any(|(c, _)| c.code_hash == code.code_hash)
        {
            return Err(StoreError(
                "UNIQUE constraint failed: handoff_codes.code_hash".into(),
            ));
        }
        d.hand_offs.push((code.clone(), None));
        Ok(())
    }

    async fn redeem_hand_off(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<Option<HandOff>, StoreError> {
        self.check()?;
        let mut d = self.data.borrow_mut();
        Ok(d.hand_offs
            .iter_mut()
            .find(|(c, used)| c.code_hash == code_hash && used.is_none())
            .map(|(c, used)| {
                *used = Some(now.secs());
                c.clone()
            }))
    }

    async fn hand_off_session(&self, s: &SiteSession) -> Result<bool, StoreError> {
        self.check()?;
        let mut d = self.data.borrow_mut();
        let parent = d.sessions.iter().find(|p| {
            p.info.id == s.parent_id
                && p.info.revoked_at.is_none()
                && p.info.expires_at > s.now.secs()
        });
        let Some((user_id, expires_at)) = parent.map(|p| (p.user_id.clone(), p.info.expires_at))
        else {
            return Ok(false);
        };
        let enabled = d
            .users
            .iter()
            .any(|u| u.user.id == user_id && u.user.disabled_at.is_none());
        if !enabled {
            return Ok(false);
        }
        d.sessions.push(MemSession {
            info: SessionInfo {
                id: s.id.clone(),
                created_at: s.now.secs(),
                last_seen_at: s.now.secs(),
                expires_at,
                revoked_at: None,
                user_agent: s.user_agent.clone(),
                site: Some(s.site.clone()),
            },
            user_id,
            parent_id: Some(s.parent_id.clone()),
        });
        Ok(true)
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<(), StoreError> {
        self.check()?;
        self.data
            .borrow_mut()
            .revoke(now.secs(), |s| s.user_id == user_id);
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
            AdminAction::SetRole { role, .. } => d.change_user(&uid, t, |u| u.role = role.clone()),
            AdminAction::Disable { .. } => {
                d.change_user(&uid, t, |u| {
                    u.disabled_at.get_or_insert(t);
                });
                d.revoke(t, |s| s.user_id == uid);
            }
            AdminAction::Enable { .. } => d.change_user(&uid, t, |u| u.disabled_at = None),
            AdminAction::RevokeSession { session_id, .. } => {
                d.revoke(t, |s| {
                    s.user_id == uid
                        && (s.info.id == *session_id || s.parent_id.as_ref() == Some(session_id))
                });
            }
            AdminAction::RevokeAll { .. } => d.revoke(t, |s| s.user_id == uid),
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
                d.change_user(&uid, t, |u| {
                    u.disabled_at.get_or_insert(t);
                });
            }
            if change.effect != RiscEffect::Record {
                d.revoke(t, |s| s.user_id == uid);
            }
        }
        Ok(Delivery::Applied { matched })
    }
}

impl MaintenanceStore for MemoryStore {
    async fn prune_chunk(
        &self,
        what: Prunable,
        before: UnixTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.check()?;
        let mut d = self.data.borrow_mut();
        let before = before.secs();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        // The oldest `limit` rows older than `before`, by (time, insertion order), as D1's
        // index gives them: their positions, highest first, ready to be removed.
        let oldest = |times: Vec<Option<i64>>| -> Vec<usize> {
            let mut old: Vec<(i64, usize)> = times
                .into_iter()
                .enumerate()
                .filter_map(|(i, t)| t.filter(|t| *t < before).map(|t| (t, i)))
                .collect();
            old.sort_unstable();
            old.truncate(limit);
            let mut at: Vec<usize> = old.into_iter().map(|(_, i)| i).collect();
            at.sort_unstable_by(|a, b| b.cmp(a));
            at
        };
        let gone = match what {
            Prunable::ExpiredSessions | Prunable::RevokedSessions => {
                let times = d
                    .sessions
                    .iter()
                    .map(|s| match what {
                        Prunable::ExpiredSessions => Some(s.info.expires_at),
                        _ => s.info.revoked_at,
                    })
                    .collect();
                let at = oldest(times);
                // As on D1: each user's last activity is kept before their rows go.
                let d = &mut *d;
                for &i in &at {
                    let s = &d.sessions[i];
                    let latest = d
                        .sessions
                        .iter()
                        .filter(|o| o.user_id == s.user_id)
                        .map(|o| o.info.last_seen_at)
                        .max();
                    if let Some(u) = d.users.iter_mut().find(|u| u.user.id == s.user_id) {
                        u.last_seen_at = u.last_seen_at.max(latest);
                    }
                }
                for &i in &at {
                    d.sessions.remove(i);
                }
                at.len()
            }
            Prunable::AuditLog => {
                let at = oldest(d.audit.iter().map(|a| Some(a.3)).collect());
                for &i in &at {
                    d.audit.remove(i);
                }
                at.len()
            }
            Prunable::RiscEvents => {
                let mut jtis: Vec<(i64, String)> = d
                    .risc_events
                    .iter()
                    .filter(|(_, at)| **at < before)
                    .map(|(jti, at)| (*at, jti.clone()))
                    .collect();
                jtis.sort_unstable();
                jtis.truncate(limit);
                for (_, jti) in &jtis {
                    d.risc_events.remove(jti);
                }
                jtis.len()
            }
            Prunable::Changes => {
                let times = d
                    .changes
                    .iter()
                    .map(|c| match c {
                        Change::Session(_, at) | Change::User(_, at) => Some(at.secs()),
                    })
                    .collect();
                let at = oldest(times);
                for &i in &at {
                    d.changes.remove(i);
                }
                at.len()
            }
        };
        Ok(u64::try_from(gone).unwrap_or(u64::MAX))
    }
}
