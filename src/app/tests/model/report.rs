//! A simulated day scaled to N active users, and the tables `make model` prints.

use std::fmt::Write as _;

use super::counting::{Call, Counts, Kind};
use super::sim::Day;
use super::{Params, float, float_u64};

/// D1's documented throughput of one database: queries run one at a time, so ~1,000 queries/s
/// at ~1 ms each (developers.cloudflare.com/d1/platform/limits/, "How much work can a D1
/// database do?").
pub(super) const D1_LIMIT: f64 = 1_000.0;

/// A day's counts at N active users, per second.
pub(super) struct Scaled {
    n: u64,
    isolates: u64,
    simulated_isolates: usize,
    sample: usize,
    user_scale: f64,
    /// By hour, by kind (in [`Kind::ALL`]'s order): statements and rows in that hour.
    hourly: Vec<Vec<Counts>>,
    /// By hour: what today's renewal (a read and a write per renewal) and the rest would cost.
    today: Vec<f64>,
    /// By hour: sessions with a request in the last interval, on average.
    active: Vec<f64>,
}

impl Scaled {
    /// `day` at `n` active users.
    pub(super) fn new(day: &Day, params: &Params, n: u64) -> Self {
        let isolates = params.isolates(n);
        let user_scale = float_u64(n) / float(day.sample);
        let isolate_scale = float_u64(isolates) / float(day.isolates);
        let mut hourly = Vec::new();
        let mut today = Vec::new();
        let mut active = Vec::new();
        for h in 0..24 {
            let mut row = Vec::new();
            for kind in Kind::ALL {
                let c = day.tally.at(kind, h);
                // Feed pulls and last-seen batches come from isolates, pruning runs from the one
                // cron trigger; everything else from users.
                let statements = match kind {
                    Kind::FeedPull | Kind::LastSeen => isolate_scale,
                    Kind::Prune => 1.0,
                    _ => user_scale,
                };
                row.push(Counts {
                    reads: c.reads * statements,
                    replica_reads: c.replica_reads * statements,
                    writes: c.writes * statements,
                    rows: c.rows * user_scale,
                });
            }
            let others: f64 = [Kind::SignIn, Kind::SignOut, Kind::Admin]
                .iter()
                .map(|k| day.tally.at(*k, h).queries())
                .sum();
            today.push((day.stats.today[h].queries() + others) * user_scale);
            active.push(float(day.stats.active[h]) / 60.0 * user_scale);
            hourly.push(row);
        }
        Self {
            n,
            isolates,
            simulated_isolates: day.isolates,
            sample: day.sample,
            user_scale,
            hourly,
            today,
            active,
        }
    }

    fn hour_total(&self, h: usize) -> f64 {
        self.hourly[h].iter().map(Counts::queries).sum()
    }

    /// Queries per second on the primary in the busiest hour, if read replicas serve the reads
    /// they may.
    fn peak_primary(&self) -> f64 {
        let h = self.peak_hour();
        let replica: f64 = self.hourly[h].iter().map(|c| c.replica_reads).sum();
        (self.hour_total(h) - replica) / 3600.0
    }

    /// The busiest hour.
    fn peak_hour(&self) -> usize {
        (0..24)
            .max_by(|a, b| self.hour_total(*a).total_cmp(&self.hour_total(*b)))
            .unwrap_or(0)
    }

    /// Queries per second in the busiest hour.
    pub(super) fn peak_queries(&self) -> f64 {
        self.hour_total(self.peak_hour()) / 3600.0
    }

    /// Per second over the day, kind `i` of [`Kind::ALL`].
    fn average(&self, i: usize) -> Counts {
        let mut c = Counts::default();
        for row in &self.hourly {
            c.add(&row[i], 1.0 / 86_400.0);
        }
        c
    }

    fn total_average(&self) -> Counts {
        let mut c = Counts::default();
        for i in 0..Kind::ALL.len() {
            c.add(&self.average(i), 1.0);
        }
        c
    }
}

/// `x` with thousands separators, `decimals` after the point.
fn num(x: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, x.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(i, f)| (i, f));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if x < 0.0 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// Rates with a precision that suits their size.
fn rate(x: f64) -> String {
    if x >= 100.0 {
        num(x, 0)
    } else if x >= 1.0 {
        num(x, 1)
    } else {
        num(x, 3)
    }
}

