//! Sign-in: the callback, ID-token and provider failures, policy, accounts and emails.

use super::*;

#[test]
fn sign_in_sets_a_session_cookie_and_returns_to_the_callback_url() {
    let w = world(&[]);
    let r = w.sign_in_with(google_claims("ada@example.com", "111"));
    assert_eq!((r.status, r.location.as_deref()), (302, Some("/docs/")));
    let session = r
        .cookies
        .iter()
        .find(|c| c.starts_with("__Host-gatehouse_session="))
        .unwrap();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=2592000",
    ] {
        assert!(
            session.split("; ").any(|a| a == attr),
            "{attr} in {session}"
        );
    }
    assert!(session.len() < 1024, "{}", session.len());
    assert_eq!(
        r.cookie("__Host-gatehouse_state").as_deref(),
        Some(""),
        "state cookie cleared"
    );
    let cookie = format!(
        "__Host-gatehouse_session={}",
        r.cookie("__Host-gatehouse_session").unwrap()
    );
    let s = w.session_json(&cookie);
    assert_eq!(s["user"]["email"], "ada@example.com");
    assert_eq!(s["user"]["role"], "user");
    assert_eq!(s["expires"], UnixTime(T0 + 2_592_000).to_rfc3339());
}

#[test]
fn authorization_request_asks_for_openid_with_pkce_s256_and_a_nonce() {
    let w = world(&[]);
    let (_, url) = w.start("/");
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(
        url.as_str().split('?').next(),
        Some("https://accounts.google.com/o/oauth2/v2/auth")
    );
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], "https://site.test/auth/callback/google");
    assert!(q["nonce"].len() >= 43 && q["state"].len() >= 43);
    assert_ne!(q["nonce"], q["state"]);
}

#[test]
fn same_person_signing_in_twice_is_one_user() {
    let w = world(&[]);
    let a = w.sign_in("ada@example.com", "111");
    let b = w.sign_in("ADA@example.com", "111");
    assert_eq!(w.store.user_count(), 1);
    assert_eq!(w.user_id(&a), w.user_id(&b));
}

#[test]
fn new_google_account_with_a_taken_email_is_not_linked() {
    let w = world(&[]);
    w.sign_in("ada@example.com", "111");
    let r = w.sign_in_with(google_claims("ada@example.com", "222"));
    assert_eq!(error_code(&r), "OAuthAccountNotLinked");
    assert!(r.cookie("__Host-gatehouse_session").is_none());
    assert_eq!(w.store.user_count(), 1);
}

#[test]
fn admin_emails_get_the_admin_role() {
    let w = world(&[]);
    let cookie = w.sign_in("boss@example.com", "900");
    assert_eq!(w.session_json(&cookie)["user"]["role"], "admin");
}

#[test]
fn id_token_failures_end_on_the_callback_error_without_a_session() {
    type Twister = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Twister)> = vec![
        ("wrong nonce", Box::new(|c| c["nonce"] = "other".into())),
        (
            "wrong issuer",
            Box::new(|c| c["iss"] = "https://evil.test".into()),
        ),
        ("wrong audience", Box::new(|c| c["aud"] = "client-2".into())),
        (
            "several audiences without azp",
            Box::new(|c| {
                c["aud"] = serde_json::json!(["client-1", "client-2"]);
                c.as_object_mut().unwrap().remove("azp");
            }),
        ),
        ("foreign azp", Box::new(|c| c["azp"] = "client-2".into())),
        ("expired", Box::new(|c| c["exp"] = (T0 - 61).into())),
        (
            "issued in the future",
            Box::new(|c| c["iat"] = (T0 + 61).into()),
        ),
        (
            "no email",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("email");
            }),
        ),
    ];
    for (name, twist) in cases {
        let w = world(&[]);
        let mut claims = google_claims("ada@example.com", "111");
        let (state_cookie, authorize) = w.start("/");
        let q = |n: &str| {
            authorize
                .query_pairs()
                .find(|(k, _)| k == n)
                .unwrap()
                .1
                .into_owned()
        };
        claims["nonce"] = q("nonce").into();
        twist(&mut claims);
        let (code, state) = w.approve(&authorize, claims);
        let r = w.callback(&state_cookie, &code, &state);
        assert_eq!(error_code(&r), "OAuthCallbackError", "{name}");
        assert!(r.cookie("__Host-gatehouse_session").is_none(), "{name}");
        assert_eq!(w.store.user_count(), 0, "{name}");
    }
}

