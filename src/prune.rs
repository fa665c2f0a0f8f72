//! Old rows go away (issue 16): the plan of a scheduled pruning run, made from the
//! configuration, and the run with its one log line. Plain Rust; the runtime's scheduled
//! handler (`#[event(scheduled)]`, a cron trigger in `wrangler.toml`) calls [`run`].
//!
//! What goes (docs/admin.md): session rows past their end or revoked more than [`grace`] ago,
//! audit rows older than `AUDIT_RETENTION_DAYS`, security event ids older than
//! [`JTI_RETENTION_SECS`], and change feed rows older than [`grace`]. A session's last activity
//! is kept on its user (`users.last_seen_at`) before its row goes, so "last seen" survives;
//! "active sessions" is unchanged, since no pruned row is live.

use crate::app::Log;
use crate::config::Config;
use crate::oidc::risc::JTI_RETENTION_SECS;
use crate::session::feed;
use crate::store::{MaintenanceStore, Prune, Pruned};
use crate::time::UnixTime;

/// The least time a change feed row stays after it was written, and a session row after its end
/// or its revocation: one day.
///
/// Security: each isolate renews sessions from the change feed (`changes`, src/session/feed.rs),
/// which looks back [`feed::window`] (2 × `SESSION_CHECK_INTERVAL` + a minute). A revocation's
/// row must still be there when the feed is read, or a revoked session would renew from its
/// token without its row being read. So nothing the feed may still read is pruned: [`grace`]
/// is this day or twice the feed's window, whichever is longer (twice: room for the clocks of
/// the cron's isolate, the others' and D1's to disagree). Session rows get the same grace: the
/// feed never reads them, and a renewal that finds its row gone ends the session, but the
/// admin page's user detail keeps showing recently ended sessions for a day.
pub const GRACE_SECS: i64 = 86_400;

/// Rows per DELETE. Each chunk is one short statement on an index, far from D1's per-query
/// time limit (30 s) whatever the table's size.
pub const CHUNK_ROWS: u32 = 5_000;

/// Chunks per kind of row per run: at most 25,000 rows of each kind an hour with the hourly
/// trigger (600,000 a day); a backlog is worked off over the next runs.
pub const CHUNKS_PER_KIND: u32 = 5;

/// The statements one run may send at most: a session chunk is two (its users' last activity
/// kept, then the rows deleted), any other chunk one. Kept within the 50 D1 queries one
/// invocation may make on the Workers Free plan.
pub const MAX_STATEMENTS: u32 = CHUNKS_PER_KIND * (2 + 2 + 1 + 1 + 1);
const _: () = assert!(MAX_STATEMENTS <= 50);

const DAY_SECS: i64 = 86_400;

/// The last activity of the user `u`, in SQL, for the admin page (D1) and `gatehouse users
/// list`: the later of `users.last_seen_at` (kept from the sessions pruned since) and the
/// latest `last_seen_at` of the user's sessions (by `sessions_user_id`); NULL if neither has one.
pub const LAST_SEEN_OF_U: &str = "NULLIF(MAX(IFNULL(u.last_seen_at, 0), \
     IFNULL((SELECT MAX(s.last_seen_at) FROM sessions s WHERE s.user_id = u.id), 0)), 0)";

/// How long change feed rows and session rows (past their end or revoked) stay:
/// [`GRACE_SECS`], or twice the change feed's window when that is longer (see [`GRACE_SECS`]).
pub fn grace(config: &Config) -> i64 {
    GRACE_SECS.max(feed::window(config.session_check_interval).saturating_mul(2))
}

/// The run due at `now` under `config`.
pub fn plan(config: &Config, now: UnixTime) -> Prune {
    let grace = grace(config);
    Prune {
        expired_before: now.plus(-grace),
        revoked_before: now.plus(-grace),
        audit_before: now.plus(-config.audit_retention_days.saturating_mul(DAY_SECS)),
        // A security event id is remembered as long as the receiver needs it to refuse a
        // replay; `POST /auth/risc` forgets older ones as it goes, and this catches up when no
        // event arrives.
        risc_before: now.plus(-JTI_RETENTION_SECS),
        changes_before: now.plus(-grace),
        chunk: CHUNK_ROWS,
        max_chunks: CHUNKS_PER_KIND,
    }
}

/// The log line of a finished run: counts only, never a row's content.
pub fn pruned_line(p: &Pruned) -> String {
    serde_json::json!({
        "level": "info",
        "event": "pruned",
        "expired_sessions": p.expired_sessions,
        "revoked_sessions": p.revoked_sessions,
        "audit_entries": p.audit_entries,
        "risc_events": p.risc_events,
        "changes": p.changes,
        "more": p.more,
    })
    .to_string()
}

