//! The isolate's change feed: which sessions were revoked and which users changed recently, read
//! from D1 at most once per half `SESSION_CHECK_INTERVAL`, so that renewing a session costs no
//! D1 read unless the feed names it. Plain data, no I/O (docs/scale.md).
//!
//! Why revocation stays bounded by the interval `I`:
//! - A token's claims are true of D1 as of its `iat`: at sign-in and at a renewal that read the
//!   session row, `iat` is the time of that read; at a renewal from the feed, `iat` is the time
//!   the feed was pulled (`pulled_at`), and the token's `exp` is `iat + I` as always.
//! - The feed holds every change with a time in `(pulled_at - window, pulled_at]`. A renewal from
//!   the feed is allowed only when the old token's `iat` lies inside that window and the feed
//!   names neither its session nor its user since that `iat` (less [`MARGIN_SECS`]): then nothing
//!   changed between the old token's `iat` and `pulled_at`, and the new token, issued as of
//!   `pulled_at`, is true of D1 as of `pulled_at`. Anything else reads the session row, as before.
//! - So a change made at `R` reaches every token issued as of a time after `R`; a token issued
//!   as of a time before `R` expires before `R + I`, and so does its renewal from a feed pulled
//!   before `R`; a renewal from a feed pulled after `R` finds the change named and reads the row.
//!   Revoked sessions, disabled users and role changes all end (or change) everywhere within `I`
//!   (the seconds a write takes to commit are inside the margin).
//! - Change times are the writers' clocks (the worker's, or D1's `unixepoch()` for the command
//!   line); [`MARGIN_SECS`] covers their skew and the gap between a write's time and its commit.

use std::collections::HashMap;

use crate::time::UnixTime;

/// Slack on every comparison of a change's time with a token's `iat`: clock skew between the
/// writers and the time from a write's timestamp to its commit. A generous bound costs only a
/// few more session reads.
pub const MARGIN_SECS: i64 = 60;

/// What changed, as the feed query returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A session was revoked at this time (sign-out, admin, RISC, command line).
    Session(String, UnixTime),
    /// A user changed at this time: role, disabled or enabled, email or profile.
    User(String, UnixTime),
}

/// What the feed says about renewing one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed for this session or user since its token: issue the same claims as of
    /// `as_of` (the feed's pull time), valid until `as_of + I`.
    Renew {
        /// The new token's `iat`.
        as_of: UnixTime,
    },
    /// The feed names the session or its user after the token's `iat`: read the session row.
    Changed,
    /// The token is older than the feed's window (or no feed yet): read the session row.
    TooOld,
}

/// The most changes one pull takes. More than this in a window (a mass revocation by hand, say)
/// and the isolate drops its feed until the next pull: renewals then read their session rows, as
/// before the feed, rather than hold an unbounded map.
pub const CAPACITY: usize = 50_000;

/// Changes with a time in `(pulled_at - window, pulled_at]`, by session and by user (latest
/// time each).
#[derive(Debug, Default)]
pub struct Feed {
    pulled_at: Option<UnixTime>,
    /// The last pull brought more than [`CAPACITY`] changes: no renewal from the feed, and the
    /// next pull reads the whole window again.
    overflowed: bool,
    /// Where the last pull stood in D1's history (a Sessions API bookmark).
    bookmark: Option<String>,
    sessions: HashMap<String, UnixTime>,
    users: HashMap<String, UnixTime>,
}

/// How long a pull serves: half an interval (at least a second), so a token issued as of the
/// pull lives at least that long.
fn serves(interval: i64) -> i64 {
    (interval / 2).max(1)
}

/// How far back the feed reaches: two intervals and the margin, so that a token that expired
/// up to one interval ago still renews without a read.
pub fn window(interval: i64) -> i64 {
    2 * interval + MARGIN_SECS
}

impl Feed {
    /// The time to read changes from, if a pull is due at `now`: never pulled (then the whole
    /// window), or pulled half an interval ago or more (then since the last pull, less the
    /// margin, for writes that committed late). A renewal from a feed at most half an interval
    /// old gives a token at least half an interval of life.
    pub fn due(&self, now: UnixTime, interval: i64) -> Option<UnixTime> {
        match self.pulled_at {
            Some(at)
                if self.overflowed && (now.secs() >= at.secs() + serves(interval) || now < at) =>
            {
                Some(now.plus(-window(interval)))
            }
            None => Some(now.plus(-window(interval))),
            // Since the last pull, less the margin; never further back than the window (older
            // changes would be forgotten at once).
            Some(at) if now.secs() >= at.secs() + serves(interval) || now < at => {
                Some(at.plus(-MARGIN_SECS).max(now.plus(-window(interval))))
            }
            Some(_) => None,
        }
    }

