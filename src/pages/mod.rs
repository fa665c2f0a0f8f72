//! The auth pages: compile-time templates (askama, HTML auto-escaped) and their headers.

use std::sync::LazyLock;

use askama::Template;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::error::ErrorCode;

/// The pages' only stylesheet, inline: no external asset is ever loaded.
const STYLE: &str = include_str!("../../templates/style.css");

/// `Content-Security-Policy` of every auth page: nothing loads but the inline stylesheet
/// (allowed by its hash), forms post only to this site, no page may frame them.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )
});

#[derive(Template)]
#[template(path = "login.html")]
struct Login<'a> {
    style: &'a str,
    site_name: &'a str,
    start_url: &'a str,
    error: Option<(&'a str, &'a str)>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    style: &'a str,
    site_name: &'a str,
    title: &'a str,
    advice: &'a str,
    code: &'a str,
    login_url: &'a str,
    retry: bool,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct Logout<'a> {
    style: &'a str,
    site_name: &'a str,
    signed_in: bool,
    email: &'a str,
    csrf_token: &'a str,
    action: &'a str,
    action_all: &'a str,
}

#[derive(Template)]
#[template(path = "forbidden.html")]
struct Forbidden<'a> {
    style: &'a str,
    site_name: &'a str,
    required: &'a str,
    email: &'a str,
}

/// One row of the users table.
#[derive(Debug)]
pub struct UserRow {
    /// Link to the user's detail.
    pub link: String,
    /// Email.
    pub email: String,
    /// Name or empty.
    pub name: String,
    /// Role.
    pub role: String,
    /// Created (UTC).
    pub created: String,
    /// Last seen (UTC) or "never".
    pub last_seen: String,
    /// Live sessions.
    pub active_sessions: i64,
    /// Disabled.
    pub disabled: bool,
}

/// One session of the detail view.
#[derive(Debug)]
pub struct SessionRow {
    /// Session id.
    pub id: String,
    /// Started (UTC).
    pub created: String,
    /// Last seen (UTC).
    pub last_seen: String,
    /// `active`, `revoked` or `expired`.
    pub state: &'static str,
    /// Browser.
    pub user_agent: String,
    /// The site it is for (its origin), empty if not recorded.
    pub site: String,
}

/// The detail of one user.
#[derive(Debug)]
pub struct UserDetail {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Name.
    pub name: Option<String>,
    /// Role.
    pub role: String,
    /// Created (UTC).
    pub created: String,
    /// Disabled.
    pub disabled: bool,
    /// Sessions.
    pub sessions: Vec<SessionRow>,
}

/// One audit entry.
#[derive(Debug)]
pub struct AuditRow {
    /// When (UTC).
    pub when: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Target.
    pub target: String,
}

/// Everything the admin page shows.
#[derive(Debug)]
pub struct Admin<'a> {
    /// Site name.
    pub site_name: &'a str,
    /// The admin's email.
    pub actor_email: &'a str,
    /// The CSRF token of the admin's session.
    pub csrf_token: &'a str,
    /// `SESSION_CHECK_INTERVAL` in words.
    pub interval: String,
    /// What was just done.
    pub message: Option<&'a str>,
    /// Why the last action was refused.
    pub refusal: Option<&'a str>,
    /// The search box.
    pub search: &'a str,
    /// The users of this page.
    pub users: Vec<UserRow>,
    /// The next page.
    pub next_url: Option<String>,
    /// One user's detail instead of the list.
    pub detail: Option<UserDetail>,
    /// Roles that may be given.
    pub roles: &'a [String],
    /// Recent admin actions.
    pub audit: Vec<AuditRow>,
}

// The admin page is assembled from small templates: one large template with nested
// conditionals and loops made askama's generated code take minutes to compile.
#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage<'a> {
    style: &'a str,
    site_name: &'a str,
    actor_email: &'a str,
    interval: &'a str,
    message: Option<&'a str>,
    refusal: Option<&'a str>,
    /// Rendered (escaped) by its own template.
    section: &'a str,
    /// Rendered (escaped) by its own template.
    audit: &'a str,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct AdminUsers<'a> {
    search: &'a str,
    users: &'a [UserRow],
    next_url: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct AdminUser<'a> {
    d: &'a UserDetail,
    csrf_token: &'a str,
    roles: &'a [String],
    /// Rendered (escaped) by its own template.
    sessions: &'a str,
}

#[derive(Template)]
#[template(path = "admin_sessions.html")]
struct AdminSessions<'a> {
    sessions: &'a [SessionRow],
    csrf_token: &'a str,
    user_id: &'a str,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AdminAudit<'a> {
    audit: &'a [AuditRow],
}

/// Renders the admin page.
pub fn admin(page: &Admin<'_>) -> String {
    let section = match &page.detail {
        Some(d) => {
            let sessions = render(&AdminSessions {
                sessions: &d.sessions,
                csrf_token: page.csrf_token,
                user_id: &d.id,
            });
            render(&AdminUser {
                d,
                csrf_token: page.csrf_token,
                roles: page.roles,
                sessions: &sessions,
            })
        }
        None => render(&AdminUsers {
            search: page.search,
            users: &page.users,
            next_url: page.next_url.as_deref(),
        }),
    };
    let audit = render(&AdminAudit { audit: &page.audit });
    render(&AdminPage {
        style: STYLE,
        site_name: page.site_name,
        actor_email: page.actor_email,
        interval: &page.interval,
        message: page.message,
        refusal: page.refusal,
        section: &section,
        audit: &audit,
    })
}

