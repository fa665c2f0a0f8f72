//! The gate: path rules, the hot path and the full route, what reaches the site, cache headers.

use super::*;

#[test]
fn unsigned_visitors_are_sent_to_sign_in_and_apis_get_401() {
    let w = world(&[]);
    let r = w.get("/docs/?q=1", &[("accept", "text/html")]);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location.as_deref(),
        Some("/auth/login?callbackUrl=%2Fdocs%2F%3Fq%3D1")
    );
    let r = w.get("/docs/", &[("accept", "application/json")]);
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = w.request(Method::POST, "/docs/", &[("accept", "text/html")], "");
    assert_eq!(r.status, 401, "a POST is never redirected");
}

#[test]
fn role_paths_need_their_role() {
    let w = world(&[("ROLE_PATHS", "/admin/*=admin")]);
    let user = w.sign_in("ada@example.com", "111");
    let boss = w.sign_in("boss@example.com", "900");
    assert_eq!(w.page("/admin/", &user).status, 403);
    let r = w.get(
        "/admin/x",
        &[("cookie", &user), ("accept", "application/json")],
    );
    assert_eq!(
        (r.status, r.body.contains("\"requiredRole\":\"admin\"")),
        (403, true)
    );
    assert!(w.page("/admin/", &boss).forward.is_some());
    assert!(w.page("/docs/", &user).forward.is_some());
}

#[test]
fn public_paths_pass_without_touching_sessions() {
    let w = world(&[("PUBLIC_PATHS", "/public/*")]);
    let r = w.get(
        "/public/a.html",
        &[
            ("accept", "text/html"),
            ("cookie", "__Host-gatehouse_session=garbage"),
        ],
    );
    assert_eq!(
        r.forward,
        Some(Forward {
            identity: None,
            set_cookies: vec![],
            strip_authorization: false,
        })
    );
}

/// Issue 13, item 3: a session token never reaches the site.
#[test]
fn bearer_session_tokens_never_reach_the_site() {
    let w = world(&[("PUBLIC_PATHS", "/public/*")]);
    let cookie = w.sign_in("ada@example.com", "111");
    let token = cookie.split_once('=').unwrap().1.to_owned();
    // On a public path, in any scheme spelling.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {token}");
        let r = w.get("/public/x", &[("authorization", &auth)]);
        assert!(
            r.forward.unwrap().strip_authorization,
            "{scheme} on a public path"
        );
        // Next to a valid cookie on a protected path.
        let r = w.get("/docs/", &[("authorization", &auth), ("cookie", &cookie)]);
        assert!(
            r.forward.unwrap().strip_authorization,
            "{scheme} next to a cookie"
        );
    }
    // An expired one too (it is still ours), but not the site's own credentials.
    w.advance(301);
    let r = w.get(
        "/public/x",
        &[("authorization", &format!("bearer {token}"))],
    );
    assert!(r.forward.unwrap().strip_authorization);
    for theirs in ["Bearer site-api-key", "Basic dTpw"] {
        let r = w.get("/public/x", &[("authorization", theirs)]);
        assert!(!r.forward.unwrap().strip_authorization, "{theirs}");
    }
}

