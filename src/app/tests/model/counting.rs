//! A store that counts what each call would cost on D1, then delegates to another store (the
//! memory store in the model). What each method costs is [`cost`], read off
//! `src/runtime/d1.rs`: keep the two in step.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::float;
use crate::store::{
    AdminAction, AdminStore, Applied, AuditEntry, Delivery, MaintenanceStore, Prunable, Pulled,
    RiscChange, RiscEffect, RiscStore, SessionInfo, SessionRecord, SessionStore, SignIn,
    SignInOutcome, StoreError, UserSummary,
};
use crate::store::{HandOff, SiteSession};
use crate::time::UnixTime;

/// What the D1 statements were for, as the model's table shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Kind {
    /// The requests of a sign-in (the sign-in batch).
    SignIn,
    /// Session reads of page views (renewals the feed could not grant).
    RenewalRead,
    /// Change feed pulls, wherever they happen.
    FeedPull,
    /// `last_seen_at` batches, wherever they happen.
    LastSeen,
    /// The requests of a sign-out.
    SignOut,
    /// The requests of an admin change (the page, the action, the page again).
    Admin,
    /// The cron trigger's pruning runs.
    Prune,
}

impl Kind {
    /// Every kind, in the table's order.
    pub(super) const ALL: [Self; 7] = [
        Self::SignIn,
        Self::RenewalRead,
        Self::FeedPull,
        Self::LastSeen,
        Self::SignOut,
        Self::Admin,
        Self::Prune,
    ];

    /// The table's label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::SignIn => "sign-in",
            Self::RenewalRead => "renewal read",
            Self::FeedPull => "feed pull",
            Self::LastSeen => "last-seen write",
            Self::SignOut => "sign-out",
            Self::Admin => "admin",
            Self::Prune => "prune (cron)",
        }
    }
}

/// One store method (a call of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Call {
    SignIn,
    Session,
    SessionAfter,
    ChangesSince,
    Seen,
    RevokeSession,
    RevokeUserSessions,
    CreateHandOff,
    RedeemHandOff,
    HandOffSession,
    ListUsers,
    User,
    UserSessions,
    Apply,
    AuditLog,
    SecurityEvent,
    PruneChunk,
}

/// D1 statements (each one query of D1's ~1 ms, whether alone or in a batch) and table rows
/// written.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Counts {
    /// Statements that only read.
    pub(super) reads: f64,
    /// Of those, reads D1 may serve from a read replica (at least as fresh as a bookmark).
    pub(super) replica_reads: f64,
    /// Statements that write.
    pub(super) writes: f64,
    /// Table rows written, trigger rows (`changes`, `migrations/0003_scale.sql`) included, index
    /// entries not.
    pub(super) rows: f64,
}

impl Counts {
    /// Every statement.
    pub(super) fn queries(&self) -> f64 {
        self.reads + self.writes
    }

    /// `self + other × by`.
    pub(super) fn add(&mut self, other: &Self, by: f64) {
        self.reads += other.reads * by;
        self.replica_reads += other.replica_reads * by;
        self.writes += other.writes * by;
        self.rows += other.rows * by;
    }
}

/// What one call costs on D1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cost {
    /// Statements that only read.
    pub(super) reads: usize,
    /// Statements that write.
    pub(super) writes: usize,
    /// The reads may go to a read replica (a D1 session at a bookmark), not the primary.
    pub(super) replica: bool,
}

const fn on_primary(reads: usize, writes: usize) -> Cost {
    Cost {
        reads,
        writes,
        replica: false,
    }
}

