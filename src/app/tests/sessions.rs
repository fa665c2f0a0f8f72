//! Sessions: renewal, revocation, sign-out, bearer tokens, the isolate's memory, D1 outages.

use super::*;

/// A fresh token is admitted from the token alone, by the hot path (`quick_decision`, what
/// js/entry.mjs calls) and by the full route alike: neither reads the store.
#[test]
fn a_fresh_token_is_admitted_without_reading_the_store() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    for _ in 0..50 {
        w.advance(5);
        let quick = quick_decision(
            &w.config,
            &format!("{SITE}/docs/"),
            Some(&cookie),
            UnixTime(w.now.get()),
        );
        assert!(matches!(quick, Quick::Admitted { .. }), "{quick:?}");
        let r = w.page("/docs/", &cookie);
        assert!(
            r.forward.as_ref().is_some_and(|f| f.identity.is_some()),
            "admitted"
        );
        assert!(r.cookies.is_empty(), "no renewal while the token is fresh");
    }
    assert_eq!(w.store.reads.get(), 0);
}

#[test]
fn expired_token_is_renewed_with_one_read_and_the_current_role() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&cookie);
    w.store
        .update_user(&id, w.now(), |u| u.role = "editor".into());
    w.advance(300);
    let r = w.page("/docs/", &cookie);
    let f = r.forward.expect("admitted after renewal");
    assert_eq!(f.identity.unwrap().role, "editor");
    assert_eq!(w.store.reads.get(), 1);
    assert_eq!(f.set_cookies.len(), 1);
    assert!(
        f.set_cookies[0].contains(&format!("Max-Age={}", 2_592_000 - 300)),
        "{:?}",
        f.set_cookies
    );
}

/// Two tabs send the same expired token at once: both renewals are in flight together (each
/// store call yields, and the two requests are polled in turn), and both stay signed in.
#[test]
fn parallel_tabs_renewing_the_same_token_both_stay_signed_in() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    w.advance(301);
    let (a, b) = w.pages_together("/docs/", &cookie);
    assert!(a.forward.is_some() && b.forward.is_some());
    // Both pulled the change feed before either had it: the two requests interleaved. Neither
    // read the session row (the feed does not name it).
    assert_eq!((w.store.feed_reads(), w.store.reads.get()), (2, 0));
    let renewed = format!(
        "__Host-gatehouse_session={}",
        a.cookie("__Host-gatehouse_session").unwrap()
    );
    assert!(w.page("/docs/", &renewed).forward.is_some());
}

#[test]
fn revoked_session_ends_at_the_next_renewal() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let other = w.sign_in("ada@example.com", "111");
    let csrf: serde_json::Value =
        serde_json::from_str(&w.get("/auth/csrf", &[("cookie", &cookie)]).body).unwrap();
    let body = format!("csrfToken={}", csrf["csrfToken"].as_str().unwrap());
    let r = w.request(
        Method::POST,
        "/auth/logout",
        &[("cookie", &cookie), ("origin", SITE)],
        &body,
    );
    assert_eq!((r.status, r.location.as_deref()), (303, Some("/")));
    assert!(
        r.cookies
            .iter()
            .any(|c| c.starts_with("__Host-gatehouse_session=;") && c.contains("Max-Age=0"))
    );
    // Within the interval a copy of the token still works (the documented bound)...
    assert!(w.page("/docs/", &cookie).forward.is_some());
    w.advance(300);
    // ...after it, renewal refuses it; the other session is untouched.
    let r = w.page("/docs/", &cookie);
    assert_eq!(r.status, 302);
    assert!(
        r.cookies.iter().any(|c| c.contains("Max-Age=0")),
        "cookie cleared"
    );
    assert!(w.page("/docs/", &other).forward.is_some());
}

#[test]
fn a_form_posted_from_our_no_referrer_page_signs_out() {
    // Chromium sends `Origin: null` from a page with `Referrer-Policy: no-referrer`.
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let csrf: serde_json::Value =
        serde_json::from_str(&w.get("/auth/csrf", &[("cookie", &cookie)]).body).unwrap();
    let body = format!("csrfToken={}", csrf["csrfToken"].as_str().unwrap());
    let headers = [
        ("cookie", cookie.as_str()),
        ("origin", "null"),
        ("sec-fetch-site", "same-origin"),
    ];
    let r = w.request(Method::POST, "/auth/logout", &headers, &body);
    assert_eq!(r.status, 303);
}

