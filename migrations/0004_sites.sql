-- Several sites behind one Gatehouse, one sign-in (docs/sites.md).
--
-- A session is for one site (`site`, its origin). A site other than the auth origin gets its
-- sessions by a hand-off from a sign-in at the auth origin: `parent_id` is that sign-in's session,
-- so that a sign-out anywhere ends the sign-in and every site session made from it.
ALTER TABLE sessions ADD COLUMN site TEXT;
ALTER TABLE sessions ADD COLUMN parent_id TEXT;
CREATE INDEX sessions_parent_id ON sessions(parent_id) WHERE parent_id IS NOT NULL;

-- One-time hand-off codes: a signed-in visitor of the auth origin comes back to a site with one.
-- Only hashes are kept. A code is used once (`used_at`), lives at most 60 s, and is bound to its
-- site and to the state the site set in a cookie before it sent the visitor away. Rows past their
-- end are deleted whenever a code is made. No foreign keys: a code outlives nothing by more than
-- 60 s, a session is made from it only while its parent session and user are live, and a key
-- here would make every write to `users` and `sessions` scan this table.
CREATE TABLE handoff_codes (
  code_hash  TEXT PRIMARY KEY,
  user_id    TEXT NOT NULL,
  session_id TEXT NOT NULL,
  site       TEXT NOT NULL,
  state_hash TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at    INTEGER
);
CREATE INDEX handoff_codes_expires_at ON handoff_codes(expires_at);
