//! One simulated day: a sample of users, each with visits (page views), sign-ins, sign-outs,
//! and an admin who changes some of them, against the real [`App`] on several isolates, with a
//! pinned clock. Every store call goes through [`Counting`].

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::super::{FakeGoogle, Reply, SITE, World, run};
use super::counting::{Call, Counting, Counts, Kind, Tally};
use super::{Params, float, seconds, whole};
use crate::app::{App, Log, Quick, Request, quick_decision};
use crate::config::Config;
use crate::config::tests::config;
use crate::oidc::jwks::JwksCache;
use crate::oidc::risc::RiscCache;
use crate::random::Random;
use crate::session::feed;
use crate::session::memory::SessionMemory;
use crate::session::token::{self, SessionClaims};
use crate::store::memory::MemoryStore;
use crate::store::{SessionStore, SignIn};
use crate::time::UnixTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Method, header};
use url::Url;

/// The first second of the simulated day (00:00 of the model's clock).
pub(super) const DAY_START: i64 = 1_800_000_000 - 1_800_000_000 % 86_400;
/// The day's length.
pub(super) const DAY: i64 = 86_400;
const ADMIN_EMAIL: &str = "boss@example.com";
const NAME: &str = "Model User";
const PICTURE: &str = "https://lh3.googleusercontent.com/a/model";
const SESSION: &str = "__Host-gatehouse_session";

/// What happened during the day, besides D1 statements.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Page views, hot path and full route.
    pub(super) page_views: usize,
    /// Page views admitted on the hot path (`quick_decision`): no D1, whatever the number.
    pub(super) hot: usize,
    /// Page views that took the full route with an expired token: renewals (granted or not).
    pub(super) renewals: usize,
    /// Renewals answered from the isolate's memory of renewals and ends.
    pub(super) remembered: usize,
    /// Renewals in a warm isolate (its feed pulled before the request) of a token within the
    /// feed's window, whose session and user no change named: the feed can grant them.
    pub(super) feed_grantable: usize,
    /// Session reads during those.
    pub(super) feed_grantable_reads: usize,
    /// Sessions that renewals ended (revoked, disabled, past their end).
    pub(super) ended: usize,
    /// Sign-ins completed, and refused (disabled users).
    pub(super) sign_ins: usize,
    pub(super) refused_sign_ins: usize,
    /// Sign-outs.
    pub(super) sign_outs: usize,
    /// Admin changes made, by action.
    pub(super) admin: HashMap<&'static str, usize>,
    /// Distinct (session, clock hour) pairs with a request: active session-hours.
    pub(super) session_hours: usize,
    /// Each session's first and last request of the day, and its last-seen writes.
    pub(super) sessions: HashMap<String, (i64, i64, usize)>,
    /// Per hour: the sum over each minute of the sessions with a request in the last interval
    /// (divide by 60 for the hour's average).
    pub(super) active: [usize; 24],
    /// Per hour: what today's renewal (one read, and one write if granted, per renewal not
    /// answered from memory) would have cost for the same page views.
    pub(super) today: [Counts; 24],
    /// Isolates started (cold), the first ones included.
    pub(super) isolates_started: usize,
    /// Log lines by event.
    pub(super) events: HashMap<String, usize>,
}

/// The result of one simulated day.
pub(super) struct Day {
    /// Users simulated.
    pub(super) sample: usize,
    /// Isolates simulated.
    pub(super) isolates: usize,
    /// D1 statements.
    pub(super) tally: Tally,
    /// Everything else.
    pub(super) stats: Stats,
}

/// Randomness for the app (ids, state, nonces): seeded, so a run is repeatable.
struct Seeded(RefCell<StdRng>);

impl Random for Seeded {
    fn fill(&self, buf: &mut [u8]) {
        self.0.borrow_mut().fill_bytes(buf);
    }
}

/// Counts log lines by event.
#[derive(Default)]
struct Events(RefCell<HashMap<String, usize>>);

impl Log for Events {
    fn line(&self, line: &str) {
        let event = line
            .split("\"event\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?");
        *self.0.borrow_mut().entry(event.to_owned()).or_default() += 1;
    }
}