#[test]
fn sign_out_everywhere_ends_every_session_of_the_user() {
    let w = world(&[]);
    let a = w.sign_in("ada@example.com", "111");
    let b = w.sign_in("ada@example.com", "111");
    let csrf: serde_json::Value =
        serde_json::from_str(&w.get("/auth/csrf", &[("cookie", &a)]).body).unwrap();
    let body = format!("csrfToken={}", csrf["csrfToken"].as_str().unwrap());
    let r = w.request(
        Method::POST,
        "/auth/logout?all=1",
        &[("cookie", &a), ("origin", SITE)],
        &body,
    );
    assert_eq!(r.status, 303);
    w.advance(300);
    assert_eq!(w.page("/docs/", &b).status, 302);
}

#[test]
fn disabled_user_is_out_within_the_interval() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&cookie);
    w.store
        .update_user(&id, w.now(), |u| u.disabled_at = Some(T0));
    w.advance(300);
    assert_eq!(w.page("/docs/", &cookie).status, 302);
    let r = w.sign_in_with(google_claims("ada@example.com", "111"));
    assert_eq!(error_code(&r), "AccessDenied");
}

#[test]
fn sign_out_without_csrf_token_or_from_another_site_changes_nothing() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let csrf: serde_json::Value =
        serde_json::from_str(&w.get("/auth/csrf", &[("cookie", &cookie)]).body).unwrap();
    let good = format!("csrfToken={}", csrf["csrfToken"].as_str().unwrap());
    for (headers, body) in [
        (
            vec![("cookie", cookie.as_str()), ("origin", SITE)],
            String::new(),
        ),
        (
            vec![("cookie", cookie.as_str()), ("origin", SITE)],
            "csrfToken=forged".to_owned(),
        ),
        (
            vec![("cookie", cookie.as_str()), ("origin", "https://evil.test")],
            good.clone(),
        ),
        (
            vec![
                ("cookie", cookie.as_str()),
                ("sec-fetch-site", "cross-site"),
            ],
            good.clone(),
        ),
        (vec![("cookie", cookie.as_str())], good.clone()),
        (
            vec![("cookie", cookie.as_str()), ("origin", "null")],
            good.clone(),
        ),
        (
            vec![
                ("cookie", cookie.as_str()),
                ("origin", "null"),
                ("sec-fetch-site", "cross-site"),
            ],
            good.clone(),
        ),
    ] {
        let r = w.request(Method::POST, "/auth/logout", &headers, &body);
        assert_eq!(r.status, 403, "{headers:?} {body}");
        assert!(r.cookies.is_empty());
    }
    let r = w.get("/auth/logout", &[("cookie", &cookie)]);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("name=\"csrfToken\""), "{}", r.body);
    w.advance(300);
    assert!(
        w.page("/docs/", &cookie).forward.is_some(),
        "still signed in"
    );
}

#[test]
fn tampered_and_foreign_cookies_are_refused_and_cleared() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let mut tampered = cookie.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_site = world(&[("AUTH_URL", "https://other.test")]).sign_in("ada@example.com", "111");
    for c in [
        tampered.as_str(),
        other_site.as_str(),
        "__Host-gatehouse_session=%%%",
        "__Host-gatehouse_session=a.b.c",
    ] {
        let r = w.page("/docs/", c);
        assert_eq!(r.status, 302, "{c}");
        assert!(r.cookies.iter().any(|k| k.contains("Max-Age=0")), "{c}");
        assert_eq!(w.session_json(c), serde_json::Value::Null);
    }
}

#[test]
fn bearer_tokens_work_for_apis_but_are_never_renewed() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let token = cookie.split_once('=').unwrap().1.to_owned();
    let bearer = format!("Bearer {token}");
    let f = w
        .get("/api/x", &[("authorization", &bearer)])
        .forward
        .unwrap();
    assert!(
        f.strip_authorization,
        "the site never sees the session token"
    );
    // Another scheme is the site's own business: the cookie still decides.
    let r = w.get(
        "/api/x",
        &[("authorization", "Basic dTpw"), ("cookie", &cookie)],
    );
    assert!(r.forward.is_some_and(|f| !f.strip_authorization));
    w.advance(300);
    let r = w.get("/api/x", &[("authorization", &bearer)]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_eq!(w.store.reads.get(), 0);
}

