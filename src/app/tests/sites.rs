//! Several sites behind one Gatehouse (`SITES`): one sign-in at the auth origin, handed off to
//! each site with a one-time code; isolation, per-site rules, sign-out of the whole sign-in.

use super::*;

/// The second and third sites; the auth origin is [`SITE`], itself a site.
const WIKI: &str = "https://wiki.test";
const STATUS: &str = "https://status.test";

fn sites() -> World {
    world(&[
        (
            "SITES",
            "https://site.test, https://wiki.test, https://status.test",
        ),
        ("PUBLIC_PATHS", "/public/*, https://wiki.test/open/*"),
        ("ROLE_PATHS", "https://wiki.test/staff/*=staff"),
        ("SESSION_CHECK_INTERVAL", "60"),
    ])
}

fn query(location: &str, name: &str) -> String {
    Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in {location}"))
        .1
        .into_owned()
}

/// A site's first step: its sign-in sends the visitor to the auth origin with a state, and
/// leaves the site's hand-off cookie. Returns (the auth origin URL, the cookie header for the
/// site's callback).
fn leave(w: &World, site: &str, callback: &str) -> (String, String) {
    let r = w.get(
        &format!("{site}/auth/login?callbackUrl={callback}"),
        &[("accept", "text/html")],
    );
    assert_eq!(r.status, 302, "{}", r.body);
    let to = r.location.clone().unwrap();
    assert!(
        to.starts_with(&format!("{SITE}/auth/handoff?")),
        "to the auth origin: {to}"
    );
    assert_eq!(query(&to, "site"), site);
    assert_eq!(r.headers["cache-control"], "no-store");
    let state = r
        .cookie("__Host-gatehouse_handoff")
        .expect("hand-off cookie");
    (to, format!("__Host-gatehouse_handoff={state}"))
}

/// The auth origin's step, for a visitor holding `cookie` there: the URL the code comes back on.
fn code_for(w: &World, handoff: &str, cookie: &str) -> String {
    let r = w.get(handoff, &[("cookie", cookie), ("accept", "text/html")]);
    assert_eq!(r.status, 302, "{}", r.body);
    r.location.unwrap()
}

/// Signs in at the auth origin, then on `site` by hand-off; returns the site's cookie header.
fn hand_off_to(w: &World, auth_cookie: &str, site: &str) -> String {
    let (handoff, state) = leave(w, site, "/docs/");
    let back = code_for(w, &handoff, auth_cookie);
    assert!(back.starts_with(&format!("{site}/auth/handoff/callback?code=")));
    let r = w.get(&back, &[("cookie", &state), ("accept", "text/html")]);
    assert_eq!(r.status, 302, "{} {:?}", r.body, w.logs.0.borrow());
    assert_eq!(r.location.as_deref(), Some("/docs/"));
    format!(
        "__Host-gatehouse_session={}",
        r.cookie("__Host-gatehouse_session")
            .expect("a session cookie")
    )
}

fn aud(cookie: &str) -> String {
    let token = cookie.split_once('=').unwrap().1;
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["aud"].as_str().unwrap().to_owned()
}

#[test]
fn one_sign_in_opens_every_site_without_the_provider() {
    let w = sites();
    let auth = w.sign_in("ada@example.com", "111");
    let authorizations = w.google.pending.borrow().len();
    let wiki = hand_off_to(&w, &auth, WIKI);
    let status = hand_off_to(&w, &auth, STATUS);
    assert_eq!(
        w.google.pending.borrow().len(),
        authorizations,
        "no second trip to the provider"
    );
    assert_eq!(aud(&wiki), WIKI);
    assert_eq!(aud(&status), STATUS);
    let page = w.get(
        &format!("{WIKI}/docs/"),
        &[("cookie", &wiki), ("accept", "text/html")],
    );
    assert_eq!(
        page.forward.unwrap().identity.unwrap().email,
        "ada@example.com"
    );
    let json: serde_json::Value = serde_json::from_str(
        &w.get(&format!("{WIKI}/auth/session"), &[("cookie", &wiki)])
            .body,
    )
    .unwrap();
    assert_eq!(json["user"]["email"], "ada@example.com");
    // Each site's session is a row of its own, for its site.
    let user = w.user_id(&auth);
    let sessions = run(w.store.user_sessions(&user)).unwrap();
    let mut sites: Vec<_> = sessions.iter().filter_map(|s| s.site.clone()).collect();
    sites.sort();
    assert_eq!(sites, [SITE, STATUS, WIKI]);
}

