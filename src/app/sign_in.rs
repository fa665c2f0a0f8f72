//! Sign-in: the sign-in page, the start (state cookie, redirect to the provider) and the
//! callback (code exchange, ID token, policy, user and session rows).

use super::responses::{
    add_cookie, append_query, encode_param, error_redirect, html_response, redirect,
};
use super::{App, Request, Response};

use http::{StatusCode, header};

use crate::error::{AuthError, ErrorCode};
use crate::http::HttpClient;
use crate::oidc::{self, CallbackQuery};
use crate::pages;
use crate::redirect::CallbackUrl;
use crate::session::token::{self, SessionClaims};
use crate::session::{cookies, cookies::Jar};
use crate::site::Site;
use crate::store::{SignIn, SignInOutcome, UserStore};

impl<H: HttpClient, S: UserStore> App<'_, H, S> {
    pub(super) fn login_page(&self, req: &Request, site: &Site) -> Response {
        // A site that signs in through the auth origin (`SITES`) shows no page of its own.
        if let Some(auth) = self.config.hand_off_to(site) {
            return self.start_hand_off(req, site, &auth);
        }
        let callback = CallbackUrl::parse(&req.query("callbackUrl").unwrap_or_default(), site);
        let start = format!(
            "/auth/login/google?{}",
            encode_param("callbackUrl", callback.as_str())
        );
        let error = req.query("error").map(|e| ErrorCode::parse(&e));
        html_response(
            StatusCode::OK,
            pages::login(&self.site_name(site), &start, error),
        )
    }

    pub(super) fn start(&self, req: &Request, site: &Site) -> Response {
        if let Some(auth) = self.config.hand_off_to(site) {
            return self.start_hand_off(req, site, &auth);
        }
        let callback = CallbackUrl::parse(&req.query("callbackUrl").unwrap_or_default(), site);
        match oidc::start(self.config, site, &callback, self.random, self.now) {
            Ok((url, state)) => {
                let mut r = redirect(StatusCode::FOUND, &url);
                add_cookie(
                    &mut r,
                    &cookies::set(Jar::State, site, &state, oidc::state::STATE_MAX_AGE),
                );
                r
            }
            Err(e) => {
                self.event("error", "signin_start_failed", req, Some(&e.reason()));
                error_redirect(ErrorCode::OAuthSignin, None)
            }
        }
    }

    pub(super) async fn callback(&self, req: &Request, site: &Site) -> Response {
        let query = CallbackQuery {
            code: req.query("code"),
            state: req.query("state"),
            error: req.query("error"),
        };
        let state_cookie = req
            .header(header::COOKIE)
            .and_then(|h| cookies::read(h, Jar::State, site));
        let result = self.finish_sign_in(req, site, &query, state_cookie).await;
        // The state cookie is single use: cleared by every callback, success or failure.
        let mut response = match result {
            Ok((token, callback, max_age)) => {
                self.event("info", "signin", req, None);
                let mut r = redirect(StatusCode::FOUND, callback.as_str());
                add_cookie(&mut r, &cookies::set(Jar::Session, site, &token, max_age));
                r
            }
            Err(e) => {
                let level = if matches!(e.code(), ErrorCode::Configuration | ErrorCode::Unavailable)
                {
                    "error"
                } else {
                    "warn"
                };
                self.event(level, "signin_failed", req, Some(&e.reason()));
                let callback =
                    oidc::state::peek_callback(&self.config.keys, state_cookie, site.origin())
                        .map(|c| CallbackUrl::parse(&c, site));
                let cancelled =
                    matches!(&e, AuthError::ProviderDenied(code) if code == "access_denied");
                let mut r = error_redirect(e.code(), callback.as_ref());
                if cancelled {
                    // The person pressed "Cancel" at Google: say so in words, not as a failure.
                    append_query(&mut r, "cancelled=1");
                }
                r
            }
        };
        add_cookie(&mut response, &cookies::clear(Jar::State, site));
        response
    }

    pub(super) async fn finish_sign_in(
        &self,
        req: &Request,
        site: &Site,
        query: &CallbackQuery,
        state_cookie: Option<&str>,
    ) -> Result<(String, CallbackUrl, i64), AuthError> {
        let provider = oidc::Provider {
            config: self.config,
            site,
            http: self.http,
            jwks: self.jwks,
            rs256: self.rs256,
            now: self.now,
        };
        let verified = provider.finish(query, state_cookie).await?;
        let claims = verified.claims;
        // An email is trusted (for allowlists, account creation, linking) only once verified.
        if claims.email_verified != Some(true) {
            return Err(AuthError::EmailNotVerified);
        }
        let email = claims.email.clone().unwrap_or_default();
        if !oidc::allowed(self.config, &email, claims.hd.as_deref()) {
            return Err(AuthError::NotAllowed);
        }
        let expires_at = self.now.plus(self.config.session_max_age);
        let sign_in = SignIn {
            provider: "google",
            subject: claims.sub.clone(),
            make_admin: self.is_admin_email(&email),
            email,
            name: claims.name.clone(),
            image: claims.picture.clone(),
            new_user_id: self.random.token(16),
            session_id: self.random.token(16),
            now: self.now,
            expires_at,
            user_agent: req
                .header(header::USER_AGENT)
                .map(|ua| ua.chars().take(256).collect()),
            site: site.origin().to_owned(),
        };
        let user = match self
            .store
            .sign_in(&sign_in)
            .await
            .map_err(AuthError::Store)?
        {
            SignInOutcome::SignedIn { user, email_kept } => {
                if email_kept {
                    // No email in the line: the user id is enough to look the account up.
                    let why = format!(
                        "user {}: the Google account's new email belongs to another user; the stored email is kept",
                        user.id
                    );
                    self.event("warn", "email_conflict", req, Some(&why));
                }
                user
            }
            SignInOutcome::NotLinked => return Err(AuthError::SubjectNotLinked),
            SignInOutcome::Disabled => return Err(AuthError::UserDisabled),
        };
        let session_claims = SessionClaims {
            iss: site.origin().to_owned(),
            aud: site.origin().to_owned(),
            role: self.role_of(&user.email, &user.role),
            sub: user.id,
            sid: sign_in.session_id,
            email: user.email,
            name: user.name,
            picture: user.image,
            sxp: expires_at.secs(),
        };
        let token = token::issue(
            &self.config.keys,
            session_claims,
            self.now,
            self.config.session_check_interval,
        )
        .ok_or(AuthError::Signing)?;
        let callback = CallbackUrl::parse(verified.state.callback_url(), site);
        Ok((token, callback, self.config.session_max_age))
    }

    pub(super) fn is_admin_email(&self, email: &str) -> bool {
        let email = email.to_lowercase();
        self.config.admin_emails.contains(&email)
    }

    /// `ADMIN_EMAILS` makes an admin at sign-in and at every renewal.
    pub(super) fn role_of(&self, email: &str, stored: &str) -> String {
        if self.is_admin_email(email) {
            "admin".into()
        } else {
            stored.to_owned()
        }
    }
}