#[test]
fn auth_pages_are_never_cached_and_carry_a_strict_csp() {
    let w = world(&[]);
    for path in [
        "/auth/login",
        "/auth/error?error=AccessDenied",
        "/auth/logout",
        "/auth/session",
    ] {
        let r = w.get(path, &[]);
        assert_eq!(r.headers["cache-control"], "no-store", "{path}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers["referrer-policy"], "no-referrer", "{path}");
    }
    let r = w.get(
        "/auth/login?error=%3Cscript%3E&callbackUrl=%22%3E%3Cscript%3E",
        &[],
    );
    assert!(
        r.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(!r.body.contains("<script>"), "{}", r.body);
    assert_eq!(w.get("/auth/error?error=AccessDenied", &[]).status, 403);
    assert_eq!(w.get("/auth/error?error=Configuration", &[]).status, 500);
    assert_eq!(
        w.get("/auth/error?error=OAuthCallbackError", &[]).status,
        400
    );
}

#[test]
fn public_key_set_is_cacheable_and_never_holds_a_symmetric_key() {
    let w = world(&[]);
    let r = w.get("/auth/jwks.json", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["cache-control"], "public, max-age=300");
    assert_eq!(r.body, r#"{"keys":[]}"#);
}

#[test]
fn private_cache_control_keeps_stricter_directives() {
    assert_eq!(private_cache_control(None), "private");
    assert_eq!(
        private_cache_control(Some("public, max-age=3600")),
        "private, max-age=3600"
    );
    assert_eq!(private_cache_control(Some("no-store")), "private, no-store");
    assert_eq!(
        private_cache_control(Some("s-maxage=60, max-age=0, must-revalidate")),
        "private, max-age=0, must-revalidate"
    );
}

#[test]
fn shared_cache_headers_name_every_cdn_directive_header() {
    // Lower case, valid names: js/entry.mjs and the runtime compare and delete them as given.
    for name in SHARED_CACHE_HEADERS {
        let parsed = header::HeaderName::from_bytes(name.as_bytes()).unwrap();
        assert_eq!(parsed.as_str(), name);
    }
    for name in [
        "CDN-Cache-Control",
        "Cloudflare-CDN-Cache-Control",
        "Surrogate-Control",
    ] {
        assert!(
            SHARED_CACHE_HEADERS.contains(&name.to_ascii_lowercase().as_str()),
            "{name}"
        );
    }
}

#[test]
fn private_vary_adds_cookie_once() {
    assert_eq!(private_vary(None), "Cookie");
    assert_eq!(private_vary(Some(" ")), "Cookie");
    assert_eq!(
        private_vary(Some("Accept-Encoding")),
        "Accept-Encoding, Cookie"
    );
    for covered in ["Cookie", "accept-encoding, cookie", "*", "Accept, *"] {
        assert_eq!(private_vary(Some(covered)), covered);
    }
    // "Cookies" or "Set-Cookie" are other headers.
    assert_eq!(private_vary(Some("Set-Cookie")), "Set-Cookie, Cookie");
}

/// js/entry.mjs forwards ASSETS' response untouched when both answers equal what it already
/// says (a site that marks its own pages private, e.g. with `_headers`): so each must be
/// idempotent, and "unchanged" must mean "already private and varying on Cookie".
#[test]
fn marking_private_is_idempotent_and_unchanged_only_when_already_private() {
    for cc in [
        None,
        Some("public, max-age=60"),
        Some("no-store"),
        Some("private"),
        Some("private, max-age=60"),
        Some("Private"),
        Some("max-age=60, private"),
        Some("s-maxage=60"),
    ] {
        let once = private_cache_control(cc);
        assert_eq!(private_cache_control(Some(&once)), once, "{cc:?}");
        if cc == Some(once.as_str()) {
            assert!(once.starts_with("private"), "{cc:?}");
        }
    }
    assert_eq!(
        private_cache_control(Some("private, max-age=60")),
        "private, max-age=60"
    );
    for vary in [None, Some("Accept-Encoding"), Some("Cookie"), Some("*")] {
        let once = private_vary(vary);
        assert_eq!(private_vary(Some(&once)), once, "{vary:?}");
    }
}

#[test]
fn upstream_redirects_to_its_own_origin_point_back_at_the_site() {
    let up = Url::parse("https://my-site.pages.dev/").unwrap();
    for (loc, want) in [
        (
            "https://my-site.pages.dev/docs/?a=1",
            Some("https://site.test/docs/?a=1"),
        ),
        ("//my-site.pages.dev/x#f", Some("https://site.test/x#f")),
        // Scheme and host are case-insensitive.
        ("HTTPS://MY-SITE.pages.dev/x", Some("https://site.test/x")),
        (
            "Https://My-Site.Pages.Dev/x?q#f",
            Some("https://site.test/x?q#f"),
        ),
        // The other scheme on its own default port is still the upstream's host.
        ("http://my-site.pages.dev/x", Some("https://site.test/x")),
        (
            "HTTP://my-site.pages.dev/x?a=1",
            Some("https://site.test/x?a=1"),
        ),
        // The upstream's port, said out loud.
        (
            "https://my-site.pages.dev:443/x",
            Some("https://site.test/x"),
        ),
        // `\` is `/` in http(s) URLs: browsers follow these to the upstream's host.
        ("/\\my-site.pages.dev/x", Some("https://site.test/x")),
        ("\\\\my-site.pages.dev/x", Some("https://site.test/x")),
        (
            "\\/my-site.pages.dev/x?y#z",
            Some("https://site.test/x?y#z"),
        ),
        (
            "https:\\\\my-site.pages.dev\\a\\b",
            Some("https://site.test/a/b"),
        ),
        ("//MY-SITE.PAGES.DEV", Some("https://site.test/")),
        // A fully qualified name (trailing dot) is the same host.
        ("https://my-site.pages.dev./x", Some("https://site.test/x")),
        // Userinfo does not make it another host.
        (
            "https://user:pw@my-site.pages.dev/x",
            Some("https://site.test/x"),
        ),
        // Leading and trailing blanks are stripped by URL parsing, as browsers do.
        (
            "  https://my-site.pages.dev/x ",
            Some("https://site.test/x"),
        ),
        // Another port of that host is another service; other hosts are left alone.
        ("https://my-site.pages.dev:8443/x", None),
        (
            "http://my-site.pages.dev:443/x",
            Some("https://site.test/x"),
        ),
        ("https://other.test/x", None),
        ("//other.test/x", None),
        ("/\\other.test/x", None),
        ("https://my-site.pages.dev.evil.test/x", None),
        ("https://evil.test/my-site.pages.dev", None),
        ("ftp://my-site.pages.dev/x", None),
        ("javascript:alert(1)", None),
        // Relative references stay as they are (they already lead to the public site).
        ("/relative", None),
        ("relative", None),
        ("?q=1", None),
        ("#f", None),
        ("", None),
    ] {
        assert_eq!(rewrite_location(loc, &up, SITE).as_deref(), want, "{loc}");
    }
}

#[test]
fn upstream_on_a_port_is_matched_with_that_port_in_either_scheme() {
    let up = Url::parse("http://127.0.0.1:9000/").unwrap();
    let site = "http://127.0.0.1:8787";
    for (loc, want) in [
        (
            "http://127.0.0.1:9000/a?b",
            Some("http://127.0.0.1:8787/a?b"),
        ),
        ("HTTPS://127.0.0.1:9000/a", Some("http://127.0.0.1:8787/a")),
        ("//127.0.0.1:9000/a#c", Some("http://127.0.0.1:8787/a#c")),
        ("/\\127.0.0.1:9000/a", Some("http://127.0.0.1:8787/a")),
        // The upstream's host on a default port is not the upstream.
        ("http://127.0.0.1/a", None),
        ("https://127.0.0.1/a", None),
        // The public site itself, and relative references, are left as they are.
        ("http://127.0.0.1:8787/a", None),
        ("/a", None),
        ("//127.0.0.1:8787/a", None),
    ] {
        assert_eq!(rewrite_location(loc, &up, site).as_deref(), want, "{loc}");
    }
}

#[test]
fn hot_path_decides_only_what_a_signature_check_can() {
    let w = world(&[
        ("PUBLIC_PATHS", "/public/*"),
        ("ROLE_PATHS", "/admin/*=admin"),
    ]);
    let cookie = w.sign_in("ada@example.com", "111");
    let now = UnixTime(T0 + 10);
    let quick = |path: &str, cookie: Option<&str>, at: UnixTime| {
        quick_decision(&w.config, &format!("{SITE}{path}"), cookie, at)
    };
    let until = UnixTime(T0 + 300);
    assert_eq!(
        quick("/docs/", Some(&cookie), now),
        Quick::Admitted { until }
    );
    // `until` is exact: js/entry.mjs reuses the verdict while now < until, and so does this.
    assert_eq!(
        quick("/docs/", Some(&cookie), UnixTime(until.secs() - 1)),
        Quick::Admitted { until }
    );
    assert_eq!(quick("/docs/", Some(&cookie), until), Quick::Full);
    assert_eq!(quick("/public/x", None, now), Quick::Public);
    for (path, c, at, why) in [
        ("/docs/", None, now, "no session"),
        (
            "/docs/",
            Some(cookie.as_str()),
            UnixTime(T0 + 300),
            "expired: renewal needs D1",
        ),
        ("/admin/", Some(cookie.as_str()), now, "wrong role"),
        ("/auth/session", Some(cookie.as_str()), now, "auth routes"),
        ("/docs/%00", Some(cookie.as_str()), now, "odd path"),
        (
            "/docs/",
            Some("__Host-gatehouse_session=x.y.z"),
            now,
            "bad token",
        ),
    ] {
        assert_eq!(quick(path, c, at), Quick::Full, "{why}");
    }
    // What the runtime would never send, refused rather than guessed at.
    for url in ["not a url", "", "/docs/"] {
        assert_eq!(
            quick_decision(&w.config, url, Some(&cookie), now),
            Quick::Full,
            "{url}"
        );
    }
    // The query does not change the verdict; the path is the URL's, not the query's.
    assert!(matches!(
        quick("/docs/?next=/admin/", Some(&cookie), now),
        Quick::Admitted { .. }
    ));
    assert_eq!(quick("/admin/?x=/docs/", Some(&cookie), now), Quick::Full);
    let up = world(&[("UPSTREAM_URL", "https://my-site.pages.dev")]);
    assert_eq!(
        quick_decision(&up.config, &format!("{SITE}/docs/"), Some(&cookie), now),
        Quick::Full
    );
    // The full route agrees wherever the hot path admits.
    assert!(w.page("/docs/", &cookie).forward.is_some());
}

/// Which requests the hot path may decide at all: one filter for js/entry.mjs and the gate.
#[test]
fn only_plain_gets_without_credentials_or_identity_headers_take_the_hot_path() {
    let names = |list: &'static [&'static str]| list.iter().copied();
    assert!(hot_path_may_decide("GET", names(&["cookie", "accept"])));
    assert!(hot_path_may_decide("HEAD", names(&[])));
    for (method, headers) in [
        ("POST", &["cookie"][..]),
        ("GET", &["Authorization"][..]),
        ("GET", &["authorization", "cookie"][..]),
        ("GET", &["x-auth-role"][..]),
        ("GET", &["X-Auth-Anything"][..]),
        ("HEAD", &["x-AUTH-email"][..]),
    ] {
        assert!(
            !hot_path_may_decide(method, names(headers)),
            "{method} {headers:?}"
        );
    }
    assert!(
        hot_path_may_decide("GET", names(&["x-authority"])),
        "not an identity header"
    );
    assert_eq!(IDENTITY_HEADER_PREFIX, "x-auth-");
}