#[test]
fn a_visitor_not_signed_in_signs_in_at_the_auth_origin_first() {
    let w = sites();
    let (handoff, state) = leave(&w, WIKI, "/docs/page?x=1");
    let r = w.get(&handoff, &[("accept", "text/html")]);
    assert_eq!(r.status, 302);
    let login = r.location.unwrap();
    assert!(login.starts_with("/auth/login?callbackUrl="), "{login}");
    // The sign-in page of the auth origin, which comes back to the hand-off afterwards.
    let back_to = query(&format!("{SITE}{login}"), "callbackUrl");
    assert!(back_to.starts_with("/auth/handoff?site="), "{back_to}");
    let (state_cookie, authorize) =
        w.start(&url::form_urlencoded::byte_serialize(back_to.as_bytes()).collect::<String>());
    let (code, oauth_state) = w.approve(&authorize, google_claims("bo@example.com", "222"));
    let signed = w.callback(&state_cookie, &code, &oauth_state);
    assert_eq!(signed.location.as_deref(), Some(back_to.as_str()));
    let auth = format!(
        "__Host-gatehouse_session={}",
        signed.cookie("__Host-gatehouse_session").unwrap()
    );
    let back = code_for(&w, &format!("{SITE}{back_to}"), &auth);
    let r = w.get(&back, &[("cookie", &state), ("accept", "text/html")]);
    assert_eq!(r.location.as_deref(), Some("/docs/page?x=1"));
    assert!(r.cookie("__Host-gatehouse_session").is_some());
}

fn refused(w: &World, r: &Reply, reason: &str) {
    assert_eq!(r.status, 302);
    assert_eq!(error_code(r), "Verification", "{:?}", r.location);
    assert!(
        r.cookie("__Host-gatehouse_session").is_none(),
        "no session: {:?}",
        r.cookies
    );
    let logs = w.logs.0.borrow();
    let last = logs
        .iter()
        .rev()
        .find(|l| l.contains("handoff_refused"))
        .expect("a log line");
    assert!(last.contains(reason), "{last}");
}

#[test]
fn a_code_is_single_use_short_lived_and_bound_to_its_site_and_browser() {
    let w = sites();
    let auth = w.sign_in("ada@example.com", "111");

    // Replayed.
    let (handoff, state) = leave(&w, WIKI, "/");
    let back = code_for(&w, &handoff, &auth);
    let first = w.get(&back, &[("cookie", &state)]);
    assert!(first.cookie("__Host-gatehouse_session").is_some());
    refused(&w, &w.get(&back, &[("cookie", &state)]), "already used");

    // For another site: a code made for wiki, taken to status with status's own state.
    let (handoff, _) = leave(&w, WIKI, "/");
    let back = code_for(&w, &handoff, &auth);
    let (_, status_state) = leave(&w, STATUS, "/");
    let elsewhere = back.replace(WIKI, STATUS);
    refused(
        &w,
        &w.get(&elsewhere, &[("cookie", &status_state)]),
        "another site",
    );
    // ... and the code is spent by that attempt.
    let (_, wiki_state) = leave(&w, WIKI, "/");
    refused(
        &w,
        &w.get(&back, &[("cookie", &wiki_state)]),
        "already used",
    );

    // Without the site's state cookie (another browser, or none).
    let (handoff, _) = leave(&w, WIKI, "/");
    let back = code_for(&w, &handoff, &auth);
    refused(&w, &w.get(&back, &[]), "state cookie");

    // With another browser's state cookie: the attacker's code in the victim's browser.
    let (attacker, _) = leave(&w, WIKI, "/");
    let attackers_code = code_for(&w, &attacker, &auth);
    let (_, victim_state) = leave(&w, WIKI, "/");
    refused(
        &w,
        &w.get(&attackers_code, &[("cookie", &victim_state)]),
        "another browser",
    );

    // Expired.
    let (handoff, state) = leave(&w, WIKI, "/");
    let back = code_for(&w, &handoff, &auth);
    w.advance(61);
    refused(&w, &w.get(&back, &[("cookie", &state)]), "expired");

    // Malformed, or none.
    let (_, state) = leave(&w, WIKI, "/");
    refused(
        &w,
        &w.get(
            &format!("{WIKI}/auth/handoff/callback?code=%3Cscript%3E"),
            &[("cookie", &state)],
        ),
        "malformed",
    );
    let (_, state) = leave(&w, WIKI, "/");
    refused(
        &w,
        &w.get(
            &format!("{WIKI}/auth/handoff/callback"),
            &[("cookie", &state)],
        ),
        "malformed",
    );
}

