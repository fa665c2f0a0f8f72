//! `UserStore` on D1. Sign-in is one batch (a transaction), so concurrent first sign-ins of
//! one person end with one user row.

use std::time::Duration;

use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};
use worker::{D1DatabaseSession, D1PreparedStatement};

use crate::prune::LAST_SEEN_OF_U;
use crate::store::{
    AdminAction, AdminStore, Applied, AuditEntry, Change, Delivery, HandOff, MaintenanceStore,
    Prunable, Pulled, RiscChange, RiscEffect, RiscStore, SessionInfo, SessionRecord, SessionStore,
    SignIn, SignInOutcome, SiteSession, StoreError, User, UserSummary,
};
use crate::time::UnixTime;

/// The D1 store. The binding is looked up on first use: the hot path never touches it, and a
/// deployment without `DB` fails only where D1 is needed, with a logged reason.
pub(super) struct D1Store<'e> {
    env: &'e worker::Env,
    /// `LOG_D1_QUERIES`: log each statement's SQL (placeholders only, never values).
    log_queries: bool,
}

impl<'e> D1Store<'e> {
    /// The store of the `DB` binding of `env`.
    pub(super) fn new(env: &'e worker::Env, log_queries: bool) -> Self {
        Self { env, log_queries }
    }

    /// A D1 session on the primary (the D1 Sessions API, `first-primary`), for every read but
    /// [`SessionStore::session_after`]: the change feed bounds revocation only if it is complete
    /// up to its pull, sign-in and admin actions write, and the admin page must show its own
    /// changes (docs/scale.md).
    fn db(&self) -> Result<D1DatabaseSession, StoreError> {
        self.session_at("first-primary")
    }

    /// A D1 session that starts at `constraint_or_bookmark`: `first-primary`, or a bookmark
    /// (any replica at least as fresh as the point it names).
    fn session_at(&self, constraint_or_bookmark: &str) -> Result<D1DatabaseSession, StoreError> {
        self.env
            .d1("DB")
            .map_err(|e| fail("binding DB", &e))?
            .with_session(Some(constraint_or_bookmark))
            .map_err(|e| fail("session", &e))
    }

    /// Every row of one query.
    async fn rows<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
        args: &[JsValue],
    ) -> Result<Vec<T>, StoreError> {
        self.statement(sql, args)?
            .all()
            .bounded(what)
            .await?
            .results()
            .map_err(|e| fail(what, &e))
    }

    fn statement(&self, sql: &str, args: &[JsValue]) -> Result<D1PreparedStatement, StoreError> {
        self.statement_in(&self.db()?, sql, args)
    }

    /// Every statement is prepared here (and logged here with `LOG_D1_QUERIES`; recorded here
    /// for the query plan check in the store contract build). clippy.toml refuses `prepare`
    /// anywhere else.
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place statements are prepared"
    )]
    fn statement_in(
        &self,
        db: &D1DatabaseSession,
        sql: &str,
        args: &[JsValue],
    ) -> Result<D1PreparedStatement, StoreError> {
        if self.log_queries {
            let line = serde_json::json!({ "level": "debug", "event": "d1_query", "sql": sql });
            worker::console_log!("{line}");
        }
        #[cfg(feature = "contract")]
        super::contract::record(sql);
        db.prepare(sql).bind(args).map_err(|e| fail("bind", &e))
    }
}

/// How long one D1 call may take. D1 lets a query run 30 s; a visitor should not wait that long
/// for a page, and a call that never answers (a stuck database, a lost connection) must end in
/// the 503 "briefly unavailable" page and a log line, not a request that hangs. A write given up
/// on may still land: every write here is safe to repeat (sign-in, revocation, admin actions).
const D1_WAIT: Duration = Duration::from_secs(10);

/// Every D1 call is awaited through [`Bounded::bounded`]: its error, or its silence for
/// [`D1_WAIT`], becomes a [`StoreError`] that names the call.
trait Bounded<T>: Future<Output = worker::Result<T>> + Sized {
    async fn bounded(self, what: &str) -> Result<T, StoreError> {
        super::within(D1_WAIT, self)
            .await
            .ok_or_else(|| {
                StoreError(format!(
                    "D1 {what}: no answer within {} s",
                    D1_WAIT.as_secs()
                ))
            })?
            .map_err(|e| fail(what, &e))
    }
}