/// The log line of a run that did not finish (or did not start). `reason` is a store error
/// (D1's messages name tables and constraints, never values) or `configuration_invalid`.
pub fn failed_line(reason: &str) -> String {
    serde_json::json!({ "level": "error", "event": "prune_failed", "reason": reason }).to_string()
}

/// One scheduled run: prunes what [`plan`] says and logs one line, `pruned` with the counts or
/// `prune_failed` with the reason. Never panics; a failure waits for the next run.
pub async fn run<S: MaintenanceStore>(
    store: &S,
    config: &Config,
    now: UnixTime,
    log: &dyn Log,
) -> Option<Pruned> {
    match store.prune(&plan(config, now)).await {
        Ok(pruned) => {
            log.line(&pruned_line(&pruned));
            Some(pruned)
        }
        Err(e) => {
            log.line(&failed_line(&e.0));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::config::tests::config;
    use crate::store::memory::MemoryStore;
    use crate::store::{AdminStore, Change, Prunable, SessionStore, SignIn, StoreError};

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("these stores never wait"),
        }
    }

    #[derive(Default)]
    struct Lines(RefCell<Vec<String>>);

    impl Log for Lines {
        fn line(&self, line: &str) {
            self.0.borrow_mut().push(line.to_owned());
        }
    }

    const NOW: UnixTime = UnixTime(1_800_000_000);

    #[test]
    fn the_plan_keeps_a_day_of_sessions_a_year_of_audit_and_the_jti_retention() {
        let p = plan(&config(&[]), NOW);
        assert_eq!(p.expired_before, NOW.plus(-86_400));
        assert_eq!(p.revoked_before, NOW.plus(-86_400));
        assert_eq!(p.changes_before, NOW.plus(-86_400));
        assert_eq!(p.audit_before, NOW.plus(-365 * 86_400));
        assert_eq!(p.risc_before, NOW.plus(-JTI_RETENTION_SECS));
        assert_eq!((p.chunk, p.max_chunks), (5_000, 5));
        let p = plan(&config(&[("AUDIT_RETENTION_DAYS", "30")]), NOW);
        assert_eq!(p.audit_before, NOW.plus(-30 * 86_400));
    }

    #[test]
    fn the_grace_always_outlasts_what_the_change_feed_reads() {
        // The feed reads 2 × I + 60 s back (src/session/feed.rs).
        assert_eq!(feed::window(300), 660);
        for interval in [1, 60, 300, 3_600, 21_570, 43_200, 86_400, 30 * 86_400] {
            let max_age = (30 * 86_400_i64).max(interval).to_string();
            let c = config(&[
                ("SESSION_CHECK_INTERVAL", &interval.to_string()),
                ("SESSION_MAX_AGE", &max_age),
            ]);
            let g = grace(&c);
            assert!(g >= GRACE_SECS, "{interval}: {g}");
            assert!(g >= 2 * (2 * interval + 60), "{interval}: {g}");
            let p = plan(&c, NOW);
            assert!(NOW.secs() - p.revoked_before.secs() >= 2 * interval + 60);
            assert!(NOW.secs() - p.changes_before.secs() >= 2 * interval + 60);
        }
    }

    #[test]
    fn a_run_logs_its_counts_and_nothing_else() {
        let log = Lines::default();
        let pruned = block_on(run(&MemoryStore::default(), &config(&[]), NOW, &log));
        assert_eq!(pruned, Some(Pruned::default()));
        assert_eq!(
            *log.0.borrow(),
            [
                r#"{"audit_entries":0,"changes":0,"event":"pruned","expired_sessions":0,"level":"info","more":false,"revoked_sessions":0,"risc_events":0}"#
            ]
        );
    }

    #[test]
    fn a_failed_run_logs_the_reason() {
        let store = MemoryStore::default();
        store.broken.set(true);
        let log = Lines::default();
        assert_eq!(block_on(run(&store, &config(&[]), NOW, &log)), None);
        assert_eq!(
            *log.0.borrow(),
            [r#"{"event":"prune_failed","level":"error","reason":"store is broken"}"#]
        );
    }

    fn sign_in(sid: &str, at: UnixTime) -> SignIn {
        SignIn {
            provider: "google",
            subject: "sub-1".into(),
            email: "ann@example.com".into(),
            name: None,
            image: None,
            make_admin: false,
            new_user_id: "user-1".into(),
            session_id: sid.into(),
            now: at,
            expires_at: at.plus(30 * DAY_SECS),
            user_agent: None,
            site: "https://site.test".into(),
        }
    }

    #[test]
    fn a_run_prunes_sessions_and_changes_past_the_grace_and_keeps_last_seen() {
        let store = MemoryStore::default();
        let days = |n: i64| NOW.plus(-n * DAY_SECS);
        block_on(async {
            // Past its end 10 days ago; live; revoked an hour ago; revoked 2 days ago (and the
            // user's latest activity).
            for (sid, at) in [
                ("old", days(40)),
                ("live", days(20)),
                ("recent", days(6)),
                ("gone", days(5)),
            ] {
                store.sign_in(&sign_in(sid, at)).await.expect("sign-in");
            }
            store.revoke_session("gone", days(2)).await.expect("revoke");
            store
                .revoke_session("recent", NOW.plus(-3600))
                .await
                .expect("revoke");
        });
        let log = Lines::default();
        let pruned = block_on(run(&store, &config(&[]), NOW, &log)).expect("a run");
        assert_eq!(
            pruned,
            Pruned {
                expired_sessions: 1,
                revoked_sessions: 1,
                changes: 1,
                ..Pruned::default()
            }
        );
        let (kept, user, changes) = block_on(async {
            let sessions = store.user_sessions("user-1").await.expect("sessions");
            let user = store
                .user("user-1", NOW)
                .await
                .expect("user")
                .expect("kept");
            let changes = store.changes_since(UnixTime(0), 100).await.expect("feed");
            (sessions, user, changes)
        });
        let kept: Vec<&str> = kept.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(kept, ["recent", "live"]);
        // The pruned session was the latest seen: its time is kept on the user.
        assert_eq!(
            (user.last_seen_at, user.active_sessions),
            (Some(days(5).secs()), 1)
        );
        assert_eq!(
            changes.changes,
            [Change::Session("recent".into(), NOW.plus(-3600))]
        );
    }

    /// A store whose chunks come back as scripted, recording what was asked.
    struct Scripted {
        answers: RefCell<Vec<u64>>,
        asked: RefCell<Vec<(Prunable, UnixTime, u32)>>,
    }

    impl MaintenanceStore for Scripted {
        async fn prune_chunk(
            &self,
            what: Prunable,
            before: UnixTime,
            limit: u32,
        ) -> Result<u64, StoreError> {
            self.asked.borrow_mut().push((what, before, limit));
            let mut answers = self.answers.borrow_mut();
            if answers.is_empty() {
                return Err(StoreError("no more answers".into()));
            }
            Ok(answers.remove(0))
        }
    }

    #[test]
    fn chunks_go_on_while_full_and_stop_at_the_budget() {
        let p = Prune {
            expired_before: UnixTime(10),
            revoked_before: UnixTime(20),
            audit_before: UnixTime(30),
            risc_before: UnixTime(40),
            changes_before: UnixTime(50),
            chunk: 3,
            max_chunks: 2,
        };
        // Expired: full, short (stops). Revoked: full, full (budget spent: more).
        // Audit: empty. RISC: short. Changes: full, empty.
        let store = Scripted {
            answers: RefCell::new(vec![3, 1, 3, 3, 0, 2, 3, 0]),
            asked: RefCell::default(),
        };
        let pruned = block_on(store.prune(&p)).expect("scripted");
        assert_eq!(
            pruned,
            Pruned {
                expired_sessions: 4,
                revoked_sessions: 6,
                audit_entries: 0,
                risc_events: 2,
                changes: 3,
                more: true,
            }
        );
        let asked: Vec<_> = store
            .asked
            .borrow()
            .iter()
            .map(|a| (a.0, a.1.secs(), a.2))
            .collect();
        assert_eq!(
            asked,
            [
                (Prunable::ExpiredSessions, 10, 3),
                (Prunable::ExpiredSessions, 10, 3),
                (Prunable::RevokedSessions, 20, 3),
                (Prunable::RevokedSessions, 20, 3),
                (Prunable::AuditLog, 30, 3),
                (Prunable::RiscEvents, 40, 3),
                (Prunable::Changes, 50, 3),
                (Prunable::Changes, 50, 3),
            ]
        );
        // A failure stops the run at once.
        let store = Scripted {
            answers: RefCell::new(vec![3]),
            asked: RefCell::default(),
        };
        assert_eq!(
            block_on(store.prune(&p)),
            Err(StoreError("no more answers".into()))
        );
        assert_eq!(store.asked.borrow().len(), 2);
    }
}