/// One isolate: its own memory (renewals, ends, the change feed, queued last-seen writes) and
/// caches, as `runtime` keeps them in thread-locals.
#[derive(Default)]
struct Isolate {
    sessions: RefCell<SessionMemory>,
    jwks: RefCell<JwksCache>,
    risc: RiscCache,
    generation: u64,
    dies: i64,
    flush_pending: bool,
    /// A renewal here has pulled the change feed.
    warm: bool,
}

/// What the app is built from, as `World::app` does, but with one memory per isolate.
struct Env {
    config: Config,
    google: FakeGoogle,
    store: Counting<MemoryStore>,
    random: Seeded,
    log: Events,
    isolates: Vec<Isolate>,
}

impl Env {
    /// One request on isolate `iso` at `now`; true when it queued the isolate's first last-seen
    /// write (the runtime then writes the batch later, in `waitUntil`).
    fn handle(&self, iso: usize, now: i64, kind: Kind, req: &Request) -> (Reply, bool) {
        self.store.activity.set(kind);
        self.store.now.set(now);
        let isolate = &self.isolates[iso];
        let app = App {
            config: &self.config,
            http: &self.google,
            store: &self.store,
            random: &self.random,
            jwks: &isolate.jwks,
            rs256: &crate::oidc::rs256::NativeRs256,
            sessions: &isolate.sessions,
            risc: &isolate.risc,
            log: &self.log,
            now: UnixTime(now),
        };
        let reply = World::reply(run(app.handle(req)));
        // What `runtime::handle` does after the response.
        let schedule = isolate.sessions.borrow_mut().schedule_seen();
        (reply, schedule)
    }

    /// The isolate's queued last-seen batch, written (`runtime::write_seen_later`).
    fn flush(&self, iso: usize, now: i64) {
        let ids = self.isolates[iso].sessions.borrow_mut().take_seen();
        self.store.now.set(now);
        run(self.store.seen(&ids, UnixTime(now))).expect("the memory store never fails");
    }
}

/// A session cookie in a browser, with what the model needs to know of its token.
#[derive(Clone, Debug)]
struct Token {
    value: String,
    sid: String,
    sub: String,
    issued: i64,
    /// The first second the hot path no longer admits it (`Session::lapses`).
    lapses: i64,
    sxp: i64,
}

impl Token {
    /// A token the app issued, read back (its claims; the app checked its signature).
    fn read(value: &str) -> Self {
        #[derive(serde::Deserialize)]
        struct Claims {
            sid: String,
            sub: String,
            iat: i64,
            exp: i64,
            sxp: i64,
        }
        let payload = value.split('.').nth(1).expect("a JWT");
        let c: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
                .expect("session claims");
        Self {
            value: value.to_owned(),
            sid: c.sid,
            sub: c.sub,
            issued: c.iat,
            lapses: c.exp.min(c.sxp),
            sxp: c.sxp,
        }
    }
}