impl<T, F: Future<Output = worker::Result<T>>> Bounded<T> for F {}

fn fail(what: &str, e: &worker::Error) -> StoreError {
    // D1's messages name tables and constraints, never bound values. The message only: the
    // `Display` of `worker::Error::D1` is a debug dump with the JavaScript stack (and
    // `D1Error`'s own `Display` assumes the cause is a string, which it is not).
    let message = match e {
        worker::Error::D1(d1) => {
            let error: &js_sys::Error = d1.as_ref();
            let cause = error.cause();
            match cause.dyn_ref::<js_sys::Error>() {
                Some(cause) => String::from(cause.message()),
                None => String::from(error.message()),
            }
        }
        e => e.to_string(),
    };
    // Its first line: local D1 (miniflare) puts its own stack in the message after it.
    let message = message.lines().next().unwrap_or_default();
    StoreError(format!("D1 {what}: {message}"))
}

fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

fn opt(s: Option<&str>) -> JsValue {
    s.map_or(JsValue::NULL, JsValue::from_str)
}

fn int(n: i64) -> JsValue {
    // Unix seconds fit an f64 exactly.
    JsValue::from_f64(n as f64)
}

#[derive(Deserialize)]
struct UserRow {
    id: String,
    email: String,
    name: Option<String>,
    image: Option<String>,
    role: String,
    disabled_at: Option<f64>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: r.id,
            email: r.email,
            name: r.name,
            image: r.image,
            role: r.role,
            disabled_at: r.disabled_at.map(|t| t as i64),
        }
    }
}

#[derive(Deserialize)]
struct SessionRow {
    session_id: String,
    expires_at: f64,
    revoked_at: Option<f64>,
    #[serde(flatten)]
    user: UserRow,
}

impl SessionRow {
    fn into_record(self) -> SessionRecord {
        SessionRecord {
            id: self.session_id,
            expires_at: self.expires_at as i64,
            revoked_at: self.revoked_at.map(|t| t as i64),
            user: self.user.into(),
        }
    }
}

#[derive(Deserialize)]
struct SummaryRow {
    created_at: f64,
    last_seen_at: Option<f64>,
    active_sessions: f64,
    #[serde(flatten)]
    user: UserRow,
}

impl From<SummaryRow> for UserSummary {
    fn from(r: SummaryRow) -> Self {
        Self {
            created_at: r.created_at as i64,
            last_seen_at: r.last_seen_at.map(|t| t as i64),
            active_sessions: r.active_sessions as i64,
            user: r.user.into(),
        }
    }
}

#[derive(Deserialize)]
struct SessionInfoRow {
    id: String,
    created_at: f64,
    last_seen_at: f64,
    expires_at: f64,
    revoked_at: Option<f64>,
    user_agent: Option<String>,
    site: Option<String>,
}

#[derive(Deserialize)]
struct AuditRow {
    actor: Option<String>,
    action: String,
    target: Option<String>,
    created_at: f64,
}

// One row per user with its last activity (kept on the user row when pruning deleted the
// sessions that had it) and live sessions; the subqueries use `sessions_user_id`, so a page of
// 50 costs 100 index lookups whatever the table size.
fn summary_select() -> String {
    format!(
        "SELECT u.id, u.email, u.name, u.image, u.role, u.disabled_at, u.created_at, \
         {LAST_SEEN_OF_U} AS last_seen_at, \
         (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > ?1) \
         AS active_sessions FROM users u"
    )
}

const CREATE_USER: &str = "INSERT INTO users (id, email, email_verified, name, image, role, created_at, updated_at) \
     SELECT ?1, ?2, 1, ?3, ?4, 'user', ?5, ?5 \
     WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE provider = ?6 AND provider_account_id = ?7) \
     ON CONFLICT(email) DO NOTHING";