#[test]
fn the_auth_origin_hands_off_only_to_listed_sites_and_well_formed_states() {
    let w = sites();
    let auth = w.sign_in("ada@example.com", "111");
    let state = "s".repeat(43);
    for bad in [
        format!("/auth/handoff?site=https%3A%2F%2Fevil.test&state={state}"),
        format!("/auth/handoff?site=https%3A%2F%2Fsite.test&state={state}"),
        "/auth/handoff?site=https%3A%2F%2Fwiki.test&state=short".to_owned(),
        "/auth/handoff?site=https%3A%2F%2Fwiki.test".to_owned(),
    ] {
        let r = w.get(&bad, &[("cookie", &auth)]);
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.location.is_none());
    }
    // A site other than the auth origin makes no codes.
    let r = w.get(
        &format!("{WIKI}/auth/handoff?site=https%3A%2F%2Fstatus.test&state={state}"),
        &[("cookie", &auth)],
    );
    assert_eq!(r.status, 400);
}

#[test]
fn a_revoked_sign_in_hands_off_nothing_even_with_a_current_token() {
    let w = sites();
    let auth = w.sign_in("ada@example.com", "111");
    let sid = w.session_id(&auth);
    run(w.store.revoke_session(&sid, w.now())).unwrap();
    let (handoff, _) = leave(&w, WIKI, "/");
    let r = w.get(&handoff, &[("cookie", &auth), ("accept", "text/html")]);
    assert!(
        r.location.unwrap().starts_with("/auth/login?"),
        "sign in again, no code"
    );
}