#[test]
fn unverified_email_is_not_trusted() {
    let w = world(&[]);
    let mut claims = google_claims("ada@example.com", "111");
    claims["email_verified"] = false.into();
    let r = w.sign_in_with(claims);
    assert_eq!(error_code(&r), "AccessDenied");
    assert_eq!(w.store.user_count(), 0);
}

#[test]
fn allowlists_admit_listed_emails_and_domains_only() {
    let w = world(&[
        ("ALLOWED_EMAIL_DOMAINS", "example.com"),
        ("ALLOWED_EMAILS", "guest@other.test"),
    ]);
    assert_eq!(
        w.sign_in_with(google_claims("ada@example.com", "1")).status,
        302
    );
    assert_eq!(
        w.sign_in_with(google_claims("Guest@Other.test", "2"))
            .location
            .as_deref(),
        Some("/docs/")
    );
    for email in [
        "eve@evil.test",
        "eve@example.com.evil.test",
        "eve@sub.example.com",
    ] {
        let r = w.sign_in_with(google_claims(email, "3"));
        assert_eq!(error_code(&r), "AccessDenied", "{email}");
    }
    assert_eq!(w.store.user_count(), 2);
}

#[test]
fn provider_failures_end_cleanly_and_logs_hold_no_secrets() {
    for (name, twist) in [
        (
            "token endpoint 500",
            Twist {
                token_status: Some(500),
                ..Twist::default()
            },
        ),
        (
            "no id_token",
            Twist {
                no_id_token: true,
                ..Twist::default()
            },
        ),
        (
            "unreachable",
            Twist {
                unreachable: true,
                ..Twist::default()
            },
        ),
    ] {
        let w = world(&[]);
        *w.google.twist.borrow_mut() = twist;
        let (state_cookie, authorize) = w.start("/");
        let (code, state) = w.approve(&authorize, google_claims("ada@example.com", "1"));
        let r = w.callback(&state_cookie, &code, &state);
        assert_eq!(error_code(&r), "OAuthCallbackError", "{name}");
        assert_eq!(
            r.cookie("__Host-gatehouse_state").as_deref(),
            Some(""),
            "{name}: state cleared"
        );
        let logs = w.logs.0.borrow().join("\n");
        assert!(logs.contains("signin_failed"), "{name}: {logs}");
        for secret in [
            code.as_str(),
            CLIENT_SECRET,
            state.as_str(),
            state_cookie.as_str(),
        ] {
            assert!(!logs.contains(secret), "{name}: log leaks {secret}");
        }
    }
}

#[test]
fn state_must_match_and_be_present() {
    let w = world(&[]);
    let (state_cookie, authorize) = w.start("/");
    let (code, _) = w.approve(&authorize, google_claims("ada@example.com", "1"));
    assert_eq!(
        error_code(&w.callback(&state_cookie, &code, "forged")),
        "OAuthCallbackError"
    );
    let r = w.get(&format!("/auth/callback/google?code={code}&state=x"), &[]);
    assert_eq!(error_code(&r), "OAuthCallbackError");
    assert_eq!(
        w.google.jwks_fetches.get(),
        0,
        "no code redeemed before the state check"
    );
}