// Links only the user this batch created (id = ?1): an existing user is never linked by email.
const LINK_ACCOUNT: &str = "INSERT INTO accounts (provider, provider_account_id, user_id, created_at) \
     SELECT ?2, ?3, id, ?4 FROM users WHERE id = ?1 \
     ON CONFLICT(provider, provider_account_id) DO NOTHING";
// The email follows the Google account (?7), unless another user has it (`email` is NOCASE, so
// `=` compares case-insensitively): then the stored email, and the role, stay as they are;
// `ADMIN_EMAILS` (?4) never promotes a user whose stored email is not the one that matched.
const UPDATE_PROFILE: &str = "UPDATE users SET name = ?1, image = ?2, email_verified = 1, updated_at = ?3, \
     email = CASE WHEN EXISTS (SELECT 1 FROM users o WHERE o.email = ?7 AND o.id <> users.id) \
     THEN email ELSE ?7 END, \
     role = CASE WHEN ?4 = 1 AND NOT EXISTS (SELECT 1 FROM users o WHERE o.email = ?7 AND o.id <> users.id) \
     THEN 'admin' ELSE role END \
     WHERE id = (SELECT user_id FROM accounts WHERE provider = ?5 AND provider_account_id = ?6)";
const CREATE_SESSION: &str = "INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, user_agent, site) \
     SELECT ?1, u.id, ?2, ?3, ?2, ?4, ?7 FROM users u JOIN accounts a ON a.user_id = u.id \
     WHERE a.provider = ?5 AND a.provider_account_id = ?6 AND u.disabled_at IS NULL";
const FIND_USER: &str = "SELECT u.id, u.email, u.name, u.image, u.role, u.disabled_at \
     FROM users u JOIN accounts a ON a.user_id = u.id WHERE a.provider = ?1 AND a.provider_account_id = ?2";
const FIND_SESSION: &str = "SELECT s.id AS session_id, s.expires_at, s.revoked_at, \
     u.id, u.email, u.name, u.image, u.role, u.disabled_at \
     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1";

// A sign-in (`SITES`): the auth origin's session and the site sessions handed off from it. The
// root of session ?1 is its parent, or itself; both statements find it by primary key, and the
// children by `sessions_parent_id`.
const REVOKE_HANDED_OFF: &str = "UPDATE sessions SET revoked_at = ?2 WHERE revoked_at IS NULL \
     AND parent_id = (SELECT COALESCE(parent_id, id) FROM sessions WHERE id = ?1)";
const REVOKE_ROOT: &str = "UPDATE sessions SET revoked_at = ?2 WHERE revoked_at IS NULL \
     AND id = (SELECT COALESCE(parent_id, id) FROM sessions WHERE id = ?1)";
const CREATE_HAND_OFF: &str = "INSERT INTO handoff_codes (code_hash, user_id, session_id, site, state_hash, expires_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const FORGET_HAND_OFFS: &str = "DELETE FROM handoff_codes WHERE expires_at < ?1";
// Single use: the first UPDATE takes the code, any later one finds `used_at` set.
const REDEEM_HAND_OFF: &str = "UPDATE handoff_codes SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL \
     RETURNING code_hash, user_id, session_id, site, state_hash, expires_at";
// A child of a live sign-in only: same user, same end; none if the parent is revoked or ended,
// or its user disabled.
const CREATE_SITE_SESSION: &str = "INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, user_agent, site, parent_id) \
     SELECT ?1, p.user_id, ?2, p.expires_at, ?2, ?3, ?4, p.id FROM sessions p JOIN users u ON u.id = p.user_id \
     WHERE p.id = ?5 AND p.revoked_at IS NULL AND p.expires_at > ?2 AND u.disabled_at IS NULL";

// The change feed, written by triggers (migrations/0003_scale.sql); `changes_at` serves it.
const CHANGES_SINCE: &str = "SELECT kind, id, at FROM changes WHERE at >= ?1 LIMIT ?2";
// `last_seen_at` of a batch of sessions (a JSON array of ids), by primary key, never backwards.
const SEEN: &str = "UPDATE sessions SET last_seen_at = MAX(last_seen_at, ?2) \
     WHERE id IN (SELECT value FROM json_each(?1))";