/// The assumptions, printed once above the tables.
pub(super) fn assumptions(p: &Params) -> String {
    let pct = |x: f64| format!("{}", x * 100.0);
    format!(
        "Gatehouse load model: one simulated day, counted at the store seam (docs/scale.md#load-model)\n\
         \n\
         Assumptions (N = users active during the day):\n\
         - SESSION_CHECK_INTERVAL {interval} s, LAST_SEEN_INTERVAL 3600 s, SESSION_MAX_AGE 30 days; an\n  \
           isolate writes its queued last-seen times with its next feed pull, or {delay} s after\n  \
           100 are queued.\n\
         - Each user has one browser and {v0}–{v1} visits a day of {p0}–{p1} page views, {g0}–{g1} s apart\n  \
           (uniform); visits start on a daily curve 1 + {a}·cos(2π(h − {peak})/24), busiest at {peak}:00.\n\
         - {so} % of visits end with a sign-out, and {so} % of users start the day signed out; {new} % of\n  \
           the users sign up that day; the others signed in up to 30 days before, and sign in again when\n  \
           their session ends.\n\
         - Admin changes a day per 1,000 users: role changes {sr}, disables {di}, revoke-alls {ra}; each\n  \
           is the user's admin page, the action, and the page again.\n\
         - Isolates serving N users: N / {upi} (at least 1, at most {cap}); each lives {life} h on average\n  \
           (exponential), then a cold one replaces it; each request lands on any isolate at random.\n\
         - Simulated: {sample} users on isolates(N) × {sample} / N isolates, so each one carries a real\n  \
           isolate's load; per-user counts × N / {sample}, per-isolate ones (feed pulls, last-seen\n  \
           batches) × isolates(N) / simulated isolates. Rates are per second: the day's average, and the\n  \
           busiest hour (shorter windows would show the sample's noise, not the site's).\n\
         - A query is one D1 statement, alone or in a batch (D1 runs each); rows written are table rows,\n  \
           trigger rows of `changes` included, index entries not. A page view with a current token is\n  \
           admitted on the hot path and costs D1 nothing.\n\
         - The cron trigger prunes every 10 minutes (one deployment: not scaled). Reads D1 may serve\n  \
           from a read replica (renewal reads at the feed's bookmark) are counted in the total, and\n  \
           shown apart (\"replica\"): they leave the primary only with read replication on.\n\
         - Today = before the change feed: a session read and a last_seen_at write per renewal.\n",
        interval = p.interval,
        delay = p.seen_batch_delay,
        v0 = p.visits.0,
        v1 = p.visits.1,
        p0 = p.pages.0,
        p1 = p.pages.1,
        g0 = p.gap.0,
        g1 = p.gap.1,
        a = p.diurnal,
        peak = p.peak_hour,
        so = pct(p.sign_out),
        new = pct(p.new_users),
        sr = p.set_role * 1000.0,
        di = p.disable * 1000.0,
        ra = p.revoke_all * 1000.0,
        upi = num(float_u64(p.users_per_isolate), 0),
        cap = num(float_u64(p.isolate_cap), 0),
        life = float_u64(u64::try_from(p.isolate_lifetime).unwrap_or(0)) / 3600.0,
        sample = num(float(p.sample), 0),
    )
}

