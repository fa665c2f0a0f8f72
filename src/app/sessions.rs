//! The session of a request (cookie or bearer token, renewed once expired: from the change
//! feed, or with one D1 read)
//! and the routes that only read it: `/auth/session`, `/auth/csrf`, `/auth/verify`.

use super::responses::{WireError, json_response, outage_json, with_cookie};
use super::{App, Request, Response};

use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::error::ErrorCode;
use crate::http::HttpClient;
use crate::session::feed::{self, Verdict};
use crate::session::memory::Renewal;
use crate::session::token::{self, Reject, Session, SessionClaims, UntrustedSession, Verified};
use crate::session::{cookies, cookies::Jar, csrf};
use crate::site::Site;
use crate::store::UserStore;
use crate::time::UnixTime;

/// What a request's credentials came to.
pub(super) enum Found {
    /// No credential of ours was sent (or a renewal could not be signed).
    Nothing,
    /// A cookie that is no session (any more): tampered with, revoked, past its end. The
    /// response clears it with this `Set-Cookie`.
    Ended {
        /// The `Set-Cookie` value that clears the session cookie.
        clear: String,
    },
    /// An `Authorization: Bearer` credential that is not (or no longer) a session.
    BadBearer,
    /// D1 could not say whether the session is still live: neither admitted nor ended.
    Unavailable,
    /// A session from the cookie, with the `Set-Cookie` of its new token when it was renewed.
    Cookie {
        /// The session.
        session: Session,
        /// The renewed cookie, if the token was renewed.
        renewed: Option<String>,
    },
    /// A session from `Authorization: Bearer` (never renewed).
    Bearer(Session),
}

impl Found {
    /// The session, if there is one.
    pub(super) fn session(&self) -> Option<&Session> {
        match self {
            Self::Cookie { session, .. } | Self::Bearer(session) => Some(session),
            _ => None,
        }
    }

    /// The `Set-Cookie` the response must carry: a renewed token, or a clearing of the cookie.
    pub(super) fn set_cookie(&self) -> Option<&str> {
        match self {
            Self::Cookie {
                renewed: Some(c), ..
            }
            | Self::Ended { clear: c } => Some(c),
            _ => None,
        }
    }
}

/// The credential of an `Authorization: Bearer` header (the scheme is case-insensitive, as
/// RFC 9110 says), or `None` for no header or another scheme (e.g. Basic, the site's own).
pub(super) fn bearer(req: &Request) -> Option<&str> {
    let (scheme, credential) = req.header(header::AUTHORIZATION)?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
}