    /// A pull at `now` found more than [`CAPACITY`] changes: forget them all, renew nothing from
    /// the feed until the next pull (half an interval on), which reads the whole window again.
    pub fn overflowed(&mut self, now: UnixTime) {
        self.sessions.clear();
        self.users.clear();
        self.bookmark = None;
        self.pulled_at = Some(now);
        self.overflowed = true;
    }

    /// Takes the changes read at `now` (those with a time at or after what [`Feed::due`]
    /// said) and the read's bookmark, and forgets changes older than the window.
    pub fn pulled(
        &mut self,
        changes: Vec<Change>,
        bookmark: Option<String>,
        now: UnixTime,
        interval: i64,
    ) {
        self.overflowed = false;
        self.bookmark = bookmark;
        for change in changes {
            let (map, id, at) = match change {
                Change::Session(id, at) => (&mut self.sessions, id, at),
                Change::User(id, at) => (&mut self.users, id, at),
            };
            let latest = map.entry(id).or_insert(at);
            *latest = (*latest).max(at);
        }
        let from = now.plus(-window(interval));
        self.sessions.retain(|_, at| *at > from);
        self.users.retain(|_, at| *at > from);
        self.pulled_at = Some(now);
    }

    /// The pull time, if the feed serves at `now`: pulled less than half an interval ago (a
    /// pull that failed leaves an older feed, which then serves nothing) and not overflowed.
    fn serving(&self, now: UnixTime, interval: i64) -> Option<UnixTime> {
        self.pulled_at.filter(|at| {
            !self.overflowed && *at <= now && now.secs() < at.secs() + serves(interval)
        })
    }

    /// Whether session `sid` of user `sub`, whose token was issued as of `issued`, may be
    /// renewed from the feed at `now`.
    pub fn verdict(
        &self,
        sid: &str,
        sub: &str,
        issued: UnixTime,
        now: UnixTime,
        interval: i64,
    ) -> Verdict {
        let Some(pulled_at) = self.serving(now, interval) else {
            return Verdict::TooOld;
        };
        let since = issued.plus(-MARGIN_SECS);
        // The feed knows only changes after `pulled_at - window`.
        if since <= pulled_at.plus(-window(interval)) || issued > pulled_at {
            return Verdict::TooOld;
        }
        let named =
            |map: &HashMap<String, UnixTime>, id: &str| map.get(id).is_some_and(|at| *at >= since);
        if named(&self.sessions, sid) || named(&self.users, sub) {
            return Verdict::Changed;
        }
        Verdict::Renew { as_of: pulled_at }
    }

    /// When the feed was last pulled, with the pull's bookmark, if the feed is usable: a read
    /// anchored at that bookmark sees at least what D1 held at that time, so a token made from
    /// it may be issued as of that time.
    pub fn anchor(&self, now: UnixTime, interval: i64) -> Option<(UnixTime, &str)> {
        Some((self.serving(now, interval)?, self.bookmark.as_deref()?))
    }

    /// Changes held.
    pub fn len(&self) -> usize {
        self.sessions.len() + self.users.len()
    }

