//! The user and session store seam: D1 in production (`runtime::d1`), memory in tests.

pub use crate::session::feed::Change;
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
    /// The site's origin (`sessions.site`).
    pub site: String,
}

/// A one-time hand-off code (`SITES`), as stored: only hashes of the code and of the state it
/// is bound to, so that a read of the table hands nobody a usable code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandOff {
    /// SHA-256 of the code, base64url.
    pub code_hash: String,
    /// The user signed in at the auth origin.
    pub user_id: String,
    /// That sign-in's session at the auth origin: the new site session's parent.
    pub session_id: String,
    /// The site origin the code is for.
    pub site: String,
    /// SHA-256 of the state the site set in its own cookie before the redirect, base64url.
    pub state_hash: String,
    /// The code's end (at most 60 s after it was made).
    pub expires_at: i64,
}

/// A site's session handed off from a sign-in at the auth origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteSession {
    /// Id of the new session row.
    pub id: String,
    /// The auth origin's session it comes from (its end is the new session's end).
    pub parent_id: String,
    /// The site's origin.
    pub site: String,
    /// Now.
    pub now: UnixTime,
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

/// What a pull of the change feed read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pulled {
    /// The changes.
    pub changes: Vec<Change>,
    /// Where the read stood in the database's history (a D1 Sessions API bookmark), if the
    /// store has one: later reads anchored at it see everything the pull saw.
    pub bookmark: Option<String>,
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
    /// The user's last activity: the latest `last_seen_at` of their sessions, or of the
    /// sessions pruned since (kept on the user row), whichever is later.
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
    /// The site it is for (`SITES`); `None` for sessions made before sites were recorded.
    pub site: Option<String>,
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

/// What sign-in, the gate and sign-out need: users and accounts at sign-in, the change feed and
/// session reads of renewal, last-seen writes, revocation.
#[expect(
    async_fn_in_trait,
    reason = "single-threaded wasm: no Send bound wanted"
)]
pub trait SessionStore {
    /// Finds the user by provider and subject (never by email alone), creates it if the email
    /// is free, updates its profile (email, name, picture) and inserts a session — atomically,
    /// so concurrent first sign-ins of one person end with one user. A changed email is taken
    /// only if no other user has it (case-insensitively); otherwise the stored one is kept.
    async fn sign_in(&self, sign_in: &SignIn) -> Result<SignInOutcome, StoreError>;

    /// The session and its user (one read, on the primary).
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// The session and its user, read where it is cheapest (a D1 read replica) but no older than
    /// the point `bookmark` names (a [`Pulled::bookmark`]): what a renewal the feed cannot grant
    /// reads. A store without replicas reads as [`SessionStore::session`] does.
    async fn session_after(
        &self,
        id: &str,
        bookmark: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let _ = bookmark;
        self.session(id).await
    }

    /// The change feed (one read, on the primary): sessions revoked and users changed at or
    /// after `since`, with their times, at most `limit` of them (docs/scale.md).
    async fn changes_since(&self, since: UnixTime, limit: usize) -> Result<Pulled, StoreError>;

    /// Marks sessions seen: `last_seen_at` = `now` (never earlier than it was), one batch.
    async fn seen(&self, ids: &[String], now: UnixTime) -> Result<(), StoreError>;

    /// Revokes one session and the rest of its sign-in: the auth origin's session it was
    /// handed off from (`SITES`), and every site session handed off from that one.
    async fn revoke_session(&self, id: &str, now: UnixTime) -> Result<(), StoreError>;

    /// Records a hand-off code, and deletes the codes whose end has passed.
    async fn create_hand_off(&self, code: &HandOff, now: UnixTime) -> Result<(), StoreError>;

    /// Uses up the code whose hash is `code_hash`, atomically: the first call gets it (whatever
    /// it was made for: the caller checks site, state and end), every later call `None`.
    async fn redeem_hand_off(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<Option<HandOff>, StoreError>;

    /// Inserts a site session of the sign-in `s.parent_id` (same user, same end), if that
    /// session is still live (neither revoked nor ended) and its user not disabled; `false`
    /// when it is not.
    async fn hand_off_session(&self, s: &SiteSession) -> Result<bool, StoreError>;

    /// Revokes every session of a user.
    async fn revoke_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<(), StoreError>;
}

/// What the admin page needs: lists, details, actions and their audit log.
#[expect(
    async_fn_in_trait,
    reason = "single-threaded wasm: no Send bound wanted"
)]
pub trait AdminStore {
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

/// One change that Google's Cross-Account Protection asks for, to the user whose Google account
/// is `subject` (matched by provider and subject, never by email).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiscChange<'a> {
    /// Google's account id (`sub`).
    pub subject: &'a str,
    /// What to do.
    pub effect: RiscEffect,
    /// The audit log's `action` (`risc:…`).
    pub action: &'a str,
    /// Added to the audit log's `target` after the user id (Google's `reason`), if any.
    pub detail: Option<&'a str>,
}

pub use crate::oidc::risc::Effect as RiscEffect;

