//! The load model (issue 16, docs/scale.md#load-model): a simulated day of a site against the
//! whole app, counting what it asks of D1, scaled to N active users.
//!
//! - [`counting`]: a store that counts each call's D1 statements (reads, writes, rows written)
//!   by kind, delegating to the memory store; what each method costs on D1 is one table there.

use super::*;

mod counting;

use counting::{Call, Counting, Kind};

#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn float(n: usize) -> f64 {
    n as f64
}

/// Each call costs what d1.rs sends, under the request's kind; feed pulls and last-seen
/// batches under their own, whatever the request.
#[test]
fn the_counting_store_counts_what_d1_would_run() {
    let store = Counting::new(MemoryStore::default(), T0);
    let now = UnixTime(T0 + 10);
    store.now.set(now.secs());
    let sign_in = |user: &str, session: &str| SignIn {
        provider: "google",
        subject: format!("g-{user}"),
        email: format!("{user}@example.com"),
        name: None,
        image: None,
        make_admin: false,
        new_user_id: user.into(),
        session_id: session.into(),
        now,
        expires_at: now.plus(86_400),
        user_agent: None,
    };
    store.activity.set(Kind::SignIn);
    run(store.sign_in(&sign_in("ada", "s1"))).unwrap();
    run(store.sign_in(&sign_in("ada", "s2"))).unwrap();
    store.activity.set(Kind::RenewalRead);
    run(store.session("s1")).unwrap();
    let pulled = run(store.changes_since(now, 10)).unwrap();
    run(store.session_after("s2", pulled.bookmark.as_deref().unwrap_or("b"))).unwrap();
    let ids: Vec<String> = (0..150).map(|i| format!("s{i}")).collect();
    run(store.seen(&ids, now)).unwrap();
    store.activity.set(Kind::SignOut);
    run(store.revoke_session("s1", now)).unwrap();
    run(store.revoke_session("s1", now)).unwrap();
    store.activity.set(Kind::Admin);
    let disable = AdminAction::Disable {
        user_id: "ada".into(),
    };
    assert_eq!(
        run(store.apply("boss", &disable, now)).unwrap(),
        Applied::Done
    );
    // A pruning run with nothing old enough: one chunk of each kind, two statements for
    // sessions.
    store.activity.set(Kind::SignIn);
    let plan = crate::prune::plan(&crate::config::tests::config(&[]), now);
    run(store.prune(&plan)).unwrap();
    let t = store.tally.borrow();
    let c = |kind| t.at(kind, 0);
    let (sign_in, read, feed, seen, out, admin, prune) = (
        c(Kind::SignIn),
        c(Kind::RenewalRead),
        c(Kind::FeedPull),
        c(Kind::LastSeen),
        c(Kind::SignOut),
        c(Kind::Admin),
        c(Kind::Prune),
    );
    // Two sign-ins of one person: 5 statements each; the user and account rows once.
    assert_eq!(
        (sign_in.reads, sign_in.writes, sign_in.rows),
        (2.0, 8.0, 6.0)
    );
    // The primary read, and the read a replica may serve.
    assert_eq!(
        (read.reads, read.replica_reads, read.writes),
        (2.0, 1.0, 0.0)
    );
    assert_eq!((feed.reads, feed.writes), (1.0, 0.0), "under its own kind");
    // Up to 100 ids a statement; a row per session.
    assert_eq!((seen.reads, seen.writes, seen.rows), (0.0, 2.0, 150.0));
    // The row and its `changes` row; a second revoke changes nothing.
    assert_eq!((out.writes, out.rows), (2.0, 2.0));
    // Audit row, user row and its `changes` row, the one live session and its `changes` row.
    assert_eq!((admin.writes, admin.rows), (3.0, 5.0));
    assert_eq!((prune.writes, prune.rows), (7.0, 0.0), "under its own kind");
    // Every statement under one kind.
    let by_kind: f64 = Kind::ALL.iter().map(|k| t.at(*k, 0).queries()).sum();
    let by_call: f64 = t.by_method.values().map(counting::Counts::queries).sum();
    assert!((by_kind - by_call).abs() < 1e-9, "{by_kind} ≠ {by_call}");
    drop(t);
    assert_eq!((store.calls(Call::SignIn), store.calls(Call::Seen)), (2, 1));
}