impl<H: HttpClient, S: UserStore> App<'_, H, S> {
    /// The session of a request: a bearer token (never renewed), else the cookie (renewed
    /// once its token has expired: from the change feed, or with one D1 read).
    pub(super) async fn find_session(&self, req: &Request, site: &Site) -> Found {
        // Another scheme (e.g. Basic for the site itself) is not ours: fall back to the cookie.
        if let Some(token) = bearer(req) {
            return match token::verify(
                &self.config.keys,
                UntrustedSession(token),
                site.origin(),
                self.now,
            ) {
                Ok(Verified::Current(session)) => Found::Bearer(session),
                Ok(Verified::Expired(_)) | Err(_) => Found::BadBearer,
            };
        }
        let Some(raw) = req
            .header(header::COOKIE)
            .and_then(|h| cookies::read(h, Jar::Session, site))
        else {
            return Found::Nothing;
        };
        match token::verify(
            &self.config.keys,
            UntrustedSession(raw),
            site.origin(),
            self.now,
        ) {
            Ok(Verified::Current(session)) => Found::Cookie {
                session,
                renewed: None,
            },
            Ok(Verified::Expired(session)) => self.renew(req, site, &session).await,
            Err(reject) => {
                self.event(
                    "info",
                    "session_rejected",
                    req,
                    Some(&format!("{reject:?}")),
                );
                Found::Ended {
                    clear: cookies::clear(Jar::Session, site),
                }
            }
        }
    }

    /// Renews an expired token: from the token itself and the isolate's change feed when the
    /// feed names neither the session nor its user since the token was issued (no D1 read; the
    /// feed is pulled at most once per half interval per isolate), else with one D1 read of the
    /// session row: a live session of a user who is not disabled gets a fresh token with the
    /// current role. Other tabs' tokens stay valid, so parallel renewals never log anyone out.
    /// What was granted or refused is remembered in this isolate ([`SessionMemory`]): the same
    /// renewal is handed out again until its token expires, and an ended session is refused for
    /// one interval, without asking D1 again. Why the feed keeps revocation within the interval:
    /// `session::feed`.
    pub(super) async fn renew(&self, req: &Request, site: &Site, expired: &Session) -> Found {
        let old = expired.claims();
        let interval = self.config.session_check_interval;
        let ended = || Found::Ended {
            clear: cookies::clear(Jar::Session, site),
        };
        if self.sessions.borrow().is_ended(&old.sid, self.now) {
            self.event("info", "session_ended", req, Some("remembered"));
            return ended();
        }
        let remembered = self
            .sessions
            .borrow()
            .renewal(&old.sid, &old.sub, self.now)
            .map(|r| r.token.clone());
        if let Some(token) = remembered {
            return self.renewed_session(site, &token);
        }
        self.pull_feed(req).await;
        let verdict = self.sessions.borrow().feed.verdict(
            &old.sid,
            &old.sub,
            expired.issued(),
            self.now,
            interval,
        );
        let (claims, as_of) = if let Verdict::Renew { as_of } = verdict {
            // Nothing changed since the old token: its claims are still D1's, as of the pull.
            let claims = SessionClaims {
                iss: site.origin().to_owned(),
                aud: site.origin().to_owned(),
                role: self.role_of(&old.email, &old.role),
                ..old.clone()
            };
            (claims, as_of)
        } else {
            match self.renewal_from_row(req, site, old).await {
                Ok(renewal) => renewal,
                Err(found) => return found,
            }
        };
        let Some(token) = token::issue(&self.config.keys, claims, as_of, interval) else {
            self.event("error", "renewal_signing_failed", req, None);
            return Found::Nothing;
        };
        let found = self.renewed_session(site, &token);
        if let Some(session) = found.session() {
            let mut memory = self.sessions.borrow_mut();
            // `last_seen_at` at most once per LAST_SEEN_INTERVAL per session: queued, written
            // with the isolate's next feed pull (or at once by the runtime for a full batch).
            if feed::seen_due(
                &old.sid,
                expired.issued(),
                as_of,
                self.config.last_seen_interval,
            ) {
                memory.queue_seen(&old.sid);
            }
            memory.remember_renewal(
                &old.sid,
                Renewal {
                    sub: old.sub.clone(),
                    token,
                    until: session.token_expires(),
                },
                self.now,
            );
        }
        found
    }

    /// The claims of a renewal the feed cannot grant, from the session row, and the time they
    /// are true as of; or what to answer instead (ended, D1 down). The row is read from a
    /// replica no older than the feed's pull (its bookmark), and the token is then issued as of
    /// that pull; without a serving feed, from the primary, as of now. Either way the claims are
    /// true of D1 as of the token's `iat`.
    async fn renewal_from_row(
        &self,
        req: &Request,
        site: &Site,
        old: &SessionClaims,
    ) -> Result<(SessionClaims, UnixTime), Found> {
        let interval = self.config.session_check_interval;
        let anchor = self
            .sessions
            .borrow()
            .feed
            .anchor(self.now, interval)
            .map(|(at, bookmark)| (at, bookmark.to_owned()));
        let (read, as_of) = match &anchor {
            Some((at, bookmark)) => (self.store.session_after(&old.sid, bookmark).await, *at),
            None => (self.store.session(&old.sid).await, self.now),
        };
        let record = read.map_err(|e| {
            // The store is down: no session now, but the cookie is kept for a retry.
            self.event("error", "renewal_store_error", req, Some(&e.0));
            Found::Unavailable
        })?;
        let Some(record) = record.filter(|r| r.is_live(self.now) && r.user.id == old.sub) else {
            self.event("info", "session_ended", req, None);
            self.sessions
                .borrow_mut()
                .remember_end(&old.sid, self.now.plus(interval), self.now);
            return Err(Found::Ended {
                clear: cookies::clear(Jar::Session, site),
            });
        };
        let claims = SessionClaims {
            iss: site.origin().to_owned(),
            aud: site.origin().to_owned(),
            sub: record.user.id.clone(),
            sid: record.id.clone(),
            role: self.role_of(&record.user.email, &record.user.role),
            email: record.user.email.clone(),
            name: record.user.name.clone(),
            picture: record.user.image.clone(),
            sxp: record.expires_at,
        };
        Ok((claims, as_of))
    }

    /// Pulls the change feed if it is due (never pulled, or half an interval old). A failed
    /// pull is logged and leaves the feed as it was: renewals then read the session row. The
    /// isolate's queued `last_seen_at` writes go first, in one statement per hundred sessions:
    /// so they cost D1 at most one write per isolate per pull, not one per renewal.
    async fn pull_feed(&self, req: &Request) {
        let interval = self.config.session_check_interval;
        let Some(since) = self.sessions.borrow().feed.due(self.now, interval) else {
            return;
        };
        let seen = self.sessions.borrow_mut().take_seen();
        if !seen.is_empty() {
            let line = match self.store.seen(&seen, self.now).await {
                Ok(()) => {
                    json!({ "level": "info", "event": "last_seen_written", "sessions": seen.len() })
                }
                // Dropped: last seen is then one LAST_SEEN_INTERVAL late; nothing depends on it.
                Err(e) => {
                    json!({ "level": "error", "event": "last_seen_write_failed", "sessions": seen.len(), "reason": e.0 })
                }
            };
            self.log.line(&line.to_string());
        }
        match self.store.changes_since(since, feed::CAPACITY + 1).await {
            Ok(pulled) if pulled.changes.len() > feed::CAPACITY => {
                self.sessions.borrow_mut().feed.overflowed(self.now);
                self.event(
                    "warn",
                    "feed_overflow",
                    req,
                    Some("renewals read D1 until the next pull"),
                );
            }
            Ok(pulled) => {
                let n = pulled.changes.len();
                self.sessions.borrow_mut().feed.pulled(
                    pulled.changes,
                    pulled.bookmark,
                    self.now,
                    interval,
                );
                self.event("info", "feed_pulled", req, Some(&n.to_string()));
            }
            Err(e) => self.event("warn", "feed_read_failed", req, Some(&e.0)),
        }
    }

    /// The session of a token this deployment just issued, and the cookie that carries it.
    pub(super) fn renewed_session(&self, site: &Site, token: &str) -> Found {
        let Ok(Verified::Current(session)) = token::verify(
            &self.config.keys,
            UntrustedSession(token),
            site.origin(),
            self.now,
        ) else {
            return Found::Nothing;
        };
        let max_age = session.claims().sxp - self.now.secs();
        Found::Cookie {
            session,
            renewed: Some(cookies::set(Jar::Session, site, token, max_age)),
        }
    }

    /// Whether `token` is signed by this deployment's keys (valid or not for this request):
    /// such a token is a Gatehouse credential and never reaches the site.
    pub(super) fn is_ours(&self, token: &str, site: &Site) -> bool {
        !matches!(
            token::verify(
                &self.config.keys,
                UntrustedSession(token),
                site.origin(),
                self.now
            ),
            Err(Reject::Key(_))
        )
    }

    /// A session signed by us, even if its token has expired (then `false`): enough to show
    /// the sign-out page. Acting on an expired one needs D1's word first (see `logout`).
    pub(super) fn signed_session(&self, req: &Request, site: &Site) -> Option<(Session, bool)> {
        let raw = req
            .header(header::COOKIE)
            .and_then(|h| cookies::read(h, Jar::Session, site))?;
        match token::verify(
            &self.config.keys,
            UntrustedSession(raw),
            site.origin(),
            self.now,
        ) {
            Ok(Verified::Current(s)) => Some((s, true)),
            Ok(Verified::Expired(s)) => Some((s, false)),
            Err(_) => None,
        }
    }

    pub(super) async fn session_json(&self, req: &Request, site: &Site) -> Response {
        let found = self.find_session(req, site).await;
        if matches!(found, Found::Unavailable) {
            return outage_json(ErrorCode::Unavailable);
        }
        let body = match found.session() {
            Some(s) => {
                let c = s.claims();
                json!({
                    "user": { "id": c.sub, "email": c.email, "name": c.name, "image": c.picture, "role": c.role },
                    "expires": UnixTime(c.sxp).to_rfc3339(),
                })
            }
            None => serde_json::Value::Null,
        };
        let mut r = json_response(StatusCode::OK, &body);
        with_cookie(&mut r, found.set_cookie());
        r
    }

    pub(super) async fn csrf(&self, req: &Request, site: &Site) -> Response {
        let found = self.find_session(req, site).await;
        if matches!(found, Found::Unavailable) {
            return outage_json(ErrorCode::Unavailable);
        }
        let mut r = match found.session() {
            Some(s) => json_response(
                StatusCode::OK,
                &json!({ "csrfToken": csrf::token(&self.config.keys, &s.claims().sid) }),
            ),
            None => WireError::SessionRequired.response(),
        };
        with_cookie(&mut r, found.set_cookie());
        r
    }

    pub(super) async fn verify(&self, req: &Request, site: &Site) -> Response {
        let found = self.find_session(req, site).await;
        if matches!(found, Found::Unavailable) {
            return outage_json(ErrorCode::Unavailable);
        }
        let Some(s) = found.session() else {
            let mut r = WireError::SessionRequired.response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        };
        let mut r = json_response(StatusCode::OK, &json!({ "ok": true }));
        let c = s.claims();
        for (name, value) in [
            ("x-auth-user-id", &c.sub),
            ("x-auth-email", &c.email),
            ("x-auth-role", &c.role),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                r.headers_mut().insert(name, v);
            }
        }
        with_cookie(&mut r, found.set_cookie());
        r
    }
}
