-- Gatehouse schema: users, their Google accounts, sessions, and the admin audit log.
-- Times are Unix seconds (INTEGER). Ids are random URL-safe strings made by the worker.

CREATE TABLE users (
  id             TEXT PRIMARY KEY,
  -- One user per email, compared case-insensitively.
  email          TEXT NOT NULL UNIQUE COLLATE NOCASE,
  email_verified INTEGER NOT NULL DEFAULT 0,
  name           TEXT,
  image          TEXT,
  role           TEXT NOT NULL DEFAULT 'user',
  disabled_at    INTEGER,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL
);

-- Users are found by provider and subject, never by email alone.
CREATE TABLE accounts (
  provider            TEXT NOT NULL,
  provider_account_id TEXT NOT NULL,
  user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at          INTEGER NOT NULL,
  PRIMARY KEY (provider, provider_account_id)
);
CREATE INDEX accounts_user_id ON accounts(user_id);

CREATE TABLE sessions (
  id           TEXT PRIMARY KEY,
  user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  revoked_at   INTEGER,
  user_agent   TEXT
);
CREATE INDEX sessions_user_id ON sessions(user_id);

CREATE TABLE audit_log (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  actor_user_id TEXT,
  action        TEXT NOT NULL,
  target        TEXT,
  created_at    INTEGER NOT NULL
);
CREATE INDEX audit_log_created_at ON audit_log(created_at);
