//! The load model (issue 16, docs/scale.md#load-model): a simulated day of a site against the
//! whole app, counting what it asks of D1, scaled to N active users.
//!
//! - [`counting`]: a store that counts each call's D1 statements (reads, writes, rows written)
//!   by kind, delegating to the memory store; what each method costs on D1 is one table there.
//! - [`sim`]: the day: a sample of users with visits, sign-ins, sign-outs and admin changes,
//!   on several isolates (each its own `SessionMemory` and caches), with a pinned clock.
//! - [`report`]: the day scaled to N users and printed as a table.
//!
//! The sample is a slice of the deployment: `sample` users on as many isolates as would carry
//! them at N (`isolates(N) × sample / N`), so each simulated isolate has the load of a real one.
//! What grows with users (sign-ins, session reads, last-seen rows, sign-outs, admin changes) is
//! then scaled by `N / sample`; what grows with isolates (feed pulls, last-seen batches) by
//! `isolates(N) / simulated isolates`. With the default parameters the two factors are equal.
//! The cron trigger's pruning runs are one deployment's, not scaled.
//!
//! `make model` runs [`print_the_load_model`] in release; [`a_small_day_meets_the_issue_16_targets`]
//! runs a small sample of the same day in `cargo test`.

use std::fmt::Write as _;

use super::*;

mod counting;
mod report;
mod sim;

use counting::{Call, Counting, Kind};
use sim::{Day, Sim};

/// The model's parameters. Everything the output and docs/scale.md state as assumptions.
#[derive(Clone, Debug)]
struct Params {
    /// Users simulated one by one.
    sample: usize,
    /// The seed of every random draw.
    seed: u64,
    /// `SESSION_CHECK_INTERVAL`, seconds.
    interval: i64,
    /// Active users one isolate serves: isolates(N) = N / this, within 1..=`isolate_cap`.
    users_per_isolate: u64,
    /// At most this many isolates.
    isolate_cap: u64,
    /// An isolate's mean life, seconds (exponential); a cold one replaces it.
    isolate_lifetime: i64,
    /// How long after a full batch (`SEEN_BATCH` queued sessions) the isolate writes it: 0, as
    /// `runtime::write_seen_later` does in `waitUntil`; smaller queues go with the feed pull.
    seen_batch_delay: i64,
    /// Visits per user per day, uniform in this range.
    visits: (u32, u32),
    /// Page views per visit, uniform.
    pages: (u32, u32),
    /// Seconds between two page views of a visit, uniform.
    gap: (i64, i64),
    /// The chance that a visit ends with a sign-out; as many users start the day signed out.
    sign_out: f64,
    /// The share of the day's users who sign up that day.
    new_users: f64,
    /// Admin changes per user per day: role changes, disables, revoke-alls.
    set_role: f64,
    disable: f64,
    revoke_all: f64,
    /// Visit starts follow 1 + a·cos(2π(h − peak)/24) over the hours h of the day: a.
    diurnal: f64,
    /// … and the peak hour.
    peak_hour: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            sample: 5_000,
            seed: 16,
            interval: 300,
            users_per_isolate: 1_000,
            isolate_cap: 10_000,
            isolate_lifetime: 2 * 3600,
            seen_batch_delay: 0,
            visits: (1, 5),
            pages: (2, 30),
            gap: (30, 120),
            sign_out: 0.02,
            new_users: 0.02,
            set_role: 0.001,
            disable: 0.000_2,
            revoke_all: 0.001,
            diurnal: 0.6,
            peak_hour: 14.0,
        }
    }
}

impl Params {
    /// The defaults, with `MODEL_SAMPLE`, `MODEL_SEED`, `MODEL_INTERVAL`,
    /// `MODEL_USERS_PER_ISOLATE`, `MODEL_ISOLATE_CAP` and `MODEL_SEEN_BATCH_DELAY` from the
    /// environment (`make model SAMPLE=… SEED=… …`).
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
                _ => default,
            }
        }
        let d = Self::default();
        Self {
            sample: var("MODEL_SAMPLE", d.sample),
            seed: var("MODEL_SEED", d.seed),
            interval: var("MODEL_INTERVAL", d.interval),
            users_per_isolate: var("MODEL_USERS_PER_ISOLATE", d.users_per_isolate),
            isolate_cap: var("MODEL_ISOLATE_CAP", d.isolate_cap),
            seen_batch_delay: var("MODEL_SEEN_BATCH_DELAY", d.seen_batch_delay),
            ..d
        }
    }

    /// Isolates serving `n` active users.
    fn isolates(&self, n: u64) -> u64 {
        (n / self.users_per_isolate.max(1)).clamp(1, self.isolate_cap.max(1))
    }

    /// Isolates to simulate for `n`: those that would carry the sample, at least one.
    fn simulated_isolates(&self, n: u64) -> usize {
        let share = float_u64(self.isolates(n)) * float(self.sample) / float_u64(n);
        whole(share.round()).max(1)
    }
}