/// The table for `n` active users.
pub(super) fn table(day: &Day, params: &Params, n: u64) -> String {
    let s = Scaled::new(day, params, n);
    let peak = s.peak_hour();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nN = {} active users a day: {} isolates; simulated {} users on {} isolate(s), × {}",
        num(float_u64(s.n), 0),
        num(float_u64(s.isolates), 0),
        num(float(s.sample), 0),
        s.simulated_isolates,
        num(s.user_scale, 0),
    );
    let _ = writeln!(
        out,
        "  {:<16} {:>10} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "D1 queries/s", "average", "peak hour", "reads", "replica", "writes", "rows written"
    );
    for (i, kind) in Kind::ALL.iter().enumerate() {
        let avg = s.average(i);
        let at_peak = s.hourly[peak][i].queries() / 3600.0;
        let _ = writeln!(
            out,
            "  {:<16} {:>10} {:>12} {:>10} {:>10} {:>10} {:>12}",
            kind.label(),
            rate(avg.queries()),
            rate(at_peak),
            rate(avg.reads),
            rate(avg.replica_reads),
            rate(avg.writes),
            rate(avg.rows),
        );
    }
    let total = s.total_average();
    let _ = writeln!(
        out,
        "  {:<16} {:>10} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "total",
        rate(total.queries()),
        rate(s.peak_queries()),
        rate(total.reads),
        rate(total.replica_reads),
        rate(total.writes),
        rate(total.rows),
    );
    let _ = writeln!(
        out,
        "  D1's ~{} queries/s (1 ms each, one at a time): {} % on average, {} % in the peak hour ({}:00)",
        num(D1_LIMIT, 0),
        num(total.queries() / D1_LIMIT * 100.0, 1),
        num(s.peak_queries() / D1_LIMIT * 100.0, 1),
        peak,
    );
    let _ = writeln!(
        out,
        "  with D1 read replication on, the reads marked replica may leave the primary: {} queries/s there on average, {} in the peak hour",
        rate(total.queries() - total.replica_reads),
        rate(s.peak_primary()),
    );
    let today_avg = s.today.iter().sum::<f64>() / 86_400.0;
    let today_peak = s.today.iter().copied().fold(0.0, f64::max) / 3600.0;
    let _ = writeln!(
        out,
        "  today (a read and a write per renewal): {} queries/s on average, {} in the peak hour: × {} the peak above",
        rate(today_avg),
        rate(today_peak),
        num(today_peak / s.peak_queries().max(f64::MIN_POSITIVE), 1),
    );
    let active_avg = s.active.iter().sum::<f64>() / 24.0;
    let active_peak = s.active.iter().copied().fold(0.0, f64::max);
    let interval = float_u64(u64::try_from(params.interval).unwrap_or(1));
    let _ = writeln!(
        out,
        "  sessions active in an interval: {} on average, {} at most (hourly); 2 queries each per {} s = {} queries/s (today's break-even: {} sessions)",
        num(active_avg, 0),
        num(active_peak, 0),
        params.interval,
        rate(2.0 * active_peak / interval),
        num(D1_LIMIT / 2.0 * interval, 0),
    );
    out
}

/// The day's events and issue 16's targets, for the 10^7 table's day.
pub(super) fn targets(day: &Day, params: &Params) -> String {
    let s = &day.stats;
    let seen_rows = day.tally.by_method.get(&Call::Seen).map_or(0.0, |c| c.rows);
    let per_hour = seen_rows / float(s.session_hours.max(1));
    let peak = Scaled::new(day, params, 10_000_000).peak_queries();
    let mark = |ok: bool| if ok { "met" } else { "NOT MET" };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nThe simulated day ({} users, {} isolate(s)): {} page views, {} % on the hot path; {} renewals \
         ({} from the isolate's memory), {} sessions ended at renewal; {} sign-ins ({} refused), {} \
         sign-outs; admin changes {:?}; {} isolates started cold.",
        num(float(day.sample), 0),
        day.isolates,
        num(float(s.page_views), 0),
        num(float(s.hot) / float(s.page_views.max(1)) * 100.0, 1),
        num(float(s.renewals), 0),
        num(float(s.remembered), 0),
        num(float(s.ended), 0),
        num(float(s.sign_ins), 0),
        s.refused_sign_ins,
        num(float(s.sign_outs), 0),
        {
            let mut a: Vec<_> = s.admin.iter().collect();
            a.sort();
            a
        },
        s.isolates_started,
    );
    let _ = writeln!(out, "\nIssue 16's targets:");
    let _ = writeln!(
        out,
        "- renewals the feed can grant in a warm isolate: {} of {}; session reads in them: {} (target 0): {}",
        num(float(s.feed_grantable), 0),
        num(float(s.renewals), 0),
        s.feed_grantable_reads,
        mark(s.feed_grantable_reads == 0),
    );
    let _ = writeln!(
        out,
        "- last-seen rows per active session-hour: {} (target at most 1): {}",
        num(per_hour, 2),
        mark(per_hour <= 1.0),
    );
    let _ = writeln!(
        out,
        "- 10,000,000 users, peak hour: {} queries/s (target at most {}): {}",
        rate(peak),
        num(D1_LIMIT, 0),
        mark(peak <= D1_LIMIT),
    );
    out
}
