//! One sign-in for several sites (`SITES`, docs/sites.md): a site without a session hands the
//! visitor off to the auth origin (`AUTH_URL`), which sends them back with a one-time code that
//! the site redeems for its own session. The decisions are in [`crate::handoff`].

use super::responses::{WireError, add_cookie, encode_param, error_redirect, redirect};
use super::{App, Request, Response};

use http::{HeaderValue, StatusCode, header};

use crate::error::ErrorCode;
use crate::handoff::{self, HandOffState, Refused};
use crate::http::HttpClient;
use crate::redirect::CallbackUrl;
use crate::session::token::{self, SessionClaims};
use crate::session::{cookies, cookies::Jar};
use crate::site::Site;
use crate::store::{HandOff, SiteSession, StoreError, UserStore};

/// Where a site redeems its code.
pub(super) const HANDOFF_CALLBACK_PATH: &str = "/auth/handoff/callback";

/// Why a redeem gave no session.
enum Failed {
    Refused(Refused),
    Store(StoreError),
    Signing,
}

impl From<Refused> for Failed {
    fn from(r: Refused) -> Self {
        Self::Refused(r)
    }
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A redirect that no cache keeps.
fn uncached_redirect(location: &str) -> Response {
    let mut r = redirect(StatusCode::FOUND, location);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl<H: HttpClient, S: UserStore> App<'_, H, S> {
    /// On a site that signs in through the auth origin: remembers where to come back to and a
    /// new state in the site's own cookie, and sends the visitor to the auth origin with that
    /// state. Nothing is shown: a visitor signed in there is back at once.
    pub(super) fn start_hand_off(&self, req: &Request, site: &Site, auth: &Site) -> Response {
        let callback = CallbackUrl::parse(&req.query("callbackUrl").unwrap_or_default(), site);
        let state = self.random.token(32);
        let Some(sealed) = handoff::seal(
            &self.config.keys,
            &HandOffState::new(state.clone(), &callback, site.origin()),
            self.now,
        ) else {
            self.event("error", "handoff_start_failed", req, Some("signing failed"));
            return error_redirect(ErrorCode::OAuthSignin, None);
        };
        let target = auth.url(&format!(
            "/auth/handoff?{}&{}",
            encode_param("site", site.origin()),
            encode_param("state", &state)
        ));
        let mut r = uncached_redirect(&target);
        add_cookie(
            &mut r,
            &cookies::set(Jar::HandOff, site, &sealed, handoff::STATE_MAX_AGE),
        );
        r
    }

    /// `GET /auth/handoff?site=…&state=…` on the auth origin: a visitor signed in here goes
    /// back to that site with a one-time code; one who is not signs in first (the sign-in page,
    /// then here again).
    pub(super) async fn hand_off(&self, req: &Request, site: &Site) -> Response {
        let target = req
            .query("site")
            .and_then(|origin| self.config.listed_site(&origin).cloned());
        let state = req.query("state").filter(|s| handoff::well_formed(s));
        let (Some(target), Some(state), None) = (target, state, self.config.hand_off_to(site))
        else {
            self.event(
                "warn",
                "handoff_refused",
                req,
                Some("not the auth origin, an unknown site, or a malformed state"),
            );
            return WireError::BadRequest {
                reason: "unknown site or malformed hand-off",
            }
            .response();
        };
        // The sign-in here must be live in D1 now, not only in a token that has yet to reach
        // its renewal: a code is a new session on another site.
        let live = match self.signed_session(req, site) {
            None => None,
            Some((session, _)) => match self.store.session(&session.claims().sid).await {
                Ok(Some(r)) if r.is_live(self.now) && r.user.id == session.claims().sub => Some(r),
                Ok(_) => None,
                Err(e) => return self.store_failed(req, site, "handoff_store_error", &e),
            },
        };
        let Some(record) = live else {
            let here = format!("{}?{}", req.url.path(), req.url.query().unwrap_or_default());
            return uncached_redirect(&format!(
                "/auth/login?{}",
                encode_param("callbackUrl", &here)
            ));
        };
        let code = self.random.token(32);
        let stored = HandOff {
            code_hash: handoff::hash(&code),
            user_id: record.user.id,
            session_id: record.id,
            site: target.origin().to_owned(),
            state_hash: handoff::hash(&state),
            expires_at: self.now.plus(handoff::CODE_TTL).secs(),
        };
        if let Err(e) = self.store.create_hand_off(&stored, self.now).await {
            return self.store_failed(req, site, "handoff_store_error", &e);
        }
        self.event("info", "handoff_issued", req, None);
        uncached_redirect(&target.url(&format!(
            "{HANDOFF_CALLBACK_PATH}?{}",
            encode_param("code", &code)
        )))
    }

    /// `GET /auth/handoff/callback?code=…` on a site: redeems the code (once), checks it was
    /// made for this site and this browser's state cookie, and starts the site's own session.
    pub(super) async fn redeem(&self, req: &Request, site: &Site) -> Response {
        let cookie = req
            .header(header::COOKIE)
            .and_then(|h| cookies::read(h, Jar::HandOff, site));
        let opened = handoff::open(&self.config.keys, cookie, site.origin(), self.now);
        let callback = opened.as_ref().map_or_else(
            |_| CallbackUrl::root(),
            |s| CallbackUrl::parse(&s.callback, site),
        );
        let mut response = match self.redeemed(req, site, opened).await {
            Ok((token, max_age)) => {
                self.event("info", "signin_handoff", req, None);
                let mut r = uncached_redirect(callback.as_str());
                add_cookie(&mut r, &cookies::set(Jar::Session, site, &token, max_age));
                r
            }
            Err(Failed::Refused(refused)) => {
                self.event("warn", "handoff_refused", req, Some(refused.reason()));
                error_redirect(ErrorCode::Verification, Some(&callback))
            }
            Err(Failed::Store(e)) => self.store_failed(req, site, "handoff_store_error", &e),
            Err(Failed::Signing) => {
                self.event("error", "handoff_failed", req, Some("signing failed"));
                self.error_page(site, ErrorCode::Configuration, None, false)
            }
        };
        // Single use on the site's side too: whatever happened, the state is spent.
        add_cookie(&mut response, &cookies::clear(Jar::HandOff, site));
        response
    }

    /// The session token (and cookie lifetime) a redeemed code gives.
    async fn redeemed(
        &self,
        req: &Request,
        site: &Site,
        opened: Result<HandOffState, Refused>,
    ) -> Result<(String, i64), Failed> {
        let state = opened?;
        let code = req
            .query("code")
            .filter(|c| handoff::well_formed(c))
            .ok_or(Refused::BadCode)?;
        let redeemed = self
            .store
            .redeem_hand_off(&handoff::hash(&code), self.now)
            .await?
            .ok_or(Refused::UnknownCode)?;
        handoff::check(&redeemed, site.origin(), &state.state, self.now)?;
        let session = SiteSession {
            id: self.random.token(16),
            parent_id: redeemed.session_id,
            site: site.origin().to_owned(),
            now: self.now,
            user_agent: req
                .header(header::USER_AGENT)
                .map(|ua| ua.chars().take(256).collect()),
        };
        if !self.store.hand_off_session(&session).await? {
            return Err(Refused::SignInEnded.into());
        }
        let record = self
            .store
            .session(&session.id)
            .await?
            .filter(|r| r.is_live(self.now))
            .ok_or(Refused::SignInEnded)?;
        let user = record.user;
        let claims = SessionClaims {
            iss: site.origin().to_owned(),
            aud: site.origin().to_owned(),
            role: self.role_of(&user.email, &user.role),
            sub: user.id,
            sid: session.id,
            email: user.email,
            name: user.name,
            picture: user.image,
            sxp: record.expires_at,
        };
        let token = token::issue(
            &self.config.keys,
            claims,
            self.now,
            self.config.session_check_interval,
        )
        .ok_or(Failed::Signing)?;
        Ok((token, record.expires_at - self.now.secs()))
    }
}