/// A user and their one browser.
struct User {
    email: String,
    subject: String,
    /// The user's id, once known.
    id: Option<String>,
    cookie: Option<Token>,
    /// When an admin last changed the user (role, disable, revoke-all): the feed names them.
    changed_at: i64,
    /// Their role in D1.
    role: &'static str,
    /// Disabled by the admin (they find out at their next renewal).
    disabled: bool,
    /// Sign-in refused (disabled): no more visits.
    locked_out: bool,
    /// The last (session, clock hour) with a request.
    last_hour: Option<(String, i64)>,
    last_request: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Admin {
    SetRole,
    Disable,
    RevokeAll,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A page view of a visit with `left` page views to go (this one included).
    Page { user: usize, left: u32 },
    /// The isolate's last-seen batch is due.
    Flush { iso: usize, generation: u64 },
    /// The admin makes a change.
    Admin(Admin),
    /// The cron trigger (`*/10 * * * *` in wrangler.toml): a pruning run.
    Cron,
}

/// The day being simulated.
pub(super) struct Sim {
    env: Env,
    params: Params,
    rng: StdRng,
    users: Vec<User>,
    admin: User,
    queue: BinaryHeap<Reverse<(i64, u64, Event)>>,
    seq: u64,
    codes: u64,
    /// Hot-path page views so far (one in 16 is checked).
    checks: u64,
    now: i64,
    next_census: i64,
    stats: Stats,
}

impl Sim {
    /// The day of `params.sample` users on `isolates` isolates, before it starts: yesterday's
    /// users and sessions are in the store, today's visits and admin changes are scheduled.
    pub(super) fn new(params: &Params, isolates: usize) -> Self {
        let interval = params.interval.to_string();
        let config = config(&[
            ("AUTH_URL", SITE),
            ("ADMIN_EMAILS", ADMIN_EMAIL),
            ("ROLE_PATHS", "/finance/*=finance"),
            ("SESSION_CHECK_INTERVAL", &interval),
        ]);
        let mut rng = StdRng::seed_from_u64(params.seed);
        let random = Seeded(RefCell::new(StdRng::seed_from_u64(rng.r#gen())));
        let mut env = Env {
            config,
            google: FakeGoogle::default(),
            store: Counting::new(MemoryStore::default(), DAY_START),
            random,
            log: Events::default(),
            isolates: Vec::new(),
        };
        for _ in 0..isolates {
            env.isolates.push(Isolate {
                dies: DAY_START + lifetime(&mut rng, params.isolate_lifetime),
                ..Isolate::default()
            });
        }
        let mut sim = Self {
            env,
            params: params.clone(),
            rng,
            users: Vec::new(),
            admin: user(ADMIN_EMAIL, "admin"),
            queue: BinaryHeap::new(),
            seq: 0,
            codes: 0,
            checks: 0,
            now: DAY_START,
            next_census: DAY_START,
            stats: Stats {
                isolates_started: isolates,
                ..Stats::default()
            },
        };
        sim.admin = sim.yesterday(ADMIN_EMAIL, "admin", true);
        for i in 0..params.sample {
            let (email, subject) = (format!("user{i}@example.com"), format!("g-{i}"));
            let u = if sim.rng.gen_bool(params.new_users) {
                // Signs up today.
                user(&email, &subject)
            } else {
                sim.yesterday(&email, &subject, false)
            };
            sim.users.push(u);
            let visits = sim.rng.gen_range(params.visits.0..=params.visits.1);
            for _ in 0..visits {
                let at = sim.time_of_day();
                let left = sim.rng.gen_range(params.pages.0..=params.pages.1);
                sim.at(at, Event::Page { user: i, left });
            }
        }
        for t in (DAY_START..DAY_START + DAY).step_by(600) {
            sim.at(t, Event::Cron);
        }
        let sample = float(params.sample);
        for (action, rate) in [
            (Admin::SetRole, params.set_role),
            (Admin::Disable, params.disable),
            (Admin::RevokeAll, params.revoke_all),
        ] {
            // The expected number, its fraction drawn.
            let expected = rate * sample;
            let n = expected.floor() + f64::from(u8::from(sim.rng.gen_bool(expected.fract())));
            for _ in 0..whole(n) {
                let at = sim.time_of_day();
                sim.at(at, Event::Admin(action));
            }
        }
        sim
    }

    /// A user who signed in before today: in the store, with a session and a token issued at
    /// their last renewal yesterday; or, after a sign-out at their last visit, with none.
    fn yesterday(&mut self, email: &str, subject: &str, admin: bool) -> User {
        let max_age = self.env.config.session_max_age;
        let interval = self.params.interval;
        let created = DAY_START - self.rng.gen_range(7200..max_age);
        // Random ids, as the app makes them.
        let user_id = self.env.random.token(16);
        let sid = self.env.random.token(32);
        let s = SignIn {
            provider: "google",
            subject: subject.to_owned(),
            email: email.to_owned(),
            name: Some(NAME.into()),
            image: Some(PICTURE.into()),
            make_admin: admin,
            new_user_id: user_id.clone(),
            session_id: sid.clone(),
            now: UnixTime(created),
            expires_at: UnixTime(created + max_age),
            user_agent: None,
            site: "https://site.test".into(),
        };
        run(self.env.store.inner.sign_in(&s)).expect("the memory store never fails");
        let mut u = user(email, subject);
        u.id = Some(user_id.clone());
        if !admin && self.rng.gen_bool(self.params.sign_out) {
            let at = UnixTime(created.max(DAY_START - 3600));
            run(self.env.store.inner.revoke_session(&sid, at)).expect("never fails");
            return u;
        }
        let issued = self
            .rng
            .gen_range(created.max(DAY_START - DAY)..DAY_START - 3600);
        let claims = SessionClaims {
            iss: SITE.into(),
            aud: SITE.into(),
            sub: user_id,
            sid,
            email: email.into(),
            name: Some(NAME.into()),
            picture: Some(PICTURE.into()),
            role: if admin { "admin" } else { "user" }.into(),
            sxp: created + max_age,
        };
        let value = token::issue(&self.env.config.keys, claims, UnixTime(issued), interval)
            .expect("a token");
        u.cookie = Some(Token::read(&value));
        u
    }

    fn at(&mut self, t: i64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, event)));
    }