#[test]
fn store_failures_never_give_a_session() {
    let w = world(&[]);
    w.store.broken.set(true);
    let r = w.sign_in_with(google_claims("ada@example.com", "1"));
    // An outage is not the operator's configuration: "try again in a moment".
    assert_eq!(error_code(&r), "Unavailable");
    assert!(r.cookie("__Host-gatehouse_session").is_none());
    w.store.broken.set(false);
    let cookie = w.sign_in("ada@example.com", "1");
    w.store.broken.set(true);
    w.advance(300);
    let r = w.page("/docs/", &cookie);
    assert!(r.forward.is_none(), "no session while D1 is down");
    assert_eq!(r.status, 503, "not the sign-in page: {}", r.body);
    assert_eq!(r.headers["retry-after"], "5");
    assert!(
        r.body.contains("Try again") && r.body.contains("href=\"/docs/\""),
        "{}",
        r.body
    );
    assert!(!r.body.contains("not set up correctly"), "{}", r.body);
    assert!(r.cookies.is_empty(), "but the cookie is kept for later");
    let api = w.get(
        "/docs/",
        &[("cookie", &cookie), ("accept", "application/json")],
    );
    assert_eq!(
        (api.status, api.body.as_str()),
        (503, r#"{"error":"Unavailable"}"#)
    );
    let session = w.get("/auth/session", &[("cookie", &cookie)]);
    assert_eq!(
        session.status, 503,
        "not `null`, which would mean signed out"
    );
    assert_eq!(w.get("/auth/csrf", &[("cookie", &cookie)]).status, 503);
    assert_eq!(w.get("/auth/verify", &[("cookie", &cookie)]).status, 503);
    let admin = w.get(
        "/auth/admin",
        &[("cookie", &cookie), ("accept", "text/html")],
    );
    assert_eq!(admin.status, 503);
    w.store.broken.set(false);
    assert!(
        w.page("/docs/", &cookie).forward.is_some(),
        "back once D1 is"
    );
}

/// Issue 13, item 8: a copy of a revoked session's cookie, past its token's `exp`, cannot
/// sign the user out of their newer sessions.
#[test]
fn an_expired_copy_of_a_revoked_session_cannot_sign_out_everywhere() {
    let w = world(&[]);
    let stolen = w.sign_in("ada@example.com", "111");
    // The owner signs that session out (say, after losing the laptop) and signs in again.
    assert_eq!(w.sign_out_from_page(&stolen, "").status, 303);
    let fresh = w.sign_in("ada@example.com", "111");
    w.advance(301);
    // The thief's copy still gets the sign-out page with a CSRF token, but acting on it asks
    // D1 first: nothing is revoked, and the copy's cookie is cleared.
    let r = w.sign_out_from_page(&stolen, "?all=1");
    assert_eq!(r.status, 303);
    assert!(r.cookies.iter().any(|c| c.contains("Max-Age=0")));
    assert!(
        w.page("/docs/", &fresh).forward.is_some(),
        "the owner's new session lives on"
    );
    // A live session whose token expired may still sign out everywhere.
    let w = world(&[]);
    let a = w.sign_in("bo@example.com", "222");
    let b = w.sign_in("bo@example.com", "222");
    w.advance(301);
    assert_eq!(w.sign_out_from_page(&a, "?all=1").status, 303);
    assert_eq!(w.page("/docs/", &b).status, 302, "every session ended");
}

/// Issue 13, item 9: replaying one expired token (a client that never keeps the renewed
/// cookie, or a copy of a revoked session) costs D1 at most one read, not one per request.
#[test]
fn replaying_an_expired_token_reads_d1_once() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    w.advance(301);
    let first = w.page("/docs/", &cookie);
    let token = first.cookie("__Host-gatehouse_session").expect("renewed");
    for _ in 0..20 {
        let again = w.page("/docs/", &cookie);
        assert!(again.forward.is_some());
        assert_eq!(
            again.cookie("__Host-gatehouse_session"),
            Some(token.clone()),
            "the same renewal"
        );
    }
    assert_eq!(
        (w.store.feed_reads(), w.store.reads.get()),
        (1, 0),
        "one feed read for 21 requests, no session read"
    );
    // The renewal is handed out only while its token is current: then the feed is asked again
    // (it is half an interval old); the replayed token, two intervals old now, is past the
    // feed's window, so its row is read.
    w.advance(300);
    assert!(w.page("/docs/", &cookie).forward.is_some());
    assert_eq!((w.store.feed_reads(), w.store.reads.get()), (2, 1));

    // A disabled user: the feed names them, one read refuses, memory refuses the rest.
    let id = w.user_id(&cookie);
    w.store
        .update_user(&id, w.now(), |u| u.disabled_at = Some(T0));
    w.advance(301);
    for _ in 0..20 {
        assert_eq!(w.page("/docs/", &cookie).status, 302);
    }
    assert_eq!(
        (w.store.feed_reads(), w.store.reads.get()),
        (3, 2),
        "one read refuses, memory refuses the rest"
    );
    // Re-enabled: back within the interval, not never.
    w.store.update_user(&id, w.now(), |u| u.disabled_at = None);
    w.advance(300);
    assert!(w.page("/docs/", &cookie).forward.is_some());
    assert_eq!(w.store.reads.get(), 3);
}