/// The day of `params`, on `isolates` isolates.
fn simulate(params: &Params, isolates: usize) -> Day {
    Sim::new(params, isolates).run()
}

#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn float(n: usize) -> f64 {
    n as f64
}

#[expect(clippy::cast_precision_loss, reason = "user counts far below 2^52")]
fn float_u64(n: u64) -> f64 {
    n as f64
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "small non-negative whole numbers"
)]
fn whole(x: f64) -> usize {
    x.max(0.0) as usize
}

#[expect(clippy::cast_possible_truncation, reason = "seconds, far below 2^63")]
fn seconds(x: f64) -> i64 {
    x.round() as i64
}

/// The three sizes of issue 16.
const SIZES: [u64; 3] = [10_000, 1_000_000, 10_000_000];

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
        site: "https://site.test".into(),
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
    // Three statements each (the sign-in's handed-off sessions, its root, the session); the
    // row and its `changes` row; a second revoke changes nothing.
    assert_eq!((out.writes, out.rows), (6.0, 2.0));
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

/// Issue 16's targets on a small sample of the model's day: 1,000 users on one isolate, which
/// is the slice of every size of [`SIZES`] with the default parameters (one real isolate's
/// load; a smaller sample on one isolate would understate what grows with isolates).
#[test]
fn a_small_day_meets_the_issue_16_targets() {
    let params = Params {
        sample: 1_000,
        ..Params::default()
    };
    let isolates = params.simulated_isolates(10_000_000);
    assert_eq!(isolates, 1, "one isolate's share of 10^7 users");
    let day = simulate(&params, isolates);
    let s = &day.stats;
    // The day happened: its parts each ran, and nothing failed.
    assert!(
        s.sign_ins > 20 && s.sign_outs > 10 && s.renewals > 2_000,
        "{s:?}"
    );
    assert!(s.admin.values().sum::<usize>() >= 1 && s.ended > 0, "{s:?}");
    assert!(
        s.hot > s.renewals,
        "most page views are on the hot path: {s:?}"
    );
    assert!(
        s.events
            .keys()
            .all(|e| !e.contains("error") && !e.contains("failed")),
        "{:?}",
        s.events
    );
    // 1. No session read for what the feed can grant in a warm isolate (most renewals).
    assert!(s.feed_grantable > s.renewals / 2, "{s:?}");
    assert_eq!(
        s.feed_grantable_reads, 0,
        "session reads the feed could spare"
    );
    // 2. At most one last-seen write per active session per hour: over the day, per
    // session-hour with a request; and each session's writes fit in the hours its day spans
    // (its first renewal's token may be up to half an interval older than the request).
    let rows = day.tally.by_method.get(&Call::Seen).map_or(0.0, |c| c.rows);
    let per_hour = rows / float(s.session_hours);
    assert!(
        per_hour <= 1.0,
        "{per_hour} last-seen rows per session-hour"
    );
    for (sid, (first, last, writes)) in &s.sessions {
        let hours = (last - first + params.interval).div_euclid(3600) + 2;
        assert!(
            i64::try_from(*writes).unwrap() <= hours,
            "session {sid}: {writes} last-seen writes from {first} to {last}"
        );
    }
    // 3. 10^7 active users within D1's ~1,000 queries/s, in the peak hour too.
    let scaled = report::Scaled::new(&day, &params, 10_000_000);
    assert!(
        scaled.peak_queries() <= 1_000.0,
        "{}",
        report::table(&day, &params, 10_000_000)
    );
}

/// `make model`: the day of [`Params::from_env`], as a table for each of [`SIZES`].
#[test]
#[ignore = "the load model: `make model` runs it in release"]
fn print_the_load_model() {
    let params = Params::from_env();
    let started = std::time::Instant::now();
    let mut days: Vec<(usize, Day)> = Vec::new();
    let mut out = report::assumptions(&params);
    for n in SIZES {
        let isolates = params.simulated_isolates(n);
        if !days.iter().any(|(i, _)| *i == isolates) {
            days.push((isolates, simulate(&params, isolates)));
        }
        let day = &days
            .iter()
            .find(|(i, _)| *i == isolates)
            .expect("simulated")
            .1;
        out.push_str(&report::table(day, &params, n));
    }
    let isolates = params.simulated_isolates(SIZES[2]);
    let day = &days
        .iter()
        .find(|(i, _)| *i == isolates)
        .expect("simulated")
        .1;
    out.push_str(&report::targets(day, &params));
    let _ = writeln!(
        out,
        "\n({} simulated day(s) in {:.1} s)",
        days.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{out}");
}