/// What one call of `method` costs on D1. The one place that knows D1's statements: each arm
/// names what `src/runtime/d1.rs` sends. `n` is the size the method's cost depends on (ids of a
/// `seen` batch, statements of an admin action, a security event or a pruning chunk), 0
/// otherwise. Every D1 session of d1.rs is `first-primary` except `session_after`'s.
#[expect(
    clippy::match_same_arms,
    reason = "one arm per method, each naming its statements: the table reads as d1.rs does"
)]
pub(super) fn cost(method: Call, n: usize) -> Cost {
    match method {
        // One batch: CREATE_USER, LINK_ACCOUNT, UPDATE_PROFILE, CREATE_SESSION (writes) and
        // FIND_USER (read).
        Call::SignIn => on_primary(1, 4),
        // FIND_SESSION.
        Call::Session => on_primary(1, 0),
        // FIND_SESSION in a D1 session at the change feed's bookmark: any replica at least as
        // fresh as the pull.
        Call::SessionAfter => Cost {
            reads: 1,
            writes: 0,
            replica: true,
        },
        // CHANGES_SINCE.
        Call::ChangesSince => on_primary(1, 0),
        // One batch of SEEN statements, one per 100 ids (`ids.chunks(100)`).
        Call::Seen => on_primary(0, n.div_ceil(100)),
        // One batch: the sign-in's handed-off sessions, its root, the session itself.
        Call::RevokeSession => on_primary(0, 3),
        // One UPDATE.
        Call::RevokeUserSessions => on_primary(0, 1),
        // One batch: DELETE the ended codes, INSERT the new one.
        Call::CreateHandOff => on_primary(0, 2),
        // One UPDATE … RETURNING; one INSERT … SELECT.
        Call::RedeemHandOff | Call::HandOffSession => on_primary(0, 1),
        // `summary_select()` with its conditions.
        Call::ListUsers => on_primary(1, 0),
        // `summary_select()` by id.
        Call::User => on_primary(1, 0),
        // The user's sessions, newest first.
        Call::UserSessions => on_primary(1, 0),
        // The audit log, newest first.
        Call::AuditLog => on_primary(1, 0),
        // One batch: the conditional audit INSERT and the action's UPDATEs (`n` statements in
        // all: 2, or 3 for Disable).
        Call::Apply => on_primary(0, n),
        // One batch: DELETE old `risc_events`, INSERT the jti, and per change an audit INSERT
        // and the disable/revoke UPDATEs (`n` statements in all). A replay fails the batch and
        // costs one more read (not counted: the model sends no security events).
        Call::SecurityEvent => on_primary(0, n),
        // One batch (`prune_statements`): for sessions the users' last activity kept, then the
        // DELETE (`n` = 2); for other rows the DELETE (`n` = 1).
        Call::PruneChunk => on_primary(0, n),
    }
}

/// Statements of an admin action's batch (`AdminStore::apply` in d1.rs).
fn apply_statements(action: &AdminAction) -> usize {
    match action {
        AdminAction::Disable { .. } | AdminAction::RevokeSession { .. } => 3,
        _ => 2,
    }
}

/// Statements of a security event's batch (`RiscStore::security_event` in d1.rs).
fn security_event_statements(changes: &[RiscChange<'_>]) -> usize {
    2 + changes
        .iter()
        .map(|c| {
            1 + usize::from(c.effect == RiscEffect::Disable)
                + usize::from(c.effect != RiscEffect::Record)
        })
        .sum::<usize>()
}

/// Counts by kind and by hour of the day, and by method.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// By kind and hour (0–23 of the simulated day; later hours fold into 23).
    pub(super) hourly: HashMap<(Kind, usize), Counts>,
    /// By method, over the day.
    pub(super) by_method: HashMap<Call, Counts>,
    /// Calls by method.
    pub(super) calls: HashMap<Call, usize>,
}

impl Tally {
    /// Counts of `kind` in `hour`.
    pub(super) fn at(&self, kind: Kind, hour: usize) -> Counts {
        self.hourly.get(&(kind, hour)).copied().unwrap_or_default()
    }
}

/// Counts every call's D1 statements under the harness's current activity (feed pulls and
/// last-seen writes under their own kinds), then delegates to `inner`.
pub(super) struct Counting<S> {
    /// The store that does the work.
    pub(super) inner: S,
    /// What the current request is for; the harness sets it.
    pub(super) activity: Cell<Kind>,
    /// The pinned clock; the harness sets it.
    pub(super) now: Cell<i64>,
    /// The first second of the simulated day.
    pub(super) day_start: i64,
    /// What was counted.
    pub(super) tally: RefCell<Tally>,
}

