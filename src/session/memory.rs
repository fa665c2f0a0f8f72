//! A per-isolate memory of recent renewals and of sessions found ended, so that a client
//! replaying one expired token (one that never keeps the renewed cookie, or a stolen copy of a
//! revoked session) costs D1 nothing after the first request.
//!
//! Why this keeps revocation bounded by `SESSION_CHECK_INTERVAL`: a remembered renewal hands
//! out the token D1 granted, only until that token's own `exp` (at most one interval after the
//! D1 check), exactly as if the client had kept the cookie; a remembered end is kept for one
//! interval, so a re-enabled user is back within the interval too. Plain data, no I/O.
//!
//! It also holds the isolate's change feed ([`Feed`]) and the sessions whose `last_seen_at`
//! waits to be written in the isolate's next batch.

use std::collections::{HashMap, HashSet};

use super::feed::Feed;
use super::verified::VerifiedTokens;
use crate::time::UnixTime;

/// How many sessions each half of the memory holds; past it, forgotten entries are dropped
/// first, then everything (the next request of each session asks D1 again: correct, just
/// slower).
pub const CAPACITY: usize = 4096;

/// How many last-seen writes one statement carries (`runtime::d1`), and how many queued
/// sessions make an isolate write them at once rather than at its next feed pull.
pub const SEEN_BATCH: usize = 100;

/// A renewal D1 granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// The user the session belongs to (`sub`).
    pub sub: String,
    /// The new token.
    pub token: String,
    /// The new token's `exp`: the renewal is handed out until then, never after.
    pub until: UnixTime,
}

/// Recent renewals and ended sessions, by session id; the change feed; last-seen writes to make.
#[derive(Debug, Default)]
pub struct SessionMemory {
    renewed: HashMap<String, Renewal>,
    ended: HashMap<String, UnixTime>,
    /// What changed recently (revoked sessions, changed users), pulled from D1.
    pub feed: Feed,
    /// Session tokens verified recently, for the gate's first decision (both routes).
    pub verified: VerifiedTokens,
    seen: HashSet<String>,
    seen_scheduled: bool,
}

impl SessionMemory {
    /// The renewal granted to session `sid` of user `sub`, while its token is current.
    pub fn renewal(&self, sid: &str, sub: &str, now: UnixTime) -> Option<&Renewal> {
        self.renewed
            .get(sid)
            .filter(|r| r.sub == sub && now < r.until)
    }

    /// Remembers a renewal D1 granted.
    pub fn remember_renewal(&mut self, sid: &str, renewal: Renewal, now: UnixTime) {
        self.ended.remove(sid);
        make_room(&mut self.renewed, now, |r| r.until);
        self.renewed.insert(sid.to_owned(), renewal);
    }

    /// Whether D1 said, less than one interval ago, that session `sid` has ended.
    pub fn is_ended(&self, sid: &str, now: UnixTime) -> bool {
        self.ended.get(sid).is_some_and(|until| now < *until)
    }

    /// Remembers that D1 refused to renew `sid` (revoked, unknown, past its end, user
    /// disabled), until `until` (now + one interval).
    pub fn remember_end(&mut self, sid: &str, until: UnixTime, now: UnixTime) {
        self.renewed.remove(sid);
        make_room(&mut self.ended, now, |u| *u);
        self.ended.insert(sid.to_owned(), until);
    }

    /// Queues a `last_seen_at` write for `sid`, for the isolate's next batch.
    pub fn queue_seen(&mut self, sid: &str) {
        if self.seen.len() < CAPACITY {
            self.seen.insert(sid.to_owned());
        }
    }

    /// True when a full batch ([`SEEN_BATCH`] sessions) is queued and no write of it is
    /// scheduled: the caller schedules one (which takes every session queued until it runs), and
    /// this says false until it has run. A smaller queue waits for the isolate's next pull of the
    /// change feed, which writes it first (one statement per pull, not one per renewal).
    pub fn schedule_seen(&mut self) -> bool {
        self.seen.len() >= SEEN_BATCH && !std::mem::replace(&mut self.seen_scheduled, true)
    }