    /// A time of the day, drawn from the diurnal curve: density ∝ 1 + a·cos(2π(h − peak)/24).
    fn time_of_day(&mut self) -> i64 {
        let a = self.params.diurnal;
        loop {
            let t = self.rng.gen_range(0..DAY);
            let h = float(usize::try_from(t).unwrap_or(0)) / 3600.0;
            let density =
                1.0 + a * ((h - self.params.peak_hour) / 24.0 * std::f64::consts::TAU).cos();
            if self.rng.gen_bool(density / (1.0 + a)) {
                return DAY_START + t;
            }
        }
    }

    /// Runs the day and hands back what it cost.
    pub(super) fn run(mut self) -> Day {
        while let Some(Reverse((t, _, event))) = self.queue.pop() {
            if t >= DAY_START + DAY {
                break;
            }
            self.census_until(t);
            self.now = t;
            match event {
                Event::Page { user, left } => self.page(user, left),
                Event::Flush { iso, generation } => {
                    if self.env.isolates[iso].generation == generation {
                        self.env.isolates[iso].flush_pending = false;
                        self.env.flush(iso, t);
                    }
                }
                Event::Admin(action) => self.admin_change(action),
                Event::Cron => {
                    self.env.store.now.set(t);
                    let pruned = run(crate::prune::run(
                        &self.env.store,
                        &self.env.config,
                        UnixTime(t),
                        &self.env.log,
                    ));
                    assert!(pruned.is_some(), "the memory store never fails");
                }
            }
        }
        self.census_until(DAY_START + DAY);
        for (sid, span) in &mut self.stats.sessions {
            span.2 = self.env.store.inner.seen_writes(sid);
        }
        self.stats.events = self.env.log.0.take();
        Day {
            sample: self.params.sample,
            isolates: self.env.isolates.len(),
            tally: self.env.store.tally.take(),
            stats: self.stats,
        }
    }

    /// Counts, each minute up to `t`, the sessions with a request in the last interval.
    fn census_until(&mut self, t: i64) {
        while self.next_census < t.min(DAY_START + DAY) {
            let since = self.next_census - self.params.interval;
            let active = self
                .users
                .iter()
                .filter(|u| u.cookie.is_some() && u.last_request > since)
                .count();
            self.stats.active[hour(self.next_census)] += active;
            self.next_census += 60;
        }
    }

    /// The isolate a request lands on: any of the region's, at random. A dead one is replaced
    /// by a cold one first (its queued batch written, as `waitUntil` would).
    fn isolate(&mut self) -> usize {
        let iso = self.rng.gen_range(0..self.env.isolates.len());
        if self.now >= self.env.isolates[iso].dies {
            if self.env.isolates[iso].flush_pending {
                self.env.flush(iso, self.now);
            }
            let generation = self.env.isolates[iso].generation + 1;
            self.env.isolates[iso] = Isolate {
                generation,
                dies: self.now + lifetime(&mut self.rng, self.params.isolate_lifetime),
                ..Isolate::default()
            };
            self.stats.isolates_started += 1;
        }
        iso
    }

    fn request(
        &mut self,
        kind: Kind,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let iso = self.isolate();
        self.request_on(iso, kind, method, path, headers, body)
    }

