-- Scale (docs/scale.md): each isolate renews sessions from the token and a feed of what changed,
-- read from these indexes once per half interval, instead of one session read per renewal.
-- What changed since a time: sessions revoked (sign-out, admin, RISC, command line) ...
CREATE INDEX sessions_revoked_at ON sessions(revoked_at) WHERE revoked_at IS NOT NULL;
-- ... and users changed (role, disabled, enabled, email or profile at a sign-in).
CREATE INDEX users_updated_at ON users(updated_at);
-- The scheduled pruning finds sessions past their end by this index.
CREATE INDEX sessions_expires_at ON sessions(expires_at);
-- A user's last sign-in activity, kept when pruning deletes their old session rows, so the
-- admin page's "last seen" survives them.
ALTER TABLE users ADD COLUMN last_seen_at INTEGER;