impl SessionStore for D1Store<'_> {
    async fn sign_in(&self, s: &SignIn) -> Result<SignInOutcome, StoreError> {
        let now = int(s.now.secs());
        let (provider, subject) = (text(s.provider), text(&s.subject));
        let statements = vec![
            self.statement(
                CREATE_USER,
                &[
                    text(&s.new_user_id),
                    text(&s.email),
                    opt(s.name.as_deref()),
                    opt(s.image.as_deref()),
                    now.clone(),
                    provider.clone(),
                    subject.clone(),
                ],
            )?,
            self.statement(
                LINK_ACCOUNT,
                &[
                    text(&s.new_user_id),
                    provider.clone(),
                    subject.clone(),
                    now.clone(),
                ],
            )?,
            self.statement(
                UPDATE_PROFILE,
                &[
                    opt(s.name.as_deref()),
                    opt(s.image.as_deref()),
                    now.clone(),
                    int(i64::from(s.make_admin)),
                    provider.clone(),
                    subject.clone(),
                    text(&s.email),
                ],
            )?,
            self.statement(
                CREATE_SESSION,
                &[
                    text(&s.session_id),
                    now.clone(),
                    int(s.expires_at.secs()),
                    opt(s.user_agent.as_deref()),
                    provider.clone(),
                    subject.clone(),
                    text(&s.site),
                ],
            )?,
            self.statement(FIND_USER, &[provider, subject])?,
        ];
        let results = self
            .db()?
            .batch(statements)
            .bounded("sign-in batch")
            .await?;
        let rows: Vec<UserRow> = results
            .last()
            .ok_or_else(|| StoreError("D1 sign-in batch returned nothing".into()))?
            .results()
            .map_err(|e| fail("sign-in read", &e))?;
        Ok(match rows.into_iter().next().map(User::from) {
            None => SignInOutcome::NotLinked,
            Some(user) if user.disabled_at.is_some() => SignInOutcome::Disabled,
            Some(user) => SignInOutcome::SignedIn {
                // Stored exactly as sent unless another user has that address.
                email_kept: user.email != s.email,
                user,
            },
        })
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row: Option<SessionRow> = self
            .statement(FIND_SESSION, &[text(id)])?
            .first(None)
            .bounded("session read")
            .await?;
        Ok(row.map(SessionRow::into_record))
    }

    async fn changes_since(&self, since: UnixTime, limit: usize) -> Result<Pulled, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            kind: String,
            id: String,
            at: f64,
        }
        // On the primary: the revocation bound rests on the feed being complete up to its pull.
        let db = self.db()?;
        let rows: Vec<Row> = self
            .statement_in(
                &db,
                CHANGES_SINCE,
                &[int(since.secs()), JsValue::from_f64(limit as f64)],
            )?
            .all()
            .bounded("change feed")
            .await?
            .results()
            .map_err(|e| fail("change feed", &e))?;
        let bookmark = db.get_bookmark().ok().flatten();
        let changes = rows
            .into_iter()
            .filter_map(|r| {
                let at = UnixTime(r.at as i64);
                match r.kind.as_str() {
                    "session" => Some(Change::Session(r.id, at)),
                    "user" => Some(Change::User(r.id, at)),
                    _ => None,
                }
            })
            .collect();
        Ok(Pulled { changes, bookmark })
    }

    async fn session_after(
        &self,
        id: &str,
        bookmark: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        // Any replica at least as fresh as the feed's pull: stale only in ways the feed already
        // accounts for (the token is issued as of the pull).
        let row: Option<SessionRow> = self
            .statement_in(&self.session_at(bookmark)?, FIND_SESSION, &[text(id)])?
            .first(None)
            .bounded("session read")
            .await?;
        Ok(row.map(SessionRow::into_record))
    }

    async fn seen(&self, ids: &[String], now: UnixTime) -> Result<(), StoreError> {
        // A few statements of up to 100 ids each, in one batch: one round trip for an
        // isolate's whole batch.
        let statements = ids
            .chunks(100)
            .map(|chunk| {
                let list = serde_json::to_string(chunk).unwrap_or_else(|_| "[]".into());
                self.statement(SEEN, &[JsValue::from_str(&list), int(now.secs())])
            })
            .collect::<Result<Vec<_>, _>>()?;
        if statements.is_empty() {
            return Ok(());
        }
        self.db()?.batch(statements).bounded("last seen").await?;
        Ok(())
    }

    async fn revoke_session(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
        // One batch (one transaction): the children first, while the root is still found.
        let args = [text(id), int(now.secs())];
        let statements = vec![
            self.statement(REVOKE_HANDED_OFF, &args)?,
            self.statement(REVOKE_ROOT, &args)?,
            self.statement(
                "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                &args,
            )?,
        ];
        self.db()?.batch(statements).bounded("revoke").await?;
        Ok(())
    }

    async fn create_hand_off(&self, c: &HandOff, now: UnixTime) -> Result<(), StoreError> {
        let statements = vec![
            self.statement(FORGET_HAND_OFFS, &[int(now.secs())])?,
            self.statement(
                CREATE_HAND_OFF,
                &[
                    text(&c.code_hash),
                    text(&c.user_id),
                    text(&c.session_id),
                    text(&c.site),
                    text(&c.state_hash),
                    int(c.expires_at),
                ],
            )?,
        ];
        self.db()?
            .batch(statements)
            .bounded("hand-off code")
            .await?;
        Ok(())
    }

    async fn redeem_hand_off(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<Option<HandOff>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            code_hash: String,
            user_id: String,
            session_id: String,
            site: String,
            state_hash: String,
            expires_at: f64,
        }
        let row: Option<Row> = self
            .statement(REDEEM_HAND_OFF, &[text(code_hash), int(now.secs())])?
            .first(None)
            .bounded("hand-off redeem")
            .await?;
        Ok(row.map(|r| HandOff {
            code_hash: r.code_hash,
            user_id: r.user_id,
            session_id: r.session_id,
            site: r.site,
            state_hash: r.state_hash,
            expires_at: r.expires_at as i64,
        }))
    }

    async fn hand_off_session(&self, s: &SiteSession) -> Result<bool, StoreError> {
        let result = self
            .statement(
                CREATE_SITE_SESSION,
                &[
                    text(&s.id),
                    int(s.now.secs()),
                    opt(s.user_agent.as_deref()),
                    text(&s.site),
                    text(&s.parent_id),
                ],
            )?
            .run()
            .bounded("site session")
            .await?;
        let written = result
            .meta()
            .map_err(|e| fail("site session result", &e))?
            .and_then(|m| m.changes)
            .ok_or_else(|| StoreError("D1 site session: no change count".into()))?;
        Ok(written > 0)
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<(), StoreError> {
        self.statement(
            "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            &[text(user_id), int(now.secs())],
        )?
        .run()
        .bounded("revoke all")
        .await?;
        Ok(())
    }
}

