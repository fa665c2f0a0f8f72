//! Which statement shapes the contract suite reaches, so that the query plan check
//! (`tests/e2e/store_contract.test.mjs`) can tell it saw every statement D1 can issue.
//!
//! The D1 store's SQL is a function of the store method called and of a few features of its
//! arguments: whether `list_users` has a search and a page start, which [`AdminAction`] is
//! applied, which [`RiscEffect`]s a security event carries and whether it is a replay, which
//! [`Prunable`] a chunk prunes. Everything else it is given (ids, emails, times, limits) is
//! bound, and changes no SQL text. [`Coverage`] wraps a store, passes every call through, and
//! notes the shape of each; [`SHAPES`] lists them all. The wrapper implements every method of
//! every store trait and its matches name every variant without a wildcard, so a new method or
//! a new variant does not compile until it has a shape here. A store change that makes SQL
//! depend on something else must add a shape for it too.

use std::cell::RefCell;

use crate::store::{
    AdminAction, AdminStore, Applied, AuditEntry, Delivery, HandOff, MaintenanceStore, Prunable,
    Pulled, RiscChange, RiscEffect, RiscStore, SessionInfo, SessionRecord, SessionStore, SignIn,
    SignInOutcome, SiteSession, StoreError, UserSummary,
};
use crate::time::UnixTime;

/// Every shape of store call whose SQL differs from another's.
pub const SHAPES: &[&str] = &[
    "sign_in",
    "session",
    "session_after",
    "changes_since",
    "seen",
    "revoke_session",
    "revoke_user_sessions",
    "create_hand_off",
    "redeem_hand_off",
    "hand_off_session",
    "list_users",
    "list_users after",
    "list_users search",
    "list_users search after",
    "user",
    "user_sessions",
    "apply set-role",
    "apply disable",
    "apply enable",
    "apply revoke-session",
    "apply revoke-all",
    "audit_log",
    "security_event revoke-sessions",
    "security_event disable",
    "security_event record",
    "security_event replayed",
    "prune_chunk expired-sessions",
    "prune_chunk revoked-sessions",
    "prune_chunk audit-log",
    "prune_chunk risc-events",
    "prune_chunk changes",
];

/// A store that notes the shape of every call it passes on to `store`.
pub struct Coverage<'s, S> {
    store: &'s S,
    reached: RefCell<Vec<String>>,
}

impl<'s, S> Coverage<'s, S> {
    /// Wraps `store`; nothing reached yet.
    pub fn new(store: &'s S) -> Self {
        Self {
            store,
            reached: RefCell::new(Vec::new()),
        }
    }

    fn reach(&self, shape: &str) {
        let mut reached = self.reached.borrow_mut();
        if !reached.iter().any(|r| r == shape) {
            reached.push(shape.to_owned());
        }
    }

    /// The shapes of [`SHAPES`] no call had.
    pub fn missing(&self) -> Vec<&'static str> {
        let reached = self.reached.borrow();
        SHAPES
            .iter()
            .copied()
            .filter(|s| !reached.iter().any(|r| r == s))
            .collect()
    }

    /// Shapes calls had that [`SHAPES`] does not list (a shape added here but not there).
    pub fn unlisted(&self) -> Vec<String> {
        self.reached
            .borrow()
            .iter()
            .filter(|r| !SHAPES.contains(&r.as_str()))
            .cloned()
            .collect()
    }
}

