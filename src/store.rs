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
    SignedIn(User),
    /// The email belongs to a user linked to another account: nothing written.
    NotLinked,
    /// The user is disabled: no session written.
    Disabled,
}

/// A store failure; the message has no user data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

/// Users, accounts and sessions.
#[expect(
    async_fn_in_trait,
    reason = "single-threaded wasm: no Send bound wanted"
)]
pub trait UserStore {
    /// Finds the user by provider and subject (never by email alone), creates it if the email
    /// is free, updates its profile, and inserts a session — atomically, so concurrent first
    /// sign-ins of one person end with one user.
    async fn sign_in(&self, sign_in: &SignIn) -> Result<SignInOutcome, StoreError>;

    /// The session and its user (one read), for renewal.
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Marks a renewal: `last_seen_at`, and the role `ADMIN_EMAILS` gives.
    async fn renewed(&self, id: &str, now: UnixTime) -> Result<(), StoreError>;

    /// Revokes one session.
    async fn revoke_session(&self, id: &str, now: UnixTime) -> Result<(), StoreError>;

    /// Revokes every session of a user.
    async fn revoke_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<(), StoreError>;
}

#[cfg(test)]
pub mod memory {
    //! The in-memory store the native tests use; same contract as D1.

    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    #[derive(Default)]
    struct Data {
        users: Vec<User>,
        accounts: HashMap<(String, String), String>,
        sessions: Vec<(SessionRecord, String, i64)>,
    }

    /// In-memory store; counts reads so tests can show the hot path never reads.
    #[derive(Default)]
    pub struct MemoryStore {
        data: RefCell<Data>,
        /// Number of `session` reads.
        pub reads: std::cell::Cell<usize>,
        /// When set, every call fails.
        pub broken: std::cell::Cell<bool>,
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

        /// Sets a user's role or disabled time, as an admin would.
        pub fn update_user(&self, id: &str, f: impl FnOnce(&mut User)) {
            let mut d = self.data.borrow_mut();
            if let Some(u) = d.users.iter_mut().find(|u| u.id == id) {
                f(u);
            }
        }

        /// Whether session `id` is revoked.
        pub fn is_revoked(&self, id: &str) -> bool {
            self.data
                .borrow()
                .sessions
                .iter()
                .any(|(s, _, _)| s.id == id && s.revoked_at.is_some())
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
                        .any(|u| u.email.eq_ignore_ascii_case(&s.email))
                    {
                        return Ok(SignInOutcome::NotLinked);
                    }
                    d.users.push(User {
                        id: s.new_user_id.clone(),
                        email: s.email.clone(),
                        name: None,
                        image: None,
                        role: "user".into(),
                        disabled_at: None,
                    });
                    d.accounts.insert(key, s.new_user_id.clone());
                    s.new_user_id.clone()
                }
            };
            let user = d
                .users
                .iter_mut()
                .find(|u| u.id == user_id)
                .expect("account without user");
            user.name = s.name.clone();
            user.image = s.image.clone();
            if s.make_admin {
                user.role = "admin".into();
            }
            let user = user.clone();
            if user.disabled_at.is_some() {
                return Ok(SignInOutcome::Disabled);
            }
            d.sessions.push((
                SessionRecord {
                    id: s.session_id.clone(),
                    expires_at: s.expires_at.secs(),
                    revoked_at: None,
                    user: user.clone(),
                },
                user.id.clone(),
                s.now.secs(),
            ));
            Ok(SignInOutcome::SignedIn(user))
        }

        async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
            self.check()?;
            self.reads.set(self.reads.get() + 1);
            let d = self.data.borrow();
            Ok(d.sessions
                .iter()
                .find(|(s, _, _)| s.id == id)
                .map(|(s, uid, _)| {
                    let mut s = s.clone();
                    s.user = d
                        .users
                        .iter()
                        .find(|u| u.id == *uid)
                        .cloned()
                        .expect("session without user");
                    s
                }))
        }

        async fn renewed(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
            self.check()?;
            let mut d = self.data.borrow_mut();
            if let Some(entry) = d.sessions.iter_mut().find(|(s, _, _)| s.id == id) {
                entry.2 = now.secs();
            }
            Ok(())
        }

        async fn revoke_session(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
            self.check()?;
            let mut d = self.data.borrow_mut();
            for (s, _, _) in d
                .sessions
                .iter_mut()
                .filter(|(s, _, _)| s.id == id && s.revoked_at.is_none())
            {
                s.revoked_at = Some(now.secs());
            }
            Ok(())
        }

        async fn revoke_user_sessions(
            &self,
            user_id: &str,
            now: UnixTime,
        ) -> Result<(), StoreError> {
            self.check()?;
            let mut d = self.data.borrow_mut();
            for (s, _, _) in d.sessions.iter_mut().filter(|(_, u, _)| u == user_id) {
                s.revoked_at.get_or_insert(now.secs());
            }
            Ok(())
        }
    }
}
