//! The HTML pages: the account chooser and the error page, askama templates in `templates/`.
//! Self-contained (inline CSS, no scripts, no external assets); askama escapes every reflected
//! value.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

use crate::store::AuthRequest;

/// Where the chooser's forms post to.
pub const APPROVE_PATH: &str = "/o/oauth2/v2/auth/approve";

/// The ready-made accounts on the chooser: email, name.
pub const PRESETS: &[(&str, &str)] = &[
    ("ada@example.com", "Ada Lovelace"),
    ("grace@example.com", "Grace Hopper"),
    ("admin@example.com", "Site Admin"),
];

const CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;background:#f0f4f9;color:#1f1f1f;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif}\
main{max-width:28rem;margin:2rem auto;padding:0 1rem}\
.dev{margin:0 0 1rem;padding:.75rem 1rem;border:2px solid #8a5a00;border-radius:.5rem;background:#fff3cd;color:#3d2a00;font-size:.9rem}\
.card{background:#fff;border-radius:1.75rem;padding:2rem 1.5rem}\
.logo{margin:0 0 1rem;font-weight:700;font-size:1.1rem;color:#1f1f1f}\
h1{margin:0;font-size:1.75rem;font-weight:400}\
h2{margin:1.5rem 0 .5rem;font-size:1rem;font-weight:600}\
.sub{margin:.25rem 0 1.5rem;color:#444746}\
.error{padding:.5rem .75rem;border-radius:.5rem;background:#fce8e6;color:#8c1d18}\
ul{list-style:none;margin:0;padding:0;border-top:1px solid #c4c7c5}\
li{border-bottom:1px solid #c4c7c5}\
form{margin:0}\
.account{display:flex;align-items:center;gap:.75rem;width:100%;padding:.75rem .5rem;border:0;background:none;color:inherit;font:inherit;text-align:left;cursor:pointer}\
.account:hover,.account:focus-visible{background:#e9eef6}\
.avatar{flex:none;display:inline-flex;align-items:center;justify-content:center;width:2.25rem;height:2.25rem;border-radius:50%;background:#0b57d0;color:#fff;font-weight:600}\
.who{display:flex;flex-direction:column}\
.name{font-weight:600}\
.email{color:#444746;font-size:.9rem}\
label{display:block;margin:.75rem 0 .25rem;font-weight:600}\
input,select{width:100%;padding:.6rem .75rem;border:1px solid #747775;border-radius:.25rem;font:inherit;color:inherit;background:#fff}\
.actions{display:flex;justify-content:flex-end;gap:.5rem;margin-top:1.25rem}\
button.primary,button.secondary{padding:.6rem 1.5rem;border-radius:1.25rem;font:inherit;font-weight:600;cursor:pointer}\
button.primary{border:0;background:#0b57d0;color:#fff}\
button.secondary{border:1px solid #747775;background:#fff;color:#0b57d0}\
:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}";

/// `Content-Security-Policy` for a page: nothing but the inline stylesheet, and forms only to
/// this provider and `form_target` (the origin the approval redirects to: browsers check
/// `form-action` on the redirect after a form post too).
pub fn content_security_policy(form_target: Option<&str>) -> String {
    let style_hash = STANDARD.encode(Sha256::digest(CSS.as_bytes()));
    let form_action = match form_target {
        Some(origin) => format!("'self' {origin}"),
        None => "'none'".to_owned(),
    };
    format!(
        "default-src 'none'; style-src 'sha256-{style_hash}'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// `templates/chooser.html`.
#[derive(askama::Template)]
#[template(path = "chooser.html")]
struct Chooser<'a> {
    css: &'static str,
    approve_path: &'static str,
    req: &'a AuthRequest,
    client_name: &'a str,
    login_hint: &'a str,
    error: Option<&'a str>,
    /// Email, name, initial.
    accounts: Vec<(&'static str, &'static str, char)>,
}

/// `templates/error.html`.
#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    css: &'static str,
    error: &'a str,
    message: &'a str,
}

fn render(page: &impl askama::Template) -> String {
    page.render()
        .unwrap_or_else(|_| String::from("<!doctype html><title>Error</title>template error"))
}

/// The account chooser for a checked request. `client_name` is shown as "to continue to …";
/// `login_hint` prefills the email field; `error` is shown above the accounts.
pub fn chooser(
    req: &AuthRequest,
    client_name: &str,
    login_hint: Option<&str>,
    error: Option<&str>,
) -> String {
    render(&Chooser {
        css: CSS,
        approve_path: APPROVE_PATH,
        req,
        client_name,
        login_hint: login_hint.unwrap_or_default(),
        error,
        accounts: PRESETS
            .iter()
            .map(|&(email, name)| (email, name, name.chars().next().unwrap_or('?')))
            .collect(),
    })
}

/// A page for a request that cannot be sent back to the client.
pub fn error_page(error: &str, message: &str) -> String {
    render(&ErrorPage {
        css: CSS,
        error,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id_token::Scopes;

    #[test]
    fn escapes_everything_reflected() {
        let req = AuthRequest {
            client_id: "cid".into(),
            redirect_uri: "http://localhost/cb?a=\"><script>".into(),
            state: Some("'\"><img src=x>".into()),
            nonce: Some("<n>".into()),
            code_challenge: "c".repeat(43),
            scope: "openid".into(),
            scopes: Scopes::default(),
        };
        let html = chooser(&req, "<client>", Some("\"><b>"), Some("<err>"));
        for raw in ["<script>", "<img", "<n>", "<client>", "<b>", "<err>"] {
            assert!(!html.contains(raw), "unescaped {raw}");
        }
        // askama's escaping: numeric character references.
        assert!(html.contains("value=\"&#39;&#34;&#62;&#60;img src=x&#62;\""));
        assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"));
        assert!(html.contains("<main>") && html.contains("<title>"));
        assert!(html.contains("not Google"));
        assert_eq!(html.matches("name=\"deny\"").count(), 1);
        for (email, name) in PRESETS {
            assert!(html.contains(&format!("name=\"email\" value=\"{email}\"")));
            assert!(html.contains(&format!("name=\"name\" value=\"{name}\"")));
        }
        assert!(html.contains("name=\"state\" value=") && html.contains("name=\"nonce\" value="));
        assert_eq!(html.matches("<button").count(), PRESETS.len() + 2);
        assert!(!error_page("<e>", "<m>").contains("<e>"));
    }

    #[test]
    fn csp_allows_only_the_inline_stylesheet() {
        let csp = content_security_policy(Some("http://localhost:8787"));
        assert!(csp.contains("default-src 'none'"));
        assert!(csp.contains("form-action 'self' http://localhost:8787;"));
        assert!(!csp.contains("unsafe"));
    }
}