#[test]
fn provider_error_on_the_callback_is_a_callback_error() {
    let w = world(&[]);
    let (state_cookie, authorize) = w.start("/docs/");
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let cookie = format!("__Host-gatehouse_state={state_cookie}");
    let r = w.get(
        &format!("/auth/callback/google?error=access_denied&state={state}"),
        &[("cookie", &cookie)],
    );
    assert_eq!(error_code(&r), "OAuthCallbackError");
    assert!(r.cookie("__Host-gatehouse_session").is_none());
    // The person's destination survives, and the page says "cancelled" in words.
    let location = r.location.unwrap();
    assert!(
        location.contains("callbackUrl=%2Fdocs%2F") && location.ends_with("&cancelled=1"),
        "{location}"
    );
    let page = w.get(&location, &[]);
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Sign-in was cancelled"));
    assert!(
        page.body
            .contains("href=\"/auth/login?callbackUrl=%2Fdocs%2F\""),
        "{}",
        page.body
    );
}

#[test]
fn jwks_is_fetched_once_and_cached() {
    let w = world(&[]);
    w.sign_in("a@example.com", "1");
    w.sign_in("b@example.com", "2");
    assert_eq!(w.google.jwks_fetches.get(), 1);
}

#[test]
fn the_stored_email_follows_the_google_account() {
    let w = world(&[]);
    let old = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&old);
    // Google now says another address for the same account; it is listed in ADMIN_EMAILS.
    let new = w.sign_in("boss@example.com", "111");
    assert_eq!(w.store.user_count(), 1);
    let me = w.session_json(&new);
    assert_eq!(
        (me["user"]["id"].as_str(), me["user"]["email"].as_str()),
        (Some(id.as_str()), Some("boss@example.com"))
    );
    assert_eq!(me["user"]["role"], "admin");
    let identity = w.page("/docs/", &new).forward.unwrap().identity.unwrap();
    assert_eq!(
        (identity.email.as_str(), identity.role.as_str()),
        ("boss@example.com", "admin")
    );
    // The older session gets the current address at its next renewal.
    w.advance(300);
    let old = after_visit(&w, &old);
    assert_eq!(w.session_json(&old)["user"]["email"], "boss@example.com");
    assert!(
        !w.logs
            .0
            .borrow()
            .iter()
            .any(|l| l.contains("email_conflict")),
        "no conflict here"
    );
}

#[test]
fn a_new_email_of_another_user_is_not_taken_and_is_logged() {
    let w = world(&[]);
    w.sign_in("ada@example.com", "111");
    w.sign_in("boss@example.com", "900");
    let bob = w.sign_in("bob@example.com", "222");
    let bob_id = w.user_id(&bob);
    // Bob's Google account now says Ada's address (other letter case): signed in as before.
    let again = w.sign_in("ADA@example.com", "222");
    let me = w.session_json(&again);
    assert_eq!(me["user"]["id"], bob_id.as_str());
    assert_eq!(me["user"]["email"], "bob@example.com");
    let identity = w.page("/docs/", &again).forward.unwrap().identity.unwrap();
    assert_eq!(identity.email, "bob@example.com");
    // An address in ADMIN_EMAILS that belongs to another user makes no admin.
    let again = w.sign_in("boss@example.com", "222");
    let me = w.session_json(&again);
    assert_eq!(
        (me["user"]["email"].as_str(), me["user"]["role"].as_str()),
        (Some("bob@example.com"), Some("user"))
    );
    assert_eq!(w.store.user_count(), 3);
    let logs = w.logs.0.borrow();
    let conflicts: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("\"event\":\"email_conflict\""))
        .collect();
    assert_eq!(conflicts.len(), 2, "{logs:?}");
    for line in conflicts {
        let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(parsed["level"], "warn");
        assert!(
            parsed["reason"].as_str().unwrap().contains(&bob_id),
            "{line}"
        );
        assert!(
            !line.to_lowercase().contains("@example.com"),
            "no email: {line}"
        );
    }
}
