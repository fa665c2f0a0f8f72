//! Sign-out: the confirmation page and the POST that revokes one or every session.

use super::responses::{WireError, add_cookie, encode_param, html_response, redirect};
use super::{App, Request, Response};

use http::{StatusCode, header};

use crate::http::HttpClient;
use crate::pages;
use crate::redirect::CallbackUrl;
use crate::session::{cookies, cookies::Jar, csrf};
use crate::site::Site;
use crate::store::UserStore;

impl<H: HttpClient, S: UserStore> App<'_, H, S> {
    pub(super) fn logout_page(&self, req: &Request, site: &Site) -> Response {
        let session = self.signed_session(req, site).map(|(s, _)| s);
        let callback = CallbackUrl::parse(&req.query("callbackUrl").unwrap_or_default(), site);
        let action = format!(
            "/auth/logout?{}",
            encode_param("callbackUrl", callback.as_str())
        );
        let action_all = format!("{action}&all=1");
        let token = session
            .as_ref()
            .map(|s| csrf::token(&self.config.keys, &s.claims().sid));
        let signed_in = session
            .as_ref()
            .zip(token.as_deref())
            .map(|(s, t)| (s.claims().email.as_str(), t));
        html_response(
            StatusCode::OK,
            pages::logout(&self.site_name(site), signed_in, &action, &action_all),
        )
    }

    pub(super) async fn logout(&self, req: &Request, site: &Site) -> Response {
        let same_origin = same_origin(req, site);
        if !same_origin {
            self.event("warn", "logout_refused", req, Some("cross-origin"));
            return WireError::Forbidden {
                reason: "cross-origin request",
            }
            .response();
        }
        let callback = CallbackUrl::parse(
            &req.query("callbackUrl")
                .or_else(|| req.form("callbackUrl"))
                .unwrap_or_default(),
            site,
        );
        let signed_out = || {
            // Nothing to revoke; make sure no stale cookie stays behind.
            let mut r = redirect(StatusCode::SEE_OTHER, callback.as_str());
            add_cookie(&mut r, &cookies::clear(Jar::Session, site));
            r
        };
        let Some((session, current)) = self.signed_session(req, site) else {
            return signed_out();
        };
        let presented = req.form("csrfToken").or_else(|| {
            req.header(header::HeaderName::from_static("x-csrf-token"))
                .map(str::to_owned)
        });
        if !presented.is_some_and(|t| csrf::check(&self.config.keys, &session.claims().sid, &t)) {
            self.event(
                "warn",
                "logout_refused",
                req,
                Some("missing or wrong CSRF token"),
            );
            return WireError::Forbidden {
                reason: "missing or wrong CSRF token",
            }
            .response();
        }
        let all = req
            .query("all")
            .or_else(|| req.form("all"))
            .is_some_and(|v| v == "1" || v == "true");
        // Security decision: an expired token proves only that the session existed. A copy of a
        // revoked session's cookie must not sign the user out of their newer sessions, so an
        // action taken with an expired token first asks D1 whether the session is still live.
        if !current {
            match self.store.session(&session.claims().sid).await {
                Ok(Some(r)) if r.is_live(self.now) && r.user.id == session.claims().sub => {}
                Ok(_) => {
                    self.event("info", "logout_of_ended_session", req, None);
                    return signed_out();
                }
                Err(e) => return self.store_failed(req, site, "logout_store_error", &e),
            }
        }
        let revoked = if all {
            self.store
                .revoke_user_sessions(&session.claims().sub, self.now)
                .await
        } else {
            self.store
                .revoke_session(&session.claims().sid, self.now)
                .await
        };
        if let Err(e) = revoked {
            return self.store_failed(req, site, "logout_store_error", &e);
        }
        // This isolate stops handing out a remembered renewal of the session at once.
        self.sessions.borrow_mut().remember_end(
            &session.claims().sid,
            self.now.plus(self.config.session_check_interval),
            self.now,
        );
        self.event("info", if all { "logout_all" } else { "logout" }, req, None);
        let mut r = redirect(StatusCode::SEE_OTHER, callback.as_str());
        add_cookie(&mut r, &cookies::clear(Jar::Session, site));
        r
    }
}

/// Whether a POST comes from a page of this site: the browser's `Origin` must be this site.
/// Browsers send `Origin: null` when the page's Referrer-Policy is `no-referrer` (ours is); then,
/// as when there is no `Origin`, `Sec-Fetch-Site: same-origin` (which no page can forge) must
/// say so. Together with the CSRF token this stops cross-site form posts.
pub(super) fn same_origin(req: &Request, site: &Site) -> bool {
    let fetch_site = req.header(header::HeaderName::from_static("sec-fetch-site"));
    match req.header(header::ORIGIN) {
        Some("null") | None => fetch_site == Some("same-origin"),
        Some(origin) => origin == site.origin(),
    }
}
