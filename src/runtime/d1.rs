//! `UserStore` on D1. Sign-in is one batch (a transaction), so concurrent first sign-ins of
//! one person end with one user row.

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

use crate::store::{SessionRecord, SignIn, SignInOutcome, StoreError, User, UserStore};
use crate::time::UnixTime;

/// The D1 store. The binding is looked up on first use: the hot path never touches it, and a
/// deployment without `DB` fails only where D1 is needed, with a logged reason.
pub struct D1Store<'e> {
    env: &'e worker::Env,
}

impl<'e> D1Store<'e> {
    /// The store of the `DB` binding of `env`.
    pub fn new(env: &'e worker::Env) -> Self {
        Self { env }
    }

    fn db(&self) -> Result<D1Database, StoreError> {
        self.env.d1("DB").map_err(|e| fail("binding DB", &e))
    }

    fn statement(&self, sql: &str, args: &[JsValue]) -> Result<D1PreparedStatement, StoreError> {
        self.db()?
            .prepare(sql)
            .bind(args)
            .map_err(|e| fail("bind", &e))
    }
}

fn fail(what: &str, e: &worker::Error) -> StoreError {
    // D1's messages name tables and constraints, never bound values.
    StoreError(format!("D1 {what}: {e}"))
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

const CREATE_USER: &str = "INSERT INTO users (id, email, email_verified, name, image, role, created_at, updated_at) \
     SELECT ?1, ?2, 1, ?3, ?4, 'user', ?5, ?5 \
     WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE provider = ?6 AND provider_account_id = ?7) \
     ON CONFLICT(email) DO NOTHING";
// Links only the user this batch created (id = ?1): an existing user is never linked by email.
const LINK_ACCOUNT: &str = "INSERT INTO accounts (provider, provider_account_id, user_id, created_at) \
     SELECT ?2, ?3, id, ?4 FROM users WHERE id = ?1 \
     ON CONFLICT(provider, provider_account_id) DO NOTHING";
const UPDATE_PROFILE: &str = "UPDATE users SET name = ?1, image = ?2, email_verified = 1, updated_at = ?3, \
     role = CASE WHEN ?4 = 1 THEN 'admin' ELSE role END \
     WHERE id = (SELECT user_id FROM accounts WHERE provider = ?5 AND provider_account_id = ?6)";
const CREATE_SESSION: &str = "INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, user_agent) \
     SELECT ?1, u.id, ?2, ?3, ?2, ?4 FROM users u JOIN accounts a ON a.user_id = u.id \
     WHERE a.provider = ?5 AND a.provider_account_id = ?6 AND u.disabled_at IS NULL";
const FIND_USER: &str = "SELECT u.id, u.email, u.name, u.image, u.role, u.disabled_at \
     FROM users u JOIN accounts a ON a.user_id = u.id WHERE a.provider = ?1 AND a.provider_account_id = ?2";
const FIND_SESSION: &str = "SELECT s.id AS session_id, s.expires_at, s.revoked_at, \
     u.id, u.email, u.name, u.image, u.role, u.disabled_at \
     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1";

impl UserStore for D1Store<'_> {
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
                ],
            )?,
            self.statement(FIND_USER, &[provider, subject])?,
        ];
        let results = self
            .db()?
            .batch(statements)
            .await
            .map_err(|e| fail("sign-in batch", &e))?;
        let rows: Vec<UserRow> = results
            .last()
            .ok_or_else(|| StoreError("D1 sign-in batch returned nothing".into()))?
            .results()
            .map_err(|e| fail("sign-in read", &e))?;
        Ok(match rows.into_iter().next().map(User::from) {
            None => SignInOutcome::NotLinked,
            Some(user) if user.disabled_at.is_some() => SignInOutcome::Disabled,
            Some(user) => SignInOutcome::SignedIn(user),
        })
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row: Option<SessionRow> = self
            .statement(FIND_SESSION, &[text(id)])?
            .first(None)
            .await
            .map_err(|e| fail("session read", &e))?;
        Ok(row.map(|r| SessionRecord {
            id: r.session_id,
            expires_at: r.expires_at as i64,
            revoked_at: r.revoked_at.map(|t| t as i64),
            user: r.user.into(),
        }))
    }

    async fn renewed(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
        self.statement(
            "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1",
            &[text(id), int(now.secs())],
        )?
        .run()
        .await
        .map_err(|e| fail("session touch", &e))?;
        Ok(())
    }

    async fn revoke_session(&self, id: &str, now: UnixTime) -> Result<(), StoreError> {
        self.statement(
            "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            &[text(id), int(now.secs())],
        )?
        .run()
        .await
        .map_err(|e| fail("revoke", &e))?;
        Ok(())
    }

    async fn revoke_user_sessions(&self, user_id: &str, now: UnixTime) -> Result<(), StoreError> {
        self.statement(
            "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            &[text(user_id), int(now.secs())],
        )?
        .run()
        .await
        .map_err(|e| fail("revoke all", &e))?;
        Ok(())
    }
}