#[test]
fn a_token_of_one_site_is_refused_on_another() {
    let w = sites();
    let auth = w.sign_in("ada@example.com", "111");
    let token = auth.split_once('=').unwrap().1;
    let page = w.get(
        &format!("{WIKI}/docs/"),
        &[("cookie", &auth), ("accept", "text/html")],
    );
    assert_eq!(page.status, 302, "to the sign-in, not admitted");
    let bearer = w.get(
        &format!("{WIKI}/docs/"),
        &[("authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(bearer.status, 401);
    let json = w.get(&format!("{WIKI}/auth/session"), &[("cookie", &auth)]);
    assert_eq!(json.body, "null");
    // And the hot path agrees.
    let quick =
        crate::app::quick_decision(&w.config, &format!("{WIKI}/docs/"), Some(&auth), w.now());
    assert_eq!(quick, crate::app::Quick::Full);
}

#[test]
fn an_origin_not_listed_is_refused_before_any_rule() {
    let w = sites();
    let auth = w.sign_in("ada@example.com", "111");
    for path in ["/public/x", "/docs/", "/auth/session", "/auth/login"] {
        let r = w.get(&format!("https://evil.test{path}"), &[("cookie", &auth)]);
        assert_eq!(r.status, 421, "{path}");
        assert!(r.forward.is_none());
    }
    let quick = crate::app::quick_decision(&w.config, "https://evil.test/public/x", None, w.now());
    assert_eq!(quick, crate::app::Quick::Full);
}

#[test]
fn each_site_has_its_own_public_and_role_paths() {
    let w = sites();
    let open = w.get(&format!("{WIKI}/open/notes"), &[]);
    assert!(open.forward.is_some(), "public on the wiki");
    let closed = w.get(&format!("{SITE}/open/notes"), &[("accept", "text/html")]);
    assert_eq!(closed.status, 302, "not on the auth origin's site");
    assert!(w.get(&format!("{STATUS}/public/a"), &[]).forward.is_some());
    let auth = w.sign_in("ada@example.com", "111");
    let wiki = hand_off_to(&w, &auth, WIKI);
    let staff = w.get(
        &format!("{WIKI}/staff/"),
        &[("cookie", &wiki), ("accept", "text/html")],
    );
    assert_eq!(staff.status, 403);
    let status = hand_off_to(&w, &auth, STATUS);
    let elsewhere = w.get(
        &format!("{STATUS}/staff/"),
        &[("cookie", &status), ("accept", "text/html")],
    );
    assert!(elsewhere.forward.is_some(), "no such rule on status");
}

#[test]
fn signing_out_on_one_site_ends_the_sign_in_everywhere_within_the_interval() {
    let w = sites();
    let auth = w.sign_in("ada@example.com", "111");
    let wiki = hand_off_to(&w, &auth, WIKI);
    let status = hand_off_to(&w, &auth, STATUS);
    // Sign out on the wiki, with the wiki's CSRF token.
    let csrf: serde_json::Value = serde_json::from_str(
        &w.get(&format!("{WIKI}/auth/csrf"), &[("cookie", &wiki)])
            .body,
    )
    .unwrap();
    let out = w.request(
        Method::POST,
        &format!("{WIKI}/auth/logout"),
        &[("cookie", &wiki), ("origin", WIKI)],
        &format!("csrfToken={}", csrf["csrfToken"].as_str().unwrap()),
    );
    assert_eq!(out.status, 303);
    assert!(
        out.cookies
            .iter()
            .any(|c| c.starts_with("__Host-gatehouse_session=;")),
        "the wiki's cookie goes at once"
    );
    // Within the interval the others' tokens lapse and are not renewed.
    w.advance(61);
    for (site, cookie) in [(SITE, &auth), (STATUS, &status), (WIKI, &wiki)] {
        let r = w.get(
            &format!("{site}/docs/"),
            &[("cookie", cookie), ("accept", "text/html")],
        );
        assert_eq!(r.status, 302, "{site} is signed out");
        assert!(r.location.unwrap().starts_with("/auth/login"));
    }
}

#[test]
fn a_host_of_its_own_for_signing_in_serves_only_auth_routes() {
    let w = world(&[
        ("AUTH_URL", "https://login.test"),
        ("SITES", "https://site.test, https://wiki.test"),
    ]);
    let r = w.get("https://login.test/docs/", &[("accept", "text/html")]);
    assert_eq!(r.status, 404);
    assert!(r.forward.is_none());
    let r = w.get("https://login.test/auth/login", &[("accept", "text/html")]);
    assert_eq!(r.status, 200, "its sign-in page");
    // Every listed site, the first included, hands off to it.
    let r = w.get("/auth/login", &[("accept", "text/html")]);
    assert!(
        r.location
            .unwrap()
            .starts_with("https://login.test/auth/handoff?")
    );
}

#[test]
fn the_admin_page_shows_which_site_each_session_is_for() {
    let w = sites();
    let boss = w.sign_in("boss@example.com", "999");
    let ada = w.sign_in("ada@example.com", "111");
    hand_off_to(&w, &ada, WIKI);
    let page = w.page(&format!("/auth/admin?user={}", w.user_id(&ada)), &boss);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<th scope=\"col\">Site</th>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<td>https://wiki.test</td>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<td>https://site.test</td>"),
        "{}",
        page.body
    );
}

#[test]
fn a_site_with_its_own_upstream_takes_the_full_route_the_others_the_hot_path() {
    let w = world(&[
        (
            "SITES",
            "https://site.test, https://wiki.test=https://wiki-origin.test",
        ),
        ("PUBLIC_PATHS", "/public/*"),
    ]);
    let quick = |url: &str| crate::app::quick_decision(&w.config, url, None, w.now());
    assert_eq!(
        quick("https://site.test/public/a"),
        crate::app::Quick::Public
    );
    assert_eq!(quick("https://wiki.test/public/a"), crate::app::Quick::Full);
    // The full route still forwards it, as public.
    let r = w.get("https://wiki.test/public/a", &[]);
    assert!(r.forward.is_some_and(|f| f.identity.is_none()));
}

#[test]
fn a_site_session_renews_like_any_other_and_keeps_its_audience() {
    let w = sites();
    let auth = w.sign_in("ada@example.com", "111");
    let wiki = hand_off_to(&w, &auth, WIKI);
    w.advance(61);
    let r = w.get(
        &format!("{WIKI}/docs/"),
        &[("cookie", &wiki), ("accept", "text/html")],
    );
    let forward = r.forward.expect("admitted after renewal");
    let renewed = forward
        .set_cookies
        .iter()
        .find(|c| {
            c.starts_with("__Host-gatehouse_session=")
                && !c.starts_with("__Host-gatehouse_session=;")
        })
        .expect("a renewed cookie");
    let token = renewed.split(';').next().unwrap();
    assert_eq!(aud(token), WIKI);
    // Ended with its sign-in: after a sign-out at the auth origin, no renewal.
    let sid = w.session_id(&auth);
    run(w.store.revoke_session(&sid, w.now())).unwrap();
    w.advance(61);
    let r = w.get(
        &format!("{WIKI}/docs/"),
        &[("cookie", token), ("accept", "text/html")],
    );
    assert_eq!(r.status, 302, "signed out on the wiki too");
}
