//! The authorization endpoint: automatic approval, the account chooser, and their error answers.

use std::time::Instant;

use url::Url;

use super::{Provider, Request, Response, server_error};
use crate::authorize::{self, AuthError};
use crate::id_token::{Identity, Issuance};
use crate::pages;
use crate::params::Params;
use crate::store::{AuthRequest, Grant};
use crate::twist;

impl Provider {
    /// GET `/o/oauth2/v2/auth`: approve at once (`test_email`), refuse (`test_deny`), or show the
    /// account chooser.
    pub(super) fn authorize(&self, req: &Request<'_>) -> Response {
        self.authorization_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let params = match Params::parse_allowing_repeats(req.query.as_bytes(), &["test_twist"]) {
            Ok(p) => p,
            Err(name) => return repeated_parameter(&name),
        };
        let auth = match authorize::validate(&params, &self.client_id) {
            Ok(auth) => auth,
            Err(err) => return auth_error(err, 302),
        };
        if params
            .get("test_deny")
            .is_some_and(|v| v == "1" || v == "true")
        {
            return deny(&auth, 302);
        }
        let twists = match twist::parse_twists(params.get_all("test_twist")) {
            Ok(twists) => twists,
            Err(message) => return error_page("invalid_request", &message),
        };
        let issuance = Issuance {
            twists,
            ..Issuance::default()
        };
        match authorize::identity_from(&params, "test_") {
            Ok(Some(identity)) => self.approve_as(auth, identity, issuance, 302),
            Ok(None) if !issuance.twists.is_empty() => error_page(
                "invalid_request",
                "test_twist only works with automatic approval: add test_email.",
            ),
            Ok(None) => chooser(&auth, params.non_empty("login_hint"), None, 200),
            Err(message) => error_page("invalid_request", &message),
        }
    }

    /// POST `/o/oauth2/v2/auth/approve` from the chooser: the request is checked again exactly
    /// as on GET, since the form fields are whatever the browser sent.
    pub(super) fn approve(&self, req: &Request<'_>) -> Response {
        let params = match Params::parse(req.body) {
            Ok(p) => p,
            Err(name) => return repeated_parameter(&name),
        };
        let auth = match authorize::validate(&params, &self.client_id) {
            Ok(auth) => auth,
            Err(err) => return auth_error(err, 303),
        };
        if params.has("deny") {
            return deny(&auth, 303);
        }
        match authorize::identity_from(&params, "") {
            Ok(Some(identity)) => self.approve_as(auth, identity, Issuance::default(), 303),
            Ok(None) => chooser(&auth, None, Some("Enter an email address."), 400),
            Err(message) => chooser(&auth, params.get("email"), Some(&message), 400),
        }
    }

    /// Issues a code for `identity` and sends it back like Google does.
    fn approve_as(
        &self,
        auth: AuthRequest,
        identity: Identity,
        issuance: Issuance,
        status: u16,
    ) -> Response {
        let redirect_uri = auth.redirect_uri.clone();
        let state = auth.state.clone();
        let granted = auth.scopes.granted();
        let grant = Grant {
            request: auth,
            identity,
            issuance,
        };
        let code = self.store().issue_code(grant, Instant::now());
        let mut pairs = Vec::new();
        if let Some(state) = state.as_deref() {
            pairs.push(("state", state));
        }
        pairs.extend([
            ("code", code.as_str()),
            ("scope", granted.as_str()),
            ("authuser", "0"),
            ("prompt", "consent"),
        ]);
        match authorize::redirect_with(&redirect_uri, &pairs) {
            Some(location) => Response::redirect(status, location),
            None => server_error(),
        }
    }
}

fn error_page(error: &str, message: &str) -> Response {
    Response::html(400, pages::error_page(error, message), None)
}

fn repeated_parameter(name: &str) -> Response {
    error_page(
        "invalid_request",
        &format!("Parameter included more than once: {name}"),
    )
}

fn auth_error(err: AuthError, status: u16) -> Response {
    match err {
        AuthError::Page { error, message } => error_page(error, &message),
        AuthError::Redirect {
            redirect_uri,
            state,
            error,
        } => match authorize::error_redirect(&redirect_uri, error, state.as_deref()) {
            Some(location) => Response::redirect(status, location),
            None => server_error(),
        },
    }
}

fn deny(auth: &AuthRequest, status: u16) -> Response {
    match authorize::error_redirect(&auth.redirect_uri, "access_denied", auth.state.as_deref()) {
        Some(location) => Response::redirect(status, location),
        None => server_error(),
    }
}

fn chooser(
    auth: &AuthRequest,
    login_hint: Option<&str>,
    error: Option<&str>,
    status: u16,
) -> Response {
    let target = Url::parse(&auth.redirect_uri).ok();
    let origin = target.as_ref().map(|u| u.origin().ascii_serialization());
    let client_name = target
        .as_ref()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| auth.client_id.clone());
    Response::html(
        status,
        pages::chooser(auth, &client_name, login_hint, error),
        origin.as_deref(),
    )
}
