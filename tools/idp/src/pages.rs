//! The HTML pages: the account chooser and the error page. Self-contained (inline CSS, no
//! scripts, no external assets); every reflected value goes through [`escape`].

use std::fmt::Write as _;

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

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{title}</title>\n\
         <style>{CSS}</style>\n</head>\n<body>\n<main>\n\
         <p class=\"dev\"><strong>Development identity provider — not Google.</strong> \
         Anyone can sign in here as anyone; it exists for local development and tests.</p>\n\
         <div class=\"card\">\n<p class=\"logo\">gatehouse-idp</p>\n{body}</div>\n</main>\n</body>\n</html>\n",
        title = escape(title),
    )
}

fn hidden(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(
        out,
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    );
}

/// The original request, carried through the chooser's forms so the approval can re-check it.
fn request_fields(req: &AuthRequest) -> String {
    let mut out = String::new();
    hidden(&mut out, "client_id", &req.client_id);
    hidden(&mut out, "redirect_uri", &req.redirect_uri);
    hidden(&mut out, "response_type", "code");
    hidden(&mut out, "scope", &req.scope);
    if let Some(state) = &req.state {
        hidden(&mut out, "state", state);
    }
    if let Some(nonce) = &req.nonce {
        hidden(&mut out, "nonce", nonce);
    }
    hidden(&mut out, "code_challenge", &req.code_challenge);
    hidden(&mut out, "code_challenge_method", "S256");
    out
}

/// The account chooser for a checked request. `client_name` is shown as "to continue to …";
/// `login_hint` prefills the email field; `error` is shown above the accounts.
pub fn chooser(
    req: &AuthRequest,
    client_name: &str,
    login_hint: Option<&str>,
    error: Option<&str>,
) -> String {
    let fields = request_fields(req);
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<h1>Choose an account</h1>\n<p class=\"sub\">to continue to <strong>{}</strong></p>",
        escape(client_name)
    );
    if let Some(error) = error {
        let _ = writeln!(
            body,
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(error)
        );
    }
    body.push_str("<ul aria-label=\"Accounts\">\n");
    for (email, name) in PRESETS {
        let initial = name.chars().next().unwrap_or('?');
        let _ = write!(
            body,
            "<li><form method=\"post\" action=\"{APPROVE_PATH}\">\n{fields}"
        );
        hidden(&mut body, "email", email);
        hidden(&mut body, "name", name);
        let _ = writeln!(
            body,
            "<button type=\"submit\" class=\"account\"><span class=\"avatar\" aria-hidden=\"true\">{}</span>\
             <span class=\"who\"><span class=\"name\">{}</span><span class=\"email\">{}</span></span></button>\n</form></li>",
            escape(&initial.to_string()),
            escape(name),
            escape(email)
        );
    }
    body.push_str("</ul>\n");

    let _ = write!(
        body,
        "<h2>Use another account</h2>\n<form method=\"post\" action=\"{APPROVE_PATH}\">\n{fields}\
         <label for=\"email\">Email</label>\n\
         <input id=\"email\" name=\"email\" type=\"email\" required autocomplete=\"off\" value=\"{hint}\">\n\
         <label for=\"name\">Name (optional)</label>\n\
         <input id=\"name\" name=\"name\" type=\"text\" autocomplete=\"off\">\n\
         <label for=\"email_verified\">Email status</label>\n\
         <select id=\"email_verified\" name=\"email_verified\">\
         <option value=\"true\" selected>verified</option>\
         <option value=\"false\">not verified</option></select>\n\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\">Continue</button></div>\n</form>\n",
        hint = escape(login_hint.unwrap_or_default()),
    );
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{APPROVE_PATH}\">\n{fields}"
    );
    hidden(&mut body, "deny", "1");
    body.push_str(
        "<div class=\"actions\"><button type=\"submit\" class=\"secondary\">Cancel</button></div>\n</form>\n",
    );
    page("Sign in – Development identity provider", &body)
}

/// A page for a request that cannot be sent back to the client.
pub fn error_page(error: &str, message: &str) -> String {
    let body = format!(
        "<h1>Access blocked: this request is invalid</h1>\n\
         <p class=\"error\" role=\"alert\">Error 400: {}</p>\n<p>{}</p>\n",
        escape(error),
        escape(message)
    );
    page("Error – Development identity provider", &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id_token::Scopes;

    #[test]
    fn escapes_everything_reflected() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;"
        );
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
        assert!(html.contains("value=\"&#39;&quot;&gt;&lt;img src=x&gt;\""));
        assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"));
        assert!(html.contains("<main>") && html.contains("<title>"));
        assert!(html.contains("not Google"));
        assert_eq!(html.matches("name=\"deny\"").count(), 1);
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
