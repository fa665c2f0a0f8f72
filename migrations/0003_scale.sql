-- Scale (docs/scale.md). Each isolate renews sessions from their token and a feed of what
-- changed, pulled from `changes` once per half SESSION_CHECK_INTERVAL, instead of reading each
-- session's row at each renewal.
--
-- `changes` is written by triggers, not by the worker, so that every way of changing D1 feeds
-- it: the worker (sign-out, admin page, RISC), `gatehouse users`, and an operator's own SQL
-- (a user deleted by hand ends their sessions within the interval too). Times are D1's clock;
-- the worker compares them with its own with a margin (src/session/feed.rs).
CREATE TABLE changes (
  seq  INTEGER PRIMARY KEY,
  -- 'session' (revoked, deleted while live, or moved) or 'user' (role, disabled or enabled,
  -- email, name, picture, deleted).
  kind TEXT NOT NULL,
  id   TEXT NOT NULL,
  at   INTEGER NOT NULL
);
CREATE INDEX changes_at ON changes(at);

CREATE TRIGGER users_changed AFTER UPDATE ON users
WHEN NEW.role IS NOT OLD.role OR NEW.disabled_at IS NOT OLD.disabled_at
  OR NEW.email IS NOT OLD.email OR NEW.name IS NOT OLD.name OR NEW.image IS NOT OLD.image
  OR NEW.id IS NOT OLD.id
BEGIN
  INSERT INTO changes (kind, id, at) VALUES ('user', OLD.id, unixepoch());
END;

CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN
  INSERT INTO changes (kind, id, at) VALUES ('user', OLD.id, unixepoch());
END;

-- `last_seen_at` is not a change: renewals write it.
CREATE TRIGGER sessions_changed AFTER UPDATE ON sessions
WHEN NEW.revoked_at IS NOT OLD.revoked_at OR NEW.expires_at IS NOT OLD.expires_at
  OR NEW.user_id IS NOT OLD.user_id OR NEW.id IS NOT OLD.id
BEGIN
  INSERT INTO changes (kind, id, at) VALUES ('session', OLD.id, unixepoch());
END;

-- Pruning deletes only rows past their end or revoked long ago: those need no change row.
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
WHEN OLD.revoked_at IS NULL AND OLD.expires_at > unixepoch()
BEGIN
  INSERT INTO changes (kind, id, at) VALUES ('session', OLD.id, unixepoch());
END;

-- Pruning finds sessions revoked long ago, and sessions past their end, by these indexes.
CREATE INDEX sessions_revoked_at ON sessions(revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_expires_at ON sessions(expires_at);

-- A user's last activity, kept when pruning deletes their old session rows, so the admin
-- page's "last seen" survives them.
ALTER TABLE users ADD COLUMN last_seen_at INTEGER;