/// Issue 16: in a warm isolate, renewals read no session row; the feed is read at most once per
/// half interval, whatever the number of sessions.
#[test]
fn a_warm_isolate_renews_many_sessions_from_the_feed_alone() {
    let w = world(&[]);
    let mut cookies: Vec<String> = (0..40)
        .map(|i| w.sign_in(&format!("p{i}@example.com"), &format!("sub-{i}")))
        .collect();
    for _ in 0..12 {
        w.advance(151);
        for c in &mut cookies {
            let r = w.page("/docs/", c);
            assert!(r.forward.is_some(), "admitted");
            if let Some(t) = r.cookie("__Host-gatehouse_session") {
                *c = format!("__Host-gatehouse_session={t}");
            }
        }
    }
    assert_eq!(w.store.reads.get(), 0, "no session read");
    assert!(
        w.store.feed_reads() <= 12,
        "{} feed reads",
        w.store.feed_reads()
    );
}

/// Issue 16: what the feed names reaches a session renewed from the feed within one interval:
/// a revoked session, a disabled user, a role change, each made after several feed renewals.
#[test]
fn changes_reach_sessions_renewed_from_the_feed_within_the_interval() {
    let w = world(&[]);
    let keep = |c: &mut String, r: &Reply| {
        if let Some(t) = r.cookie("__Host-gatehouse_session") {
            *c = format!("__Host-gatehouse_session={t}");
        }
    };
    let mut revoked = w.sign_in("rev@example.com", "s-rev");
    let mut disabled = w.sign_in("dis@example.com", "s-dis");
    let mut promoted = w.sign_in("pro@example.com", "s-pro");
    for _ in 0..4 {
        w.advance(301);
        for c in [&mut revoked, &mut disabled, &mut promoted] {
            let r = w.page("/docs/", c);
            assert!(r.forward.is_some());
            keep(c, &r);
        }
    }
    assert_eq!(w.store.reads.get(), 0, "renewed from the feed so far");
    let sid = w.session_id(&revoked);
    run(w.store.revoke_session(&sid, w.now())).unwrap();
    let dis = w.user_id(&disabled);
    w.store
        .update_user(&dis, w.now(), |u| u.disabled_at = Some(T0));
    let pro = w.user_id(&promoted);
    w.store
        .update_user(&pro, w.now(), |u| u.role = "editor".into());
    // Within the interval each token in hand runs out; the next request renews with the change.
    w.advance(300);
    assert_eq!(w.page("/docs/", &revoked).status, 302, "revoked");
    assert_eq!(w.page("/docs/", &disabled).status, 302, "disabled");
    let r = w.page("/docs/", &promoted);
    assert_eq!(r.forward.unwrap().identity.unwrap().role, "editor");
    assert_eq!(
        w.store.reads.get(),
        3,
        "one session read each, for what the feed named"
    );
}

/// A token older than the feed's window (a visitor back after an hour) reads its session row.
#[test]
fn a_token_older_than_the_feed_window_reads_the_row() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    w.advance(3600);
    assert!(w.page("/docs/", &cookie).forward.is_some());
    assert_eq!((w.store.feed_reads(), w.store.reads.get()), (1, 1));
}