impl AdminStore for D1Store<'_> {
    async fn list_users(
        &self,
        search: Option<&str>,
        after: Option<&str>,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<UserSummary>, StoreError> {
        // Keyset pagination and prefix search are ranges on the email index (NOCASE), so a
        // page is an index seek, never a scan, with 100k users as with 10. Only fixed SQL
        // fragments are joined; every value is bound.
        let mut sql = summary_select();
        let mut args = vec![int(now.secs())];
        let mut conditions = Vec::new();
        if let Some(q) = search.filter(|q| !q.is_empty()) {
            args.push(text(q));
            conditions.push(format!("u.email >= ?{}", args.len()));
            args.push(JsValue::from_str(&format!("{q}\u{10FFFF}")));
            conditions.push(format!("u.email < ?{}", args.len()));
        }
        if let Some(a) = after {
            args.push(text(a));
            conditions.push(format!("u.email > ?{}", args.len()));
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        args.push(JsValue::from_f64(f64::from(limit)));
        sql.push_str(" ORDER BY u.email LIMIT ?");
        sql.push_str(&args.len().to_string());
        let rows: Vec<SummaryRow> = self.rows("list users", &sql, &args).await?;
        Ok(rows.into_iter().map(UserSummary::from).collect())
    }

    async fn user(&self, id: &str, now: UnixTime) -> Result<Option<UserSummary>, StoreError> {
        let row: Option<SummaryRow> = self
            .statement(
                &format!("{} WHERE u.id = ?2", summary_select()),
                &[int(now.secs()), text(id)],
            )?
            .first(None)
            .bounded("user read")
            .await?;
        Ok(row.map(UserSummary::from))
    }

    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>, StoreError> {
        let rows: Vec<SessionInfoRow> = self
            .rows(
                "sessions read",
                "SELECT id, created_at, last_seen_at, expires_at, revoked_at, user_agent, site FROM sessions \
                 WHERE user_id = ?1 ORDER BY created_at DESC LIMIT 50",
                &[text(user_id)],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| SessionInfo {
                id: r.id,
                created_at: r.created_at as i64,
                last_seen_at: r.last_seen_at as i64,
                expires_at: r.expires_at as i64,
                revoked_at: r.revoked_at.map(|t| t as i64),
                user_agent: r.user_agent,
                site: r.site,
            })
            .collect())
    }

    async fn apply(
        &self,
        actor: &str,
        action: &AdminAction,
        now: UnixTime,
    ) -> Result<Applied, StoreError> {
        let t = int(now.secs());
        let uid = text(action.user_id());
        let revoke_all =
            "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL";
        // The audit row goes first, written only if the change will touch a row (the same
        // condition as the change's own WHERE, in the same transaction): an action on an id that
        // matches nothing is never recorded as done, and its change then touches nothing.
        let (condition, condition_args) = match action {
            AdminAction::SetRole { .. }
            | AdminAction::Disable { .. }
            | AdminAction::Enable { .. } => (
                "EXISTS (SELECT 1 FROM users WHERE id = ?5)",
                vec![uid.clone()],
            ),
            AdminAction::RevokeSession { session_id, .. } => (
                "EXISTS (SELECT 1 FROM sessions WHERE id = ?6 AND user_id = ?5 AND revoked_at IS NULL)",
                vec![uid.clone(), text(session_id)],
            ),
            AdminAction::RevokeAll { .. } => (
                "EXISTS (SELECT 1 FROM sessions WHERE user_id = ?5 AND revoked_at IS NULL)",
                vec![uid.clone()],
            ),
        };
        let mut audit_args = vec![
            text(actor),
            text(action.name()),
            text(&action.target()),
            t.clone(),
        ];
        audit_args.extend(condition_args);
        let mut statements = vec![self.statement(
            &format!(
                "INSERT INTO audit_log (actor_user_id, action, target, created_at) \
                 SELECT ?1, ?2, ?3, ?4 WHERE {condition}"
            ),
            &audit_args,
        )?];
        match action {
            AdminAction::SetRole { role, .. } => statements.push(self.statement(
                "UPDATE users SET role = ?2, updated_at = ?3 WHERE id = ?1",
                &[uid, text(role), t],
            )?),
            AdminAction::Disable { .. } => {
                statements.push(self.statement(
                    "UPDATE users SET disabled_at = COALESCE(disabled_at, ?2), updated_at = ?2 WHERE id = ?1",
                    &[uid.clone(), t.clone()],
                )?);
                statements.push(self.statement(revoke_all, &[uid, t])?);
            }
            AdminAction::Enable { .. } => statements.push(self.statement(
                "UPDATE users SET disabled_at = NULL, updated_at = ?2 WHERE id = ?1",
                &[uid, t],
            )?),
            AdminAction::RevokeSession { session_id, .. } => {
                // A sign-in at the auth origin (`SITES`) ends with the site sessions handed off
                // from it; a site's session ends alone.
                statements.push(self.statement(
                    "UPDATE sessions SET revoked_at = ?3 WHERE parent_id = ?2 AND user_id = ?1 AND revoked_at IS NULL",
                    &[uid.clone(), text(session_id), t.clone()],
                )?);
                statements.push(self.statement(
                    "UPDATE sessions SET revoked_at = ?3 WHERE id = ?2 AND user_id = ?1 AND revoked_at IS NULL",
                    &[uid, text(session_id), t],
                )?);
            }
            AdminAction::RevokeAll { .. } => {
                statements.push(self.statement(revoke_all, &[uid, t])?);
            }
        }
        let results = self.db()?.batch(statements).bounded("admin action").await?;
        let recorded = results
            .first()
            .map(|r| r.meta().map_err(|e| fail("admin action result", &e)))
            .transpose()?
            .flatten()
            .and_then(|m| m.changes)
            .ok_or_else(|| StoreError("D1 admin action: no change count".into()))?;
        Ok(if recorded > 0 {
            Applied::Done
        } else {
            Applied::NoMatch
        })
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = self
            .rows(
                "audit read",
                "SELECT u.email AS actor, a.action, a.target, a.created_at FROM audit_log a \
                 LEFT JOIN users u ON u.id = a.actor_user_id ORDER BY a.id DESC LIMIT ?1",
                &[JsValue::from_f64(f64::from(limit))],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                actor: r.actor,
                action: r.action,
                target: r.target,
                created_at: r.created_at as i64,
            })
            .collect())
    }
}

