//! The admin page: rights read from D1, actions, refusals, the audit log.

use super::*;

#[test]
fn admin_page_is_for_admins_only() {
    let w = world(&[]);
    let user = w.sign_in("ada@example.com", "111");
    let boss = w.sign_in("boss@example.com", "900");
    let r = w.get("/auth/admin", &[("accept", "text/html")]);
    assert_eq!(
        (r.status, r.location.as_deref()),
        (302, Some("/auth/login?callbackUrl=%2Fauth%2Fadmin"))
    );
    assert_eq!(w.page("/auth/admin", &user).status, 403);
    let r = w.page("/auth/admin", &boss);
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("ada@example.com") && r.body.contains("boss@example.com"),
        "{}",
        r.body
    );
    assert_eq!(r.headers["cache-control"], "no-store");
}

#[test]
fn admin_rights_come_from_d1_not_from_the_token() {
    let w = world(&[]);
    let ada = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&ada);
    // Promoted in D1: the token still says "user", but the admin page asks D1.
    w.store
        .update_user(&id, w.now(), |u| u.role = "admin".into());
    assert_eq!(w.page("/auth/admin", &ada).status, 200);
    // Demoted in D1: a fresh token that still says "admin" is not enough.
    let boss = w.sign_in("carol@example.com", "333");
    let carol = w.user_id(&boss);
    w.store
        .update_user(&carol, w.now(), |u| u.role = "admin".into());
    w.advance(300);
    let boss = format!(
        "__Host-gatehouse_session={}",
        w.page("/docs/", &boss)
            .cookie("__Host-gatehouse_session")
            .unwrap()
    );
    w.store
        .update_user(&carol, w.now(), |u| u.role = "user".into());
    assert_eq!(w.page("/auth/admin", &boss).status, 403);
}

#[test]
fn admin_actions_change_d1_write_the_audit_log_and_end_sessions_within_the_interval() {
    let w = world(&[("ROLE_PATHS", "/finance/*=finance")]);
    let boss = w.sign_in("boss@example.com", "900");
    let ada = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&ada);

    let r = admin_post(
        &w,
        &boss,
        &[
            ("action", "set-role"),
            ("user_id", &id),
            ("role", "finance"),
        ],
    );
    assert_eq!(
        (r.status, r.location.as_deref()),
        (
            303,
            Some(format!("/auth/admin?user={id}&done=set-role").as_str())
        )
    );
    w.advance(300);
    let ada = format!(
        "__Host-gatehouse_session={}",
        w.page("/finance/", &ada)
            .cookie("__Host-gatehouse_session")
            .unwrap()
    );
    assert_eq!(w.session_json(&ada)["user"]["role"], "finance");

    let r = admin_post(&w, &boss, &[("action", "disable"), ("user_id", &id)]);
    assert_eq!(r.status, 303);
    w.advance(300);
    assert_eq!(
        w.page("/docs/", &ada).status,
        302,
        "a disabled user is out after the interval"
    );
    assert_eq!(
        error_code(&w.sign_in_with(google_claims("ada@example.com", "111"))),
        "AccessDenied"
    );
    admin_post(&w, &boss, &[("action", "enable"), ("user_id", &id)]);
    let ada = w.sign_in("ada@example.com", "111");

    let page = w.page(&format!("/auth/admin?user={id}"), &boss);
    assert!(page.body.contains("End session"), "{}", page.body);
    let boss = after_visit(&w, &boss);
    let r = admin_post(&w, &boss, &[("action", "revoke-all"), ("user_id", &id)]);
    assert_eq!(r.status, 303);
    w.advance(300);
    assert_eq!(w.page("/docs/", &ada).status, 302);

    let page = w.page("/auth/admin", &boss);
    for action in ["set-role", "disable", "enable", "revoke-all"] {
        assert!(
            page.body.contains(&format!("<td>{action}</td>")),
            "audit shows {action}"
        );
    }
}