impl<S: SessionStore + AdminStore + MaintenanceStore> Counting<S> {
    /// Counts nothing yet.
    pub(super) fn new(inner: S, day_start: i64) -> Self {
        Self {
            inner,
            activity: Cell::new(Kind::RenewalRead),
            now: Cell::new(day_start),
            day_start,
            tally: RefCell::default(),
        }
    }

    /// Calls of `method` so far.
    pub(super) fn calls(&self, method: Call) -> usize {
        self.tally.borrow().calls.get(&method).copied().unwrap_or(0)
    }

    fn count(&self, method: Call, n: usize, rows: usize) {
        let kind = match method {
            Call::ChangesSince => Kind::FeedPull,
            Call::Seen => Kind::LastSeen,
            Call::PruneChunk => Kind::Prune,
            _ => self.activity.get(),
        };
        let c = cost(method, n);
        let counts = Counts {
            reads: float(c.reads),
            replica_reads: if c.replica { float(c.reads) } else { 0.0 },
            writes: float(c.writes),
            rows: float(rows),
        };
        let hour = usize::try_from((self.now.get() - self.day_start).max(0) / 3600)
            .unwrap_or(0)
            .min(23);
        let mut t = self.tally.borrow_mut();
        t.hourly.entry((kind, hour)).or_default().add(&counts, 1.0);
        t.by_method.entry(method).or_default().add(&counts, 1.0);
        *t.calls.entry(method).or_default() += 1;
    }

    /// The live sessions of a user, looked up without counting (for rows written).
    async fn live_sessions(&self, user_id: &str) -> usize {
        self.inner
            .user_sessions(user_id)
            .await
            .map_or(0, |v| v.iter().filter(|s| s.revoked_at.is_none()).count())
    }
}

impl<S: SessionStore + AdminStore + MaintenanceStore> SessionStore for Counting<S> {
    async fn sign_in(&self, s: &SignIn) -> Result<SignInOutcome, StoreError> {
        let existed = self.inner.user(&s.new_user_id, s.now).await?.is_some();
        let outcome = self.inner.sign_in(s).await?;
        // The profile UPDATE touches the user's row; a new user adds the user and the account;
        // a session row unless refused. (A changed name, picture or email adds a `changes` row:
        // the model's users keep theirs.)
        let rows = match &outcome {
            SignInOutcome::SignedIn { user, .. } if user.id == s.new_user_id && !existed => 4,
            SignInOutcome::SignedIn { .. } => 2,
            SignInOutcome::Disabled => 1,
            SignInOutcome::NotLinked => 0,
        };
        self.count(Call::SignIn, 0, rows);
        Ok(outcome)
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.count(Call::Session, 0, 0);
        self.inner.session(id).await
    }

    async fn session_after(
        &self,
        id: &str,
        bookmark: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.count(Call::SessionAfter, 0, 0);
        self.inner.session_after(id, bookmark).await
    }

    async fn changes_since(&self, since: UnixTime, limit: usize) -> Result<Pulled, StoreError> {
        self.count(Call::ChangesSince, 0, 0);
        self.inner.changes_since(since, limit).await
    }

    async fn seen(&self, ids: &[String], now: UnixTime) -> Result<(), StoreError> {
        self.count(Call::Seen, ids.len(), ids.len());
        self.inner.seen(ids, now).await
    }