/// The user of a Google account, by provider and subject (`?1`), never by email.
const RISC_USER: &str =
    "(SELECT user_id FROM accounts WHERE provider = 'google' AND provider_account_id = ?1)";

impl RiscStore for D1Store<'_> {
    async fn security_event(
        &self,
        jti: &str,
        changes: &[RiscChange<'_>],
        now: UnixTime,
        forget_before: UnixTime,
    ) -> Result<Delivery, StoreError> {
        let t = int(now.secs());
        // One batch, one transaction: the plain INSERT of a `jti` already recorded fails, and
        // with it the whole batch, so a replayed SET changes nothing.
        let mut statements = vec![
            self.statement(
                "DELETE FROM risc_events WHERE received_at < ?1",
                &[int(forget_before.secs())],
            )?,
            self.statement(
                "INSERT INTO risc_events (jti, received_at) VALUES (?1, ?2)",
                &[text(jti), t.clone()],
            )?,
        ];
        let mut audits = Vec::new();
        for change in changes {
            let subject = text(change.subject);
            let suffix = change.detail.map_or(String::new(), |d| format!(" {d}"));
            audits.push(statements.len());
            statements.push(self.statement(
                "INSERT INTO audit_log (actor_user_id, action, target, created_at) \
                 SELECT NULL, ?2, a.user_id || ?3, ?4 FROM accounts a \
                 WHERE a.provider = 'google' AND a.provider_account_id = ?1",
                &[
                    subject.clone(),
                    text(change.action),
                    text(&suffix),
                    t.clone(),
                ],
            )?);
            if change.effect == RiscEffect::Disable {
                statements.push(self.statement(
                    &format!(
                        "UPDATE users SET disabled_at = COALESCE(disabled_at, ?2), updated_at = ?2 \
                         WHERE id = {RISC_USER}"
                    ),
                    &[subject.clone(), t.clone()],
                )?);
            }
            if change.effect != RiscEffect::Record {
                statements.push(self.statement(
                    &format!(
                        "UPDATE sessions SET revoked_at = ?2 \
                         WHERE user_id = {RISC_USER} AND revoked_at IS NULL"
                    ),
                    &[subject, t.clone()],
                )?);
            }
        }
        let results = match self.db()?.batch(statements).bounded("security event").await {
            Ok(results) => results,
            Err(e) => {
                let seen: Option<serde_json::Value> = self
                    .statement(
                        "SELECT 1 AS seen FROM risc_events WHERE jti = ?1",
                        &[text(jti)],
                    )?
                    .first(None)
                    .bounded("security event read")
                    .await?;
                return if seen.is_some() {
                    Ok(Delivery::Replayed)
                } else {
                    Err(e)
                };
            }
        };
        let mut matched = 0;
        for i in audits {
            let changes = results
                .get(i)
                .map(|r| r.meta().map_err(|e| fail("security event result", &e)))
                .transpose()?
                .flatten()
                .and_then(|m| m.changes)
                .ok_or_else(|| StoreError("D1 security event: no change count".into()))?;
            matched += usize::from(changes > 0);
        }
        Ok(Delivery::Applied { matched })
    }
}