#[test]
fn admin_posts_need_csrf_same_origin_and_no_self_lockout() {
    let w = world(&[]);
    let boss = w.sign_in("boss@example.com", "900");
    let me = w.user_id(&boss);
    let ada = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&ada);
    let body = format!("action=disable&user_id={id}");
    let r = w.request(
        Method::POST,
        "/auth/admin",
        &[("cookie", &boss), ("origin", SITE)],
        &body,
    );
    assert_eq!(r.status, 403, "no CSRF token");
    let r = w.request(
        Method::POST,
        "/auth/admin",
        &[("cookie", &boss), ("origin", "https://evil.test")],
        &body,
    );
    assert_eq!(r.status, 403, "cross-site");
    let r = admin_post(&w, &ada, &[("action", "disable"), ("user_id", &me)]);
    assert_eq!(r.status, 403, "not an admin");
    let r = admin_post(&w, &boss, &[("action", "disable"), ("user_id", &me)]);
    assert_eq!(
        r.location.as_deref(),
        Some(format!("/auth/admin?user={me}&refused=self-lockout").as_str())
    );
    let r = admin_post(
        &w,
        &boss,
        &[("action", "set-role"), ("user_id", &me), ("role", "user")],
    );
    assert!(r.location.unwrap().ends_with("refused=self-lockout"));
    let r = admin_post(
        &w,
        &boss,
        &[("action", "set-role"), ("user_id", &id), ("role", "root")],
    );
    assert!(r.location.unwrap().ends_with("refused=role-not-allowed"));
    let r = admin_post(&w, &boss, &[("action", "disable"), ("user_id", "nobody")]);
    assert!(r.location.unwrap().ends_with("refused=unknown-user"));
    w.advance(300);
    assert!(w.page("/docs/", &ada).forward.is_some(), "nothing changed");
    assert_eq!(w.session_json(&boss)["user"]["role"], "admin");
}

#[test]
fn admin_list_searches_and_pages_by_email() {
    let w = world(&[]);
    let boss = w.sign_in("boss@example.com", "900");
    for i in 0..60 {
        w.sign_in(&format!("user{i:02}@example.com"), &format!("s{i}"));
    }
    let page = w.page("/auth/admin", &boss);
    assert_eq!(page.body.matches("<tr><td><a href").count(), 50);
    assert!(page.body.contains("Next page"));
    let next = page
        .body
        .split("href=\"/auth/admin?after=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let page2 = w.page(
        &format!(
            "/auth/admin?after={}",
            next.replace("&#64;", "@").replace("%40", "@")
        ),
        &boss,
    );
    assert_eq!(
        page2.body.matches("<tr><td><a href").count(),
        11,
        "61 users: 50 + 11"
    );
    let found = w.page("/auth/admin?q=USER1", &boss);
    assert_eq!(found.body.matches("<tr><td><a href").count(), 10);
}

#[test]
fn admin_actions_on_ids_that_match_nothing_are_refused_and_not_audited() {
    fn refs<'a>(f: &'a [(&'static str, String); 3]) -> [(&'static str, &'a str); 3] {
        f.each_ref().map(|(k, v)| (*k, v.as_str()))
    }
    let w = world(&[]);
    let boss = w.sign_in("boss@example.com", "900");
    let ada = w.sign_in("ada@example.com", "111");
    let bob = w.sign_in("bob@example.com", "222");
    let ada_id = w.user_id(&ada);
    let sid = |cookie: &str| {
        let token = cookie.split_once('=').unwrap().1;
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["sid"].as_str().unwrap().to_owned()
    };
    let (session_of_ada, session_of_bob) = (sid(&ada), sid(&bob));
    let before = w.store.audit_count();
    let refused = |fields: &[(&str, &str)], code: &str| {
        let r = admin_post(&w, &boss, fields);
        assert_eq!(r.status, 303);
        let location = r.location.unwrap();
        assert!(
            location.ends_with(&format!("refused={code}")),
            "{fields:?}: {location}"
        );
        let page = w.page(&location, &boss);
        assert!(page.body.contains("nothing was changed"), "{}", page.body);
    };
    let revoke = |session: &str| -> [(&str, String); 3] {
        [
            ("action", "revoke-session".into()),
            ("user_id", ada_id.clone()),
            ("session_id", session.into()),
        ]
    };
    // No such session; another user's session.
    refused(&refs(&revoke("no-such-session")), "unknown-session");
    refused(&refs(&revoke(&session_of_bob)), "unknown-session");
    assert!(
        !w.store.is_revoked(&session_of_bob),
        "bob's session is untouched"
    );
    // A real one is done once; then it has ended.
    let own = revoke(&session_of_ada);
    let r = admin_post(&w, &boss, &refs(&own));
    assert!(r.location.unwrap().ends_with("done=revoke-session"));
    refused(&refs(&own), "unknown-session");
    // Nothing live left to end.
    refused(
        &[("action", "revoke-all"), ("user_id", &ada_id)],
        "no-sessions",
    );
    assert_eq!(
        w.store.audit_count(),
        before + 1,
        "only the real revocation"
    );
    let audit = w.page("/auth/admin", &boss);
    assert_eq!(audit.body.matches("<td>revoke-session</td>").count(), 1);
    assert!(!audit.body.contains("<td>revoke-all</td>"));
    let warned = w.logs.0.borrow();
    assert!(
        warned
            .iter()
            .any(|l| l.contains("admin_refused") && l.contains("unknown-session")),
        "{warned:?}"
    );
}