    /// The sessions queued for a `last_seen_at` write, emptied; the next queued one schedules a
    /// new batch.
    pub fn take_seen(&mut self) -> Vec<String> {
        self.seen_scheduled = false;
        let mut ids: Vec<String> = self.seen.drain().collect();
        ids.sort_unstable();
        ids
    }

    /// Entries held (both halves).
    pub fn len(&self) -> usize {
        self.renewed.len() + self.ended.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn make_room<V>(map: &mut HashMap<String, V>, now: UnixTime, until: impl Fn(&V) -> UnixTime) {
    if map.len() < CAPACITY {
        return;
    }
    map.retain(|_, v| now < until(v));
    if map.len() >= CAPACITY {
        map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renewal(sub: &str, until: i64) -> Renewal {
        Renewal {
            sub: sub.into(),
            token: format!("t-{until}"),
            until: UnixTime(until),
        }
    }

    #[test]
    fn a_renewal_is_handed_out_until_its_token_expires_and_only_to_its_user() {
        let mut m = SessionMemory::default();
        m.remember_renewal("s1", renewal("u1", 1300), UnixTime(1000));
        assert_eq!(
            m.renewal("s1", "u1", UnixTime(1000)).unwrap().token,
            "t-1300"
        );
        assert!(m.renewal("s1", "u1", UnixTime(1299)).is_some());
        assert!(
            m.renewal("s1", "u1", UnixTime(1300)).is_none(),
            "exp is exclusive"
        );
        assert!(
            m.renewal("s1", "u2", UnixTime(1000)).is_none(),
            "another user"
        );
        assert!(
            m.renewal("s2", "u1", UnixTime(1000)).is_none(),
            "another session"
        );
    }

    #[test]
    fn an_end_is_remembered_for_one_interval_and_replaces_a_renewal() {
        let mut m = SessionMemory::default();
        m.remember_renewal("s1", renewal("u1", 1300), UnixTime(1000));
        m.remember_end("s1", UnixTime(1100 + 300), UnixTime(1100));
        assert!(m.renewal("s1", "u1", UnixTime(1100)).is_none());
        assert!(m.is_ended("s1", UnixTime(1100)));
        assert!(m.is_ended("s1", UnixTime(1399)));
        assert!(!m.is_ended("s1", UnixTime(1400)));
        m.remember_renewal("s1", renewal("u1", 1700), UnixTime(1400));
        assert!(!m.is_ended("s1", UnixTime(1400)));
    }

    #[test]
    fn last_seen_writes_wait_for_a_full_batch_or_the_next_pull() {
        let mut m = SessionMemory::default();
        assert!(!m.schedule_seen(), "nothing queued");
        m.queue_seen("b");
        m.queue_seen("a");
        m.queue_seen("b");
        assert!(
            !m.schedule_seen(),
            "a small queue waits for the next feed pull"
        );
        assert_eq!(m.take_seen(), ["a", "b"]);
        assert!(m.take_seen().is_empty());
        for i in 0..SEEN_BATCH {
            m.queue_seen(&format!("s{i}"));
        }
        assert!(m.schedule_seen(), "a full batch is written at once");
        m.queue_seen("more");
        assert!(!m.schedule_seen(), "one write at a time");
        assert_eq!(
            m.take_seen().len(),
            SEEN_BATCH + 1,
            "it takes everything queued"
        );
        for i in 0..SEEN_BATCH {
            m.queue_seen(&format!("t{i}"));
        }
        assert!(
            m.schedule_seen(),
            "after it ran, the next full batch is scheduled"
        );
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut m = SessionMemory::default();
        for i in 0..3 * CAPACITY {
            m.remember_end(&format!("s{i}"), UnixTime(2000), UnixTime(1000));
            m.remember_renewal(&format!("r{i}"), renewal("u", 2000), UnixTime(1000));
        }
        assert!(m.len() <= 2 * CAPACITY, "{}", m.len());
        // Lapsed entries go first.
        let mut m = SessionMemory::default();
        for i in 0..CAPACITY {
            m.remember_end(&format!("old{i}"), UnixTime(1001), UnixTime(1000));
        }
        m.remember_end("live", UnixTime(3000), UnixTime(2000));
        assert_eq!(m.len(), 1);
        assert!(m.is_ended("live", UnixTime(2000)));
    }
}