    fn request_on(
        &mut self,
        iso: usize,
        kind: Kind,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).expect("a header name"),
                HeaderValue::from_str(v).expect("a header value"),
            );
        }
        let req = Request {
            method,
            url: Url::parse(&format!("{SITE}{path}")).expect("a URL"),
            headers: map,
            body: body.as_bytes().to_vec(),
        };
        let (reply, schedule) = self.env.handle(iso, self.now, kind, &req);
        if schedule {
            let generation = self.env.isolates[iso].generation;
            self.env.isolates[iso].flush_pending = true;
            self.at(
                self.now + self.params.seen_batch_delay,
                Event::Flush { iso, generation },
            );
        }
        reply
    }

    /// Signs in through Google (the fake provider): the start, the provider, the callback.
    /// `None` when refused (a disabled user).
    fn sign_in(&mut self, email: &str, subject: &str, kind: Kind) -> Option<Token> {
        let r = self.request(
            kind,
            Method::GET,
            "/auth/login/google?callbackUrl=%2Fdocs%2F",
            &[],
            "",
        );
        assert_eq!(r.status, 302, "sign-in start");
        let state_cookie = r.cookie("__Host-gatehouse_state").expect("state cookie");
        let authorize = Url::parse(r.location.as_deref().expect("to Google")).expect("a URL");
        let q = |name: &str| {
            authorize
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .expect("an authorization parameter")
        };
        let claims = serde_json::json!({
            "iss": "https://accounts.google.com", "aud": "client-1", "azp": "client-1",
            "sub": subject, "email": email, "email_verified": true, "name": NAME,
            "picture": PICTURE, "iat": self.now, "exp": self.now + 3600, "nonce": q("nonce"),
        });
        self.codes += 1;
        let code = format!("code-{}", self.codes);
        self.env.google.pending.borrow_mut().push((
            code.clone(),
            q("code_challenge"),
            q("redirect_uri"),
            claims,
        ));
        let r = self.request(
            kind,
            Method::GET,
            &format!("/auth/callback/google?code={code}&state={}", q("state")),
            &[("cookie", &format!("__Host-gatehouse_state={state_cookie}"))],
            "",
        );
        assert_eq!(r.status, 302, "callback");
        let token = r
            .cookie(SESSION)
            .filter(|c| !c.is_empty())
            .map(|v| Token::read(&v));
        if token.is_some() {
            self.stats.sign_ins += 1;
        } else {
            assert!(
                r.location
                    .as_deref()
                    .unwrap_or_default()
                    .contains("AccessDenied"),
                "a refused sign-in is a disabled user's: {:?}",
                r.location
            );
            self.stats.refused_sign_ins += 1;
        }
        token
    }

    /// Signs user `u` in; false when refused (then they stop visiting).
    fn sign_in_user(&mut self, u: usize) -> bool {
        let (email, subject) = (self.users[u].email.clone(), self.users[u].subject.clone());
        if let Some(t) = self.sign_in(&email, &subject, Kind::SignIn) {
            self.users[u].id = Some(t.sub.clone());
            self.users[u].cookie = Some(t);
            true
        } else {
            self.users[u].locked_out = true;
            self.users[u].cookie = None;
            false
        }
    }

    /// One page view of user `u`: the hot path if their token is current, else the full
    /// route (a renewal); then the next page view of the visit, or its end.
    fn page(&mut self, u: usize, left: u32) {
        if self.users[u].locked_out {
            return;
        }
        self.stats.page_views += 1;
        if self.users[u].cookie.is_none() && !self.sign_in_user(u) {
            return;
        }
        let path = format!("/docs/page-{}", self.rng.gen_range(0..100));
        let cookie = self.users[u].cookie.clone().expect("signed in");
        let current = self.now < cookie.lapses;
        // The hot path is pure (no store): a page view with a current token costs D1 nothing
        // and is only counted. One page view in 16 is checked against `quick_decision`.
        self.checks += 1;
        if self.checks.is_multiple_of(16) {
            let quick = quick_decision(
                &self.env.config,
                &format!("{SITE}{path}"),
                Some(&format!("{SESSION}={}", cookie.value)),
                UnixTime(self.now),
            );
            let expected = if current {
                Quick::Admitted {
                    until: UnixTime(cookie.lapses),
                }
            } else {
                Quick::Full
            };
            assert_eq!(quick, expected, "the hot path's verdict");
        }
        if current {
            self.stats.hot += 1;
        } else {
            self.renew(u, &path, &cookie);
        }
        if let Some(sid) = self.users[u].cookie.as_ref().map(|t| t.sid.clone()) {
            let key = (sid.clone(), self.now.div_euclid(3600));
            if self.users[u].last_hour.as_ref() != Some(&key) {
                self.stats.session_hours += 1;
                self.users[u].last_hour = Some(key);
            }
            self.users[u].last_request = self.now;
            let span = self
                .stats
                .sessions
                .entry(sid)
                .or_insert((self.now, self.now, 0));
            span.1 = self.now;
        }
        if left > 1 {
            let gap = self.rng.gen_range(self.params.gap.0..=self.params.gap.1);
            self.at(
                self.now + gap,
                Event::Page {
                    user: u,
                    left: left - 1,
                },
            );
        } else if self.users[u].cookie.is_some() && self.rng.gen_bool(self.params.sign_out) {
            self.sign_out(u);
        }
    }

    /// A page view on the full route with an expired token: renewed, or the session is over
    /// and the user signs in again.
    fn renew(&mut self, u: usize, path: &str, old: &Token) {
        let iso = self.isolate();
        let interval = self.params.interval;
        let (remembered, warm) = {
            let memory = self.env.isolates[iso].sessions.borrow();
            (
                memory
                    .renewal(&old.sid, &old.sub, UnixTime(self.now))
                    .is_some()
                    || memory.is_ended(&old.sid, UnixTime(self.now)),
                self.env.isolates[iso].warm,
            )
        };
        let reads = self.session_reads();
        let header = format!("{SESSION}={}", old.value);
        let r = self.request_on(
            iso,
            Kind::RenewalRead,
            Method::GET,
            path,
            &[("cookie", &header), ("accept", "text/html")],
            "",
        );
        let reads = self.session_reads() - reads;
        self.stats.renewals += 1;
        self.stats.remembered += usize::from(remembered);
        // The target: what the feed can grant in a warm isolate costs no session read.
        let pulled = self.env.isolates[iso]
            .sessions
            .borrow()
            .feed
            .anchor(UnixTime(self.now), interval)
            .map(|(at, _)| at);
        self.env.isolates[iso].warm |= pulled.is_some();
        let in_window = pulled.is_some_and(|p| {
            old.issued - feed::MARGIN_SECS > p.secs() - feed::window(interval)
                && old.issued <= p.secs()
        });
        let named = self.users[u].changed_at >= old.issued - feed::MARGIN_SECS;
        if warm && !remembered && in_window && !named && self.now < old.sxp {
            self.stats.feed_grantable += 1;
            self.stats.feed_grantable_reads += reads;
        }
        let granted = r.forward.is_some();
        if !remembered {
            let today = &mut self.stats.today[hour(self.now)];
            today.reads += 1.0;
            today.writes += f64::from(u8::from(granted));
        }
        if granted {
            if let Some(value) = r.cookie(SESSION).filter(|c| !c.is_empty()) {
                self.users[u].cookie = Some(Token::read(&value));
            }
            return;
        }
        assert!(
            r.status == 302
                && r.location
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with("/auth/login"),
            "an expired token is renewed or sent to sign-in: {} {:?}",
            r.status,
            r.location
        );
        self.stats.ended += 1;
        self.users[u].cookie = None;
        // Back from sign-in, the page again, with a current token (the hot path).
        if self.sign_in_user(u) {
            self.stats.page_views += 1;
            self.stats.hot += 1;
        }
    }

    /// Session rows read so far, on the primary or at a bookmark.
    fn session_reads(&self) -> usize {
        self.env.store.calls(Call::Session) + self.env.store.calls(Call::SessionAfter)
    }

    /// Signs user `u` out from the sign-out page.
    fn sign_out(&mut self, u: usize) {
        let value = self.users[u]
            .cookie
            .as_ref()
            .expect("signed in")
            .value
            .clone();
        let cookie = format!("{SESSION}={value}");
        let page = self.request(
            Kind::SignOut,
            Method::GET,
            "/auth/logout",
            &[("cookie", &cookie), ("accept", "text/html")],
            "",
        );
        let csrf = csrf_token(&page.body);
        let r = self.request(
            Kind::SignOut,
            Method::POST,
            "/auth/logout",
            &[("cookie", &cookie), ("origin", SITE)],
            &format!("csrfToken={csrf}"),
        );
        assert_eq!(r.status, 303, "signed out");
        self.users[u].cookie = None;
        self.stats.sign_outs += 1;
    }

    /// The admin opens a user's page, makes the change, and sees the page again.
    fn admin_change(&mut self, action: Admin) {
        // A user the action changes: known, not disabled, and for a revoke-all signed in.
        let now = self.now;
        let candidates: Vec<usize> = (0..self.users.len())
            .filter(|&i| {
                let u = &self.users[i];
                u.id.is_some()
                    && !u.disabled
                    && (action != Admin::RevokeAll
                        || u.cookie.as_ref().is_some_and(|c| now < c.sxp))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let target = candidates[self.rng.gen_range(0..candidates.len())];
        let id = self.users[target].id.clone().expect("a user id");
        let page = format!("/auth/admin?user={id}");
        let mut r = self.admin_request(Method::GET, &page, "");
        if r.status == 302 {
            // The admin's session ended: sign in again.
            self.admin.cookie = self.sign_in(ADMIN_EMAIL, "admin", Kind::Admin);
            r = self.admin_request(Method::GET, &page, "");
        }
        assert_eq!(r.status, 200, "the admin page");
        let (name, fields) = match action {
            // Always a change: the role flips.
            Admin::SetRole => {
                let role = if self.users[target].role == "user" {
                    "finance"
                } else {
                    "user"
                };
                self.users[target].role = role;
                ("set-role", format!("&action=set-role&role={role}"))
            }
            Admin::Disable => ("disable", "&action=disable".to_owned()),
            Admin::RevokeAll => ("revoke-all", "&action=revoke-all".to_owned()),
        };
        let body = format!("csrfToken={}&user_id={id}{fields}", csrf_token(&r.body));
        let r = self.admin_request(Method::POST, "/auth/admin", &body);
        assert_eq!(r.status, 303, "the admin action");
        let back = r.location.clone().expect("back to the page");
        assert!(back.contains("done="), "the admin action was made: {back}");
        *self.stats.admin.entry(name).or_default() += 1;
        self.users[target].changed_at = self.now;
        self.users[target].disabled |= action == Admin::Disable;
        let r = self.admin_request(Method::GET, &back, "");
        assert_eq!(r.status, 200, "the admin page after the change");
    }

    fn admin_request(&mut self, method: Method, path: &str, body: &str) -> Reply {
        if self.admin.cookie.is_none() {
            self.admin.cookie = self.sign_in(ADMIN_EMAIL, "admin", Kind::Admin);
        }
        let value = self.admin.cookie.as_ref().expect("the admin").value.clone();
        let cookie = format!("{SESSION}={value}");
        let mut headers = vec![("cookie", cookie.as_str()), ("accept", "text/html")];
        if method == Method::POST {
            headers.push(("origin", SITE));
        }
        let r = self.request(Kind::Admin, method, path, &headers, body);
        match r.cookie(SESSION) {
            Some(v) if v.is_empty() => self.admin.cookie = None,
            Some(v) => self.admin.cookie = Some(Token::read(&v)),
            None => {}
        }
        r
    }
}

fn user(email: &str, subject: &str) -> User {
    User {
        email: email.to_owned(),
        subject: subject.to_owned(),
        id: None,
        cookie: None,
        changed_at: i64::MIN,
        role: "user",
        disabled: false,
        locked_out: false,
        last_hour: None,
        last_request: i64::MIN,
    }
}

/// The hour of the day of `t` (0–23).
pub(super) fn hour(t: i64) -> usize {
    usize::try_from((t - DAY_START).clamp(0, DAY - 1) / 3600).unwrap_or(0)
}

/// An isolate's life: exponential with mean `mean` seconds.
fn lifetime(rng: &mut StdRng, mean: i64) -> i64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    seconds(-u.ln() * float(usize::try_from(mean).unwrap_or(0)))
}

/// The CSRF token of a page's form.
fn csrf_token(body: &str) -> String {
    let marker = "name=\"csrfToken\" value=\"";
    let start = body.find(marker).expect("a CSRF token on the page") + marker.len();
    body[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}