    async fn revoke_session(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
        // The session row and its `changes` row, if it was live.
        let live = matches!(self.inner.session(id).await, Ok(Some(r)) if r.revoked_at.is_none());
        self.count(Call::RevokeSession, 0, 2 * usize::from(live));
        self.inner.revoke_session(id, now).await
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<(), StoreError> {
        let live = self.live_sessions(user_id).await;
        self.count(Call::RevokeUserSessions, 0, 2 * live);
        self.inner.revoke_user_sessions(user_id, now).await
    }

    async fn create_hand_off(&self, code: &HandOff, now: UnixTime) -> Result<(), StoreError> {
        self.count(Call::CreateHandOff, 2, 1);
        self.inner.create_hand_off(code, now).await
    }

    async fn redeem_hand_off(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<Option<HandOff>, StoreError> {
        let redeemed = self.inner.redeem_hand_off(code_hash, now).await?;
        self.count(Call::RedeemHandOff, 1, usize::from(redeemed.is_some()));
        Ok(redeemed)
    }

    async fn hand_off_session(&self, s: &SiteSession) -> Result<bool, StoreError> {
        let written = self.inner.hand_off_session(s).await?;
        self.count(Call::HandOffSession, 1, usize::from(written));
        Ok(written)
    }
}

impl<S: SessionStore + AdminStore + MaintenanceStore> AdminStore for Counting<S> {
    async fn list_users(
        &self,
        search: Option<&str>,
        after: Option<&str>,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<UserSummary>, StoreError> {
        self.count(Call::ListUsers, 0, 0);
        self.inner.list_users(search, after, limit, now).await
    }

    async fn user(&self, id: &str, now: UnixTime) -> Result<Option<UserSummary>, StoreError> {
        self.count(Call::User, 0, 0);
        self.inner.user(id, now).await
    }

    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>, StoreError> {
        self.count(Call::UserSessions, 0, 0);
        self.inner.user_sessions(user_id).await
    }

    async fn apply(
        &self,
        actor_user_id: &str,
        action: &AdminAction,
        now: UnixTime,
    ) -> Result<Applied, StoreError> {
        let before = self
            .inner
            .user(action.user_id(), now)
            .await?
            .map(|u| u.user);
        let live = self.live_sessions(action.user_id()).await;
        let applied = self.inner.apply(actor_user_id, action, now).await?;
        // The audit row, the changed rows, and a `changes` row for each row a trigger watches.
        let rows = match (applied, action, before) {
            (Applied::NoMatch, ..) | (_, _, None) => 0,
            (Applied::Done, AdminAction::SetRole { role, .. }, Some(u)) => {
                2 + usize::from(u.role != *role)
            }
            (Applied::Done, AdminAction::Disable { .. }, Some(u)) => {
                2 + usize::from(u.disabled_at.is_none()) + 2 * live
            }
            (Applied::Done, AdminAction::Enable { .. }, Some(u)) => {
                2 + usize::from(u.disabled_at.is_some())
            }
            (Applied::Done, AdminAction::RevokeSession { .. }, Some(_)) => 3,
            (Applied::Done, AdminAction::RevokeAll { .. }, Some(_)) => 1 + 2 * live,
        };
        self.count(Call::Apply, apply_statements(action), rows);
        Ok(applied)
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.count(Call::AuditLog, 0, 0);
        self.inner.audit_log(limit).await
    }
}

impl<S: SessionStore + AdminStore + RiscStore + MaintenanceStore> RiscStore for Counting<S> {
    async fn security_event(
        &self,
        jti: &str,
        changes: &[RiscChange<'_>],
        now: UnixTime,
        forget_before: UnixTime,
    ) -> Result<Delivery, StoreError> {
        // Rows are not modelled: the model's day has no security events.
        self.count(Call::SecurityEvent, security_event_statements(changes), 0);
        self.inner
            .security_event(jti, changes, now, forget_before)
            .await
    }
}

impl<S: SessionStore + AdminStore + MaintenanceStore> MaintenanceStore for Counting<S> {
    // `prune` is the trait's own: a run of chunks, each counted here.
    async fn prune_chunk(
        &self,
        what: Prunable,
        before: UnixTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let deleted = self.inner.prune_chunk(what, before, limit).await?;
        let sessions = matches!(what, Prunable::ExpiredSessions | Prunable::RevokedSessions);
        // The rows deleted, and for sessions at most as many users' last activity kept.
        let rows = usize::try_from(deleted).unwrap_or(usize::MAX);
        self.count(
            Call::PruneChunk,
            1 + usize::from(sessions),
            rows * (1 + usize::from(sessions)),
        );
        Ok(deleted)
    }
}
