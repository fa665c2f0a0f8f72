-- Security event tokens from Google's Cross-Account Protection (RISC) already acted on, by `jti`:
-- a SET is acted on once, and a replayed one changes nothing. Rows older than the longest a SET
-- is accepted (7 days, plus a day) are deleted as new events arrive.
CREATE TABLE risc_events (
  jti         TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL
);
CREATE INDEX risc_events_received_at ON risc_events(received_at);