fn render(t: &impl Template) -> String {
    // Templates are checked at compile time and write into a String: rendering cannot fail
    // short of running out of memory.
    t.render().unwrap_or_default()
}

/// The sign-in page. `start_url` is `/auth/login/google?callbackUrl=…`.
pub fn login(site_name: &str, start_url: &str, error: Option<ErrorCode>) -> String {
    let error = error.map(|e| (e.title(), e.advice()));
    render(&Login {
        style: STYLE,
        site_name,
        start_url,
        error,
    })
}

/// The error page of `code`; `cancelled` when the person cancelled at the provider. For an
/// outage ([`ErrorCode::is_outage`]) `login_url` is the page to try again.
pub fn error(site_name: &str, code: ErrorCode, login_url: &str, cancelled: bool) -> String {
    let (title, advice) = if cancelled {
        (
            "Sign-in was cancelled",
            "You cancelled signing in with Google. You can try again whenever you like.",
        )
    } else {
        (code.title(), code.advice())
    };
    render(&ErrorPage {
        style: STYLE,
        site_name,
        title,
        advice,
        code: code.as_str(),
        login_url,
        retry: code.is_outage(),
    })
}

/// The sign-out confirmation page (signed in: a POST form with the CSRF token).
pub fn logout(
    site_name: &str,
    signed_in: Option<(&str, &str)>,
    action: &str,
    action_all: &str,
) -> String {
    let (email, csrf_token) = signed_in.unwrap_or_default();
    render(&Logout {
        style: STYLE,
        site_name,
        signed_in: signed_in.is_some(),
        email,
        csrf_token,
        action,
        action_all,
    })
}

/// The 403 page for a path that needs a role.
pub fn forbidden(site_name: &str, required: &str, email: &str) -> String {
    render(&Forbidden {
        style: STYLE,
        site_name,
        required,
        email,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflected_values_are_escaped() {
        let evil = r#""><script>alert(1)</script>"#;
        for page in [
            login(evil, evil, Some(ErrorCode::AccessDenied)),
            error(evil, ErrorCode::Default, evil, false),
            logout(evil, Some((evil, evil)), evil, evil),
            forbidden(evil, evil, evil),
        ] {
            assert!(!page.contains("<script>"), "{page}");
            assert!(
                page.contains("&lt;script&gt;") || page.contains("&#60;script&#62;"),
                "{page}"
            );
        }
    }

    #[test]
    fn admin_page_escapes_every_stored_value() {
        let evil = r#""><script>alert(1)</script>"#;
        let row = || UserRow {
            link: evil.into(),
            email: evil.into(),
            name: evil.into(),
            role: evil.into(),
            created: evil.into(),
            last_seen: evil.into(),
            active_sessions: 1,
            disabled: false,
        };
        let audit = || {
            vec![AuditRow {
                when: evil.into(),
                actor: evil.into(),
                action: evil.into(),
                target: evil.into(),
            }]
        };
        let roles = vec![evil.to_owned()];
        let make_list = || Admin {
            site_name: evil,
            actor_email: evil,
            csrf_token: evil,
            interval: evil.into(),
            message: Some(evil),
            refusal: Some(evil),
            search: evil,
            users: vec![row()],
            next_url: Some(evil.into()),
            detail: None,
            roles: &roles,
            audit: audit(),
        };
        let detail = Admin {
            detail: Some(UserDetail {
                id: evil.into(),
                email: evil.into(),
                name: Some(evil.into()),
                role: evil.into(),
                created: evil.into(),
                disabled: true,
                sessions: vec![SessionRow {
                    id: evil.into(),
                    created: evil.into(),
                    last_seen: evil.into(),
                    state: "active",
                    user_agent: evil.into(),
                    site: evil.into(),
                }],
            }),
            audit: audit(),
            users: vec![],
            ..make_list()
        };
        for page in [admin(&make_list()), admin(&detail)] {
            assert!(!page.contains("<script>"), "{page}");
            assert!(
                page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"),
                "{page}"
            );
        }
        assert!(admin(&detail).contains("End session"));
    }

    #[test]
    fn csp_hash_matches_the_inline_style() {
        let page = login("Site", "/auth/login/google", None);
        assert!(page.contains(STYLE));
        assert!(CSP.contains("style-src 'sha256-"));
        assert!(CSP.contains("frame-ancestors 'none'"));
        assert!(!CSP.contains("http"), "no third-party origin: {}", *CSP);
    }

    #[test]
    fn sign_in_page_offers_google_and_shows_the_error_in_words() {
        let page = login(
            "Demo",
            "/auth/login/google?callbackUrl=%2Fdocs%2F",
            Some(ErrorCode::OAuthCallbackError),
        );
        assert!(page.contains("Continue with Google"));
        assert!(
            page.contains("href=\"/auth/login/google?callbackUrl=%2Fdocs%2F\""),
            "{page}"
        );
        assert!(page.contains(ErrorCode::OAuthCallbackError.title()));
    }
}