    /// Whether no change is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a renewal that takes a session's claims from `old_iat` to `new_iat` must write its
/// `last_seen_at`: when the two fall in different periods of `every` seconds. The periods are
/// shifted per session (by a hash of its id) so the writes of sessions signed in together spread
/// over the period. A session's renewals chain (each `iat` is the next one's old `iat`), so an
/// active session writes once per period, whatever its number of renewals.
pub fn seen_due(sid: &str, old_iat: UnixTime, new_iat: UnixTime, every: i64) -> bool {
    if every <= 1 {
        return true;
    }
    // FNV-1a: spreading only, nothing rests on it being hard to predict.
    let shift = sid.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let shift = i64::try_from(shift % every.unsigned_abs()).unwrap_or(0);
    let period = |t: UnixTime| t.secs().saturating_add(shift).div_euclid(every);
    period(new_iat) != period(old_iat)
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: i64 = 300;
    const T0: UnixTime = UnixTime(1_800_000_000);
    /// When the tests' feeds are consulted: at their pull.
    const NOW: UnixTime = T0;

    fn s(id: &str, at: i64) -> Change {
        Change::Session(id.into(), T0.plus(at))
    }

    fn u(id: &str, at: i64) -> Change {
        Change::User(id.into(), T0.plus(at))
    }

    #[test]
    fn a_cold_feed_reads_the_whole_window_then_every_half_interval_since_the_last_pull() {
        let mut f = Feed::default();
        assert_eq!(f.due(T0, I), Some(T0.plus(-window(I))));
        assert_eq!(
            f.verdict("s", "u", T0, T0, I),
            Verdict::TooOld,
            "no feed yet"
        );
        f.pulled(vec![], None, T0, I);
        assert_eq!(f.due(T0.plus(I / 2 - 1), I), None);
        assert_eq!(
            f.due(T0.plus(I / 2), I),
            Some(T0.plus(-MARGIN_SECS)),
            "since the last pull, less the margin"
        );
        assert_eq!(
            f.due(T0.plus(-1), I),
            Some(T0.plus(-MARGIN_SECS)),
            "a clock that went back pulls again"
        );
    }

    #[test]
    fn a_token_renews_from_the_feed_unless_its_session_or_user_changed_since_it_was_issued() {
        let mut f = Feed::default();
        f.pulled(
            vec![s("revoked", -100), u("changed", -50), s("old", -500)],
            Some("b1".into()),
            T0,
            I,
        );
        assert_eq!(
            f.anchor(T0, I),
            Some((T0, "b1")),
            "the pull's time and bookmark"
        );
        assert_eq!(
            f.anchor(T0.plus(I / 2), I),
            None,
            "a stale feed anchors nothing"
        );
        assert_eq!(
            f.verdict("s1", "u1", T0.plus(-I - 10), T0.plus(I / 2), I),
            Verdict::TooOld,
            "nor renews"
        );
        let issued = T0.plus(-I - 10);
        assert_eq!(
            f.verdict("s1", "u1", issued, NOW, I),
            Verdict::Renew { as_of: T0 }
        );
        assert_eq!(f.verdict("revoked", "u1", issued, NOW, I), Verdict::Changed);
        assert_eq!(f.verdict("s1", "changed", issued, NOW, I), Verdict::Changed);
        // A change before the token's iat (less the margin) is already in its claims.
        assert_eq!(
            f.verdict("old", "u1", T0.plus(-400), NOW, I),
            Verdict::Renew { as_of: T0 }
        );
        // Within the margin: read the row.
        assert_eq!(
            f.verdict("old", "u1", T0.plus(-500 + MARGIN_SECS), NOW, I),
            Verdict::Changed
        );
    }

    #[test]
    fn a_token_older_than_the_window_reads_the_row() {
        let mut f = Feed::default();
        f.pulled(vec![], None, T0, I);
        let edge = T0.plus(-window(I) + MARGIN_SECS);
        assert_eq!(f.verdict("s", "u", edge, NOW, I), Verdict::TooOld);
        assert_eq!(
            f.verdict("s", "u", edge.plus(1), NOW, I),
            Verdict::Renew { as_of: T0 }
        );
        assert_eq!(
            f.verdict("s", "u", T0.plus(1), NOW, I),
            Verdict::TooOld,
            "issued after the pull"
        );
    }

    #[test]
    fn an_overflowing_pull_renews_nothing_from_the_feed_and_reads_the_whole_window_next() {
        let mut f = Feed::default();
        f.pulled(vec![], None, T0, I);
        f.overflowed(T0.plus(200));
        assert_eq!(f.verdict("s", "u", T0.plus(-100), NOW, I), Verdict::TooOld);
        assert_eq!(
            f.anchor(T0.plus(200), I),
            None,
            "no anchor for reads either"
        );
        assert_eq!(
            f.due(T0.plus(200 + I / 2 - 1), I),
            None,
            "not on every request"
        );
        let at = T0.plus(200 + I / 2);
        assert_eq!(f.due(at, I), Some(at.plus(-window(I))));
        f.pulled(vec![], None, at, I);
        assert_eq!(
            f.verdict("s", "u", at.plus(-I), at, I),
            Verdict::Renew { as_of: at }
        );
    }

    #[test]
    fn changes_older_than_the_window_are_forgotten_and_the_latest_time_is_kept() {
        let mut f = Feed::default();
        f.pulled(vec![s("a", -10), s("a", -200), u("b", -20)], None, T0, I);
        assert_eq!(f.len(), 2);
        f.pulled(vec![], None, T0.plus(window(I) + 1), I);
        assert!(f.is_empty());
    }

    #[test]
    fn an_active_session_writes_last_seen_once_per_period_however_often_it_renews() {
        let every = 3600;
        for sid in ["a", "session-b", "ccccccccccccccccccccc"] {
            let mut writes = 0;
            let mut iat = T0;
            // A day of renewals every 150 to 300 seconds.
            for step in 0..400 {
                let next = iat.plus(150 + (step * 37) % 151);
                writes += usize::from(seen_due(sid, iat, next, every));
                iat = next;
            }
            let hours = (iat.secs() - T0.secs()) / every;
            assert!(
                (hours..=hours + 1).contains(&i64::try_from(writes).unwrap()),
                "{sid}: {writes} writes in {hours} h"
            );
        }
        assert!(
            seen_due("a", T0, T0.plus(every), every),
            "a whole period apart"
        );
        assert!(!seen_due("a", T0, T0, every));
    }
}