impl<S: SessionStore> SessionStore for Coverage<'_, S> {
    async fn sign_in(&self, sign_in: &SignIn) -> Result<SignInOutcome, StoreError> {
        self.reach("sign_in");
        self.store.sign_in(sign_in).await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.reach("session");
        self.store.session(id).await
    }

    async fn session_after(
        &self,
        id: &str,
        bookmark: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.reach("session_after");
        self.store.session_after(id, bookmark).await
    }

    async fn changes_since(&self, since: UnixTime, limit: usize) -> Result<Pulled, StoreError> {
        self.reach("changes_since");
        self.store.changes_since(since, limit).await
    }

    async fn seen(&self, ids: &[String], now: UnixTime) -> Result<(), StoreError> {
        // No ids, no statement.
        if !ids.is_empty() {
            self.reach("seen");
        }
        self.store.seen(ids, now).await
    }

    async fn revoke_session(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
        self.reach("revoke_session");
        self.store.revoke_session(id, now).await
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<(), StoreError> {
        self.reach("revoke_user_sessions");
        self.store.revoke_user_sessions(user_id, now).await
    }

    async fn create_hand_off(&self, code: &HandOff, now: UnixTime) -> Result<(), StoreError> {
        self.reach("create_hand_off");
        self.store.create_hand_off(code, now).await
    }

    async fn redeem_hand_off(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<Option<HandOff>, StoreError> {
        self.reach("redeem_hand_off");
        self.store.redeem_hand_off(code_hash, now).await
    }

    async fn hand_off_session(&self, s: &SiteSession) -> Result<bool, StoreError> {
        self.reach("hand_off_session");
        self.store.hand_off_session(s).await
    }
}

impl<S: AdminStore> AdminStore for Coverage<'_, S> {
    async fn list_users(
        &self,
        search: Option<&str>,
        after: Option<&str>,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<UserSummary>, StoreError> {
        // An empty search is no search (as the stores read it).
        let search_shape = search.is_some_and(|q| !q.is_empty());
        self.reach(match (search_shape, after.is_some()) {
            (false, false) => "list_users",
            (false, true) => "list_users after",
            (true, false) => "list_users search",
            (true, true) => "list_users search after",
        });
        self.store.list_users(search, after, limit, now).await
    }

    async fn user(&self, id: &str, now: UnixTime) -> Result<Option<UserSummary>, StoreError> {
        self.reach("user");
        self.store.user(id, now).await
    }

    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>, StoreError> {
        self.reach("user_sessions");
        self.store.user_sessions(user_id).await
    }

    async fn apply(
        &self,
        actor_user_id: &str,
        action: &AdminAction,
        now: UnixTime,
    ) -> Result<Applied, StoreError> {
        self.reach(match action {
            AdminAction::SetRole { .. } => "apply set-role",
            AdminAction::Disable { .. } => "apply disable",
            AdminAction::Enable { .. } => "apply enable",
            AdminAction::RevokeSession { .. } => "apply revoke-session",
            AdminAction::RevokeAll { .. } => "apply revoke-all",
        });
        self.store.apply(actor_user_id, action, now).await
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.reach("audit_log");
        self.store.audit_log(limit).await
    }
}

impl<S: RiscStore> RiscStore for Coverage<'_, S> {
    async fn security_event(
        &self,
        jti: &str,
        changes: &[RiscChange<'_>],
        now: UnixTime,
        forget_before: UnixTime,
    ) -> Result<Delivery, StoreError> {
        for change in changes {
            self.reach(match change.effect {
                RiscEffect::RevokeSessions => "security_event revoke-sessions",
                RiscEffect::Disable => "security_event disable",
                RiscEffect::Record => "security_event record",
            });
        }
        let delivery = self
            .store
            .security_event(jti, changes, now, forget_before)
            .await;
        // A replay reads whether the id was recorded after the batch failed.
        if matches!(delivery, Ok(Delivery::Replayed)) {
            self.reach("security_event replayed");
        }
        delivery
    }
}

impl<S: MaintenanceStore> MaintenanceStore for Coverage<'_, S> {
    async fn prune_chunk(
        &self,
        what: Prunable,
        before: UnixTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.reach(match what {
            Prunable::ExpiredSessions => "prune_chunk expired-sessions",
            Prunable::RevokedSessions => "prune_chunk revoked-sessions",
            Prunable::AuditLog => "prune_chunk audit-log",
            Prunable::RiscEvents => "prune_chunk risc-events",
            Prunable::Changes => "prune_chunk changes",
        });
        self.store.prune_chunk(what, before, limit).await
    }

    // `prune` is the trait's own: its chunks come back through `prune_chunk` above. (The D1
    // store does not override it; a store that did would issue its own SQL there.)
}