/// Issue 16: `last_seen_at` is written at most once per `LAST_SEEN_INTERVAL` per active session,
/// however often it renews.
#[test]
fn last_seen_is_written_once_an_hour_per_active_session() {
    let w = world(&[]);
    let mut cookie = w.sign_in("ada@example.com", "111");
    let sid = w.session_id(&cookie);
    for _ in 0..(6 * 3600 / 160) {
        w.advance(160);
        let r = w.page("/docs/", &cookie);
        if let Some(t) = r.cookie("__Host-gatehouse_session") {
            cookie = format!("__Host-gatehouse_session={t}");
        }
    }
    let writes = w.store.seen_writes(&sid);
    assert!((5..=7).contains(&writes), "{writes} writes in 6 hours");
    let last = run(w.store.user_sessions(&w.user_id(&cookie))).unwrap()[0].last_seen_at;
    assert!(
        w.now().secs() - last <= 3600 + 300,
        "last seen within the hour"
    );
}

/// Another site cookie holding UTF-8 (`pref=café`) must not hide the session from the full
/// route: renewal, `/auth/session` and sign-out all read the same `Cookie` header the hot path
/// reads.
#[test]
fn a_utf8_site_cookie_does_not_hide_the_session() {
    let w = world(&[]);
    let session = w.sign_in("ada@example.com", "111");
    let cookie = format!("pref=café; {session}; 名=値");
    assert_eq!(
        w.session_json(&cookie)["user"]["email"],
        "ada@example.com",
        "/auth/session"
    );
    w.advance(300);
    let r = w.page("/docs/", &cookie);
    let f = r.forward.expect("admitted after renewal");
    assert!(f.identity.is_some());
    assert_eq!(f.set_cookies.len(), 1, "renewed: {:?}", f.set_cookies);
    let csrf: serde_json::Value =
        serde_json::from_str(&w.get("/auth/csrf", &[("cookie", &cookie)]).body).unwrap();
    let body = format!("csrfToken={}", csrf["csrfToken"].as_str().unwrap());
    let r = w.request(
        Method::POST,
        "/auth/logout",
        &[("cookie", &cookie), ("origin", SITE)],
        &body,
    );
    assert_eq!((r.status, r.location.as_deref()), (303, Some("/")));
    w.advance(300);
    assert_eq!(w.page("/docs/", &cookie).status, 302, "signed out");
}

/// A feed that could not be pulled again (D1 down) serves nothing: the renewal asks D1 for the
/// row and says "try again" (503), never issues a token as of a stale pull (one that would be
/// expired at once and sign the visitor out).
#[test]
fn a_stale_feed_renews_nothing_when_d1_is_down() {
    let w = world(&[]);
    let mut cookie = w.sign_in("ada@example.com", "111");
    w.advance(301);
    let r = w.page("/docs/", &cookie);
    cookie = format!(
        "__Host-gatehouse_session={}",
        r.cookie("__Host-gatehouse_session")
            .expect("renewed from the feed")
    );
    w.store.broken.set(true);
    w.advance(301);
    let r = w.page("/docs/", &cookie);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.cookies.is_empty(), "the cookie is kept: {:?}", r.cookies);
    w.store.broken.set(false);
    assert!(
        w.page("/docs/", &cookie).forward.is_some(),
        "back once D1 is"
    );
}

/// A renewal that must read its row reads it no older than the feed's pull (its bookmark) and
/// issues the token as of that pull.
#[test]
fn a_row_read_is_anchored_at_the_feed_and_issued_as_of_its_pull() {
    let w = world(&[]);
    let cookie = w.sign_in("ada@example.com", "111");
    let id = w.user_id(&cookie);
    w.advance(100);
    w.store
        .update_user(&id, w.now(), |u| u.role = "editor".into());
    w.advance(201);
    let pulled_at = w.now();
    let r = w.page("/docs/", &cookie);
    assert_eq!(r.forward.unwrap().identity.unwrap().role, "editor");
    assert_eq!(
        w.store.reads_after(),
        ["memory-1"],
        "read after the pull's bookmark"
    );
    w.advance(10);
    let renewed = format!(
        "__Host-gatehouse_session={}",
        w.page("/docs/", &cookie)
            .cookie("__Host-gatehouse_session")
            .unwrap()
    );
    let claims = w.session_json(&renewed);
    assert_eq!(claims["user"]["role"], "editor");
    let token = renewed.split_once('=').unwrap().1;
    let payload: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["iat"], pulled_at.secs(), "as of the pull");
}