// Pruning, one chunk at a time: `?1` the cut-off time, `?2` the chunk size. Each chunk picks the
// oldest rows by the kind's own index (`ORDER BY` the indexed time, then rowid: the index's own
// order, so no sort and no scan), and a session chunk's two statements pick the same rows in one
// transaction. Their plans, like every statement's, are checked against the migrations by the
// store contract suite (tests/e2e/store_contract.test.mjs, docs/scale.md).

/// Which sessions one chunk takes: the oldest past their end, by `sessions_expires_at`, or the
/// oldest revoked, by the partial index `sessions_revoked_at` (`revoked_at IS NOT NULL`).
macro_rules! session_chunk {
    (expired) => {
        "expires_at < ?1 ORDER BY expires_at, rowid LIMIT ?2"
    };
    (revoked) => {
        "revoked_at IS NOT NULL AND revoked_at < ?1 ORDER BY revoked_at, rowid LIMIT ?2"
    };
}

/// A session chunk's two statements, on the same rows. First each of their users keeps the
/// latest `last_seen_at` of all their sessions, or their own if later (`users.last_seen_at`
/// never moves back; no trigger watches it, so this feeds no change); then the rows go.
macro_rules! fold_then_delete {
    ($which:ident) => {
        (
            Some(concat!(
                "UPDATE users SET last_seen_at = MAX(IFNULL(last_seen_at, 0), \
                 IFNULL((SELECT MAX(s.last_seen_at) FROM sessions s WHERE s.user_id = users.id), 0)) \
                 WHERE id IN (SELECT user_id FROM sessions WHERE ",
                session_chunk!($which),
                ")"
            )),
            concat!(
                "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE ",
                session_chunk!($which),
                ")"
            ),
        )
    };
}