/// What acting on a security event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Its `jti` was already recorded: nothing changed.
    Replayed,
    /// Recorded and applied; `matched` changes named a user of this site.
    Applied {
        /// How many changes found their user.
        matched: usize,
    },
}

/// What the RISC receiver (`POST /auth/risc`) needs.
#[expect(
    async_fn_in_trait,
    reason = "single-threaded wasm: no Send bound wanted"
)]
pub trait RiscStore {
    /// Acts on one security event, once and atomically: records `jti` (and forgets the ids
    /// received before `forget_before`), and applies each change to its user with an audit
    /// row (actor none, shown as Google). A `jti` already recorded changes nothing.
    async fn security_event(
        &self,
        jti: &str,
        changes: &[RiscChange<'_>],
        now: UnixTime,
        forget_before: UnixTime,
    ) -> Result<Delivery, StoreError>;
}

/// Every part: what the whole app is handed.
pub trait UserStore: SessionStore + AdminStore + RiscStore + MaintenanceStore {}

impl<T: SessionStore + AdminStore + RiscStore + MaintenanceStore> UserStore for T {}

// Pruning (issue 16): what a scheduled run deletes, and the store's part of it. The plan (cut-off
// times, chunk sizes) is made from the configuration in `crate::prune`.

/// The rows a pruning run may delete: each kind by its own index, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prunable {
    /// Sessions past their end (`expires_at`), by `sessions_expires_at`.
    ExpiredSessions,
    /// Sessions revoked (`revoked_at`), by `sessions_revoked_at`.
    RevokedSessions,
    /// Audit log rows (`created_at`), by `audit_log_created_at`.
    AuditLog,
    /// Security event ids already acted on (`received_at`), by `risc_events_received_at`.
    RiscEvents,
    /// Rows of the change feed (`changes.at`), by `changes_at`.
    Changes,
}

/// One pruning run: a cut-off time per kind of row (rows strictly older go), and how much one
/// run may delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prune {
    /// Sessions whose end is before this go.
    pub expired_before: UnixTime,
    /// Sessions revoked before this go.
    pub revoked_before: UnixTime,
    /// Audit rows written before this go.
    pub audit_before: UnixTime,
    /// Security event ids received before this go.
    pub risc_before: UnixTime,
    /// Change feed rows written before this go.
    pub changes_before: UnixTime,
    /// Rows per statement (one chunk).
    pub chunk: u32,
    /// Chunks per kind of row per run.
    pub max_chunks: u32,
}

/// What one pruning run deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Sessions past their end.
    pub expired_sessions: u64,
    /// Sessions revoked long ago (and not already counted as past their end).
    pub revoked_sessions: u64,
    /// Audit log rows.
    pub audit_entries: u64,
    /// Security event ids.
    pub risc_events: u64,
    /// Change feed rows.
    pub changes: u64,
    /// A kind of row used its whole budget (`max_chunks` full chunks): there may be more, and
    /// the next run goes on.
    pub more: bool,
}

/// What the scheduled handler needs: old rows deleted in bounded chunks.
#[expect(
    async_fn_in_trait,
    reason = "single-threaded wasm: no Send bound wanted"
)]
pub trait MaintenanceStore {
    /// Deletes at most `limit` rows of `what` older than `before` (the oldest first), in one
    /// transaction, and returns how many went. Sessions' `last_seen_at` is folded into their
    /// user's `last_seen_at` (the larger of both) first, in the same transaction, so the admin
    /// page's "last seen" survives their rows.
    async fn prune_chunk(
        &self,
        what: Prunable,
        before: UnixTime,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// One pruning run: each kind of row in turn, chunk after chunk, until a chunk comes back
    /// short or the kind's budget (`max_chunks`) is spent. Each chunk is its own statement, so
    /// no statement runs into D1's time limit however many rows are old, and the budget keeps a
    /// run within the queries one invocation may make. A failure stops the run; what was
    /// deleted stays deleted, and the next run goes on.
    async fn prune(&self, p: &Prune) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        for (what, before) in [
            (Prunable::ExpiredSessions, p.expired_before),
            (Prunable::RevokedSessions, p.revoked_before),
            (Prunable::AuditLog, p.audit_before),
            (Prunable::RiscEvents, p.risc_before),
            (Prunable::Changes, p.changes_before),
        ] {
            let mut deleted = 0;
            let mut full = false;
            for _ in 0..p.max_chunks {
                let n = self.prune_chunk(what, before, p.chunk).await?;
                deleted += n;
                full = n >= u64::from(p.chunk);
                if !full {
                    break;
                }
            }
            pruned.more |= full;
            *match what {
                Prunable::ExpiredSessions => &mut pruned.expired_sessions,
                Prunable::RevokedSessions => &mut pruned.revoked_sessions,
                Prunable::AuditLog => &mut pruned.audit_entries,
                Prunable::RiscEvents => &mut pruned.risc_events,
                Prunable::Changes => &mut pruned.changes,
            } = deleted;
        }
        Ok(pruned)
    }
}

#[cfg(any(test, feature = "contract"))]
pub mod contract;
#[cfg(test)]
pub mod memory;
