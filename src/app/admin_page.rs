//! The admin page: users, sessions, roles and the audit log, for role `admin` (read from D1).

use super::responses::{WireError, encode_param, html_response, redirect, with_cookie};
use super::sessions::Found;
use super::sign_out::same_origin;
use super::{App, Request, Response};

use http::StatusCode;

use crate::admin;
use crate::http::HttpClient;
use crate::pages;
use crate::session::token::Session;
use crate::session::{cookies, cookies::Jar, csrf};
use crate::site::Site;
use crate::store::{Applied, UserStore};

impl<H: HttpClient, S: UserStore> App<'_, H, S> {
    /// An admin's session. The token's role may be up to `SESSION_CHECK_INTERVAL` old, so
    /// admin rights are read from D1 (one read per admin request; admin pages are rare).
    pub(super) async fn admin_session(
        &self,
        req: &Request,
        site: &Site,
    ) -> Result<(Session, String, Option<String>), Response> {
        let found = self.find_session(req, site).await;
        let need_session = |set_cookie: Option<&str>| {
            let mut r = if req.is_navigation() {
                let target = match req.url.query() {
                    Some(q) => format!("/auth/admin?{q}"),
                    None => "/auth/admin".to_owned(),
                };
                redirect(
                    StatusCode::FOUND,
                    &format!("/auth/login?{}", encode_param("callbackUrl", &target)),
                )
            } else {
                WireError::SessionRequired.response()
            };
            with_cookie(&mut r, set_cookie);
            r
        };
        if matches!(found, Found::Unavailable) {
            return Err(self.unavailable(req, site));
        }
        let set_cookie = found.set_cookie().map(str::to_owned);
        let (Found::Cookie { session, .. } | Found::Bearer(session)) = found else {
            return Err(need_session(set_cookie.as_deref()));
        };
        let record = match self.store.session(&session.claims().sid).await {
            Ok(Some(r)) if r.is_live(self.now) && r.user.id == session.claims().sub => r,
            Ok(_) => {
                let clear = cookies::clear(Jar::Session, site);
                return Err(need_session(Some(&clear)));
            }
            Err(e) => {
                return Err(self.store_failed(req, site, "admin_store_error", &e));
            }
        };
        if self.role_of(&record.user.email, &record.user.role) != "admin" {
            self.event("warn", "admin_refused", req, Some("not an admin"));
            let mut r = if req.is_navigation() {
                html_response(
                    StatusCode::FORBIDDEN,
                    pages::forbidden(&self.site_name(site), "admin", &record.user.email),
                )
            } else {
                WireError::AccessDenied {
                    required_role: "admin",
                }
                .response()
            };
            with_cookie(&mut r, set_cookie.as_deref());
            return Err(r);
        }
        Ok((session, record.user.email, set_cookie))
    }

    pub(super) async fn admin_page(&self, req: &Request, site: &Site) -> Response {
        let (session, email, set_cookie) = match self.admin_session(req, site).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let mut r = match self.render_admin(req, site, &session, &email).await {
            Ok(html) => html_response(StatusCode::OK, html),
            Err(e) => self.store_failed(req, site, "admin_store_error", &e),
        };
        with_cookie(&mut r, set_cookie.as_deref());
        r
    }

    #[expect(
        clippy::too_many_lines,
        reason = "the page's three parts (list, detail, audit) read in one place"
    )]
    pub(super) async fn render_admin(
        &self,
        req: &Request,
        site: &Site,
        session: &Session,
        email: &str,
    ) -> Result<String, crate::store::StoreError> {
        let search = req.query("q").unwrap_or_default();
        let search = search.trim();
        let mut users = Vec::new();
        let mut next_url = None;
        let mut detail = None;
        let chosen = match req.query("user") {
            Some(id) => self.store.user(&id, self.now).await?,
            None => None,
        };
        if let Some(u) = chosen {
            let sessions = self.store.user_sessions(&u.user.id).await?;
            detail = Some(pages::UserDetail {
                id: u.user.id,
                email: u.user.email,
                name: u.user.name,
                role: u.user.role,
                created: admin::when(u.created_at),
                disabled: u.user.disabled_at.is_some(),
                sessions: sessions
                    .into_iter()
                    .map(|s| pages::SessionRow {
                        state: if s.revoked_at.is_some() {
                            "revoked"
                        } else if s.expires_at <= self.now.secs() {
                            "expired"
                        } else {
                            "active"
                        },
                        id: s.id,
                        created: admin::when(s.created_at),
                        last_seen: admin::when(s.last_seen_at),
                        user_agent: s.user_agent.unwrap_or_default(),
                        site: s.site.unwrap_or_default(),
                    })
                    .collect(),
            });
        }
        if detail.is_none() {
            let after = req.query("after");
            let mut page = self
                .store
                .list_users(
                    (!search.is_empty()).then_some(search),
                    after.as_deref(),
                    admin::PAGE_SIZE + 1,
                    self.now,
                )
                .await?;
            if page.len() > admin::PAGE_SIZE as usize {
                page.truncate(admin::PAGE_SIZE as usize);
                if let Some(last) = page.last() {
                    let mut q = url::form_urlencoded::Serializer::new(String::new());
                    if !search.is_empty() {
                        q.append_pair("q", search);
                    }
                    q.append_pair("after", &last.user.email);
                    next_url = Some(format!("/auth/admin?{}", q.finish()));
                }
            }
            users = page
                .into_iter()
                .map(|u| pages::UserRow {
                    link: format!("/auth/admin?{}", encode_param("user", &u.user.id)),
                    email: u.user.email,
                    name: u.user.name.unwrap_or_default(),
                    role: u.user.role,
                    created: admin::when(u.created_at),
                    last_seen: u
                        .last_seen_at
                        .map_or_else(|| "never".to_owned(), admin::when),
                    active_sessions: u.active_sessions,
                    disabled: u.user.disabled_at.is_some(),
                })
                .collect();
        }
        let audit = self
            .store
            .audit_log(20)
            .await?
            .into_iter()
            .map(|a| pages::AuditRow {
                when: admin::when(a.created_at),
                // No actor: Google's Cross-Account Protection (`risc:…`) or the command line.
                actor: a.actor.unwrap_or_else(|| {
                    if a.action.starts_with("risc:") {
                        "Google RISC".to_owned()
                    } else {
                        "command line".to_owned()
                    }
                }),
                action: a.action,
                target: a.target.unwrap_or_default(),
            })
            .collect();
        let roles = admin::allowed_roles(self.config);
        let csrf_token = csrf::token(&self.config.keys, &session.claims().sid);
        let done = req.query("done");
        let refused = req.query("refused");
        let site_name = self.site_name(site);
        Ok(pages::admin(&pages::Admin {
            site_name: &site_name,
            actor_email: email,
            csrf_token: &csrf_token,
            interval: admin::duration(self.config.session_check_interval),
            message: done.as_deref().and_then(admin::done_message),
            refusal: refused.as_deref().and_then(admin::Refusal::message),
            search,
            users,
            next_url,
            detail,
            roles: &roles,
            audit,
        }))
    }

    pub(super) async fn admin_post(&self, req: &Request, site: &Site) -> Response {
        if !same_origin(req, site) {
            self.event("warn", "admin_refused", req, Some("cross-origin"));
            return WireError::Forbidden {
                reason: "cross-origin request",
            }
            .response();
        }
        let (session, _, set_cookie) = match self.admin_session(req, site).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let presented = req.form("csrfToken");
        if !presented.is_some_and(|t| csrf::check(&self.config.keys, &session.claims().sid, &t)) {
            self.event(
                "warn",
                "admin_refused",
                req,
                Some("missing or wrong CSRF token"),
            );
            return WireError::Forbidden {
                reason: "missing or wrong CSRF token",
            }
            .response();
        }
        let roles = admin::allowed_roles(self.config);
        let actor = session.claims().sub.clone();
        let decided = admin::decide(|name| req.form(name), &actor, &roles);
        let target = req.form("user_id").unwrap_or_default();
        let back = |key: &str, value: &str| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            if !target.is_empty() {
                q.append_pair("user", &target);
            }
            q.append_pair(key, value);
            redirect(
                StatusCode::SEE_OTHER,
                &format!("/auth/admin?{}", q.finish()),
            )
        };
        let action = match decided {
            Ok(a) => a,
            Err(refusal) => {
                self.event("warn", "admin_refused", req, Some(refusal.code()));
                return back("refused", refusal.code());
            }
        };
        let mut r = match self.store.user(action.user_id(), self.now).await {
            Ok(None) => back("refused", admin::Refusal::UnknownUser.code()),
            Ok(Some(_)) => match self.store.apply(&actor, &action, self.now).await {
                Ok(Applied::Done) => {
                    self.event("info", "admin_action", req, Some(action.name()));
                    back("done", action.name())
                }
                // Nothing matched (say, a session that is not this user's): refused, not audited.
                Ok(Applied::NoMatch) => {
                    let refusal = admin::Refusal::no_match(&action);
                    self.event("warn", "admin_refused", req, Some(refusal.code()));
                    back("refused", refusal.code())
                }
                Err(e) => self.store_failed(req, site, "admin_store_error", &e),
            },
            Err(e) => self.store_failed(req, site, "admin_store_error", &e),
        };
        with_cookie(&mut r, set_cookie.as_deref());
        r
    }
}