/// The statements of one chunk: the fold (sessions only), then the DELETE.
fn prune_statements(what: Prunable) -> (Option<&'static str>, &'static str) {
    match what {
        Prunable::ExpiredSessions => fold_then_delete!(expired),
        Prunable::RevokedSessions => fold_then_delete!(revoked),
        Prunable::AuditLog => (
            None,
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log \
             WHERE created_at < ?1 ORDER BY created_at, id LIMIT ?2)",
        ),
        Prunable::RiscEvents => (
            None,
            "DELETE FROM risc_events WHERE rowid IN (SELECT rowid FROM risc_events \
             WHERE received_at < ?1 ORDER BY received_at, rowid LIMIT ?2)",
        ),
        Prunable::Changes => (
            None,
            "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes \
             WHERE at < ?1 ORDER BY at, seq LIMIT ?2)",
        ),
    }
}

impl MaintenanceStore for D1Store<'_> {
    async fn prune_chunk(
        &self,
        what: Prunable,
        before: UnixTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let args = [int(before.secs()), JsValue::from_f64(f64::from(limit))];
        let (fold, delete) = prune_statements(what);
        let mut statements = Vec::with_capacity(2);
        if let Some(fold) = fold {
            statements.push(self.statement(fold, &args)?);
        }
        statements.push(self.statement(delete, &args)?);
        // One batch, one transaction: a user's last activity is kept exactly when their
        // sessions go.
        let results = self.db()?.batch(statements).bounded("prune").await?;
        let deleted = results
            .last()
            .map(|r| r.meta().map_err(|e| fail("prune result", &e)))
            .transpose()?
            .flatten()
            .and_then(|m| m.changes)
            .ok_or_else(|| StoreError("D1 prune: no change count".into()))?;
        Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
    }
}
