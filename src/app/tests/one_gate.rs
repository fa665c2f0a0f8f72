//! The hot path and the full route are one rule set: whatever `quick_decision` decides on its
//! own (public, or admitted until a time), `App::handle` decides the same for the same URL and
//! cookie, for generated paths (percent-encodings, dot segments, `;`, `\\`, `//`, Unicode,
//! Static Assets aliases), cookies (current, expired, forged, several, none) and rule sets.

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

use super::*;
use crate::app::{Deferred, quick_decision_deferred, quick_decision_in};
use crate::session::verified::VerifiedTokens;

/// RFC 8037 Appendix A.1's Ed25519 key pair, as a session key set.
const EDDSA_KEYS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed1","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

const SEGMENTS: &[&str] = &[
    "public",
    "admin",
    "docs",
    "finance",
    "a",
    "q3.html",
    "index.html",
    "index",
    "x.html",
    ".",
    "..",
    "%2e",
    "%2E%2e",
    ".%2e",
    "..;",
    ";x",
    "a;b",
    "%3b",
    "%2F",
    "%2f",
    "%5C",
    "\\",
    "",
    "%61dmin",
    "%64ocs",
    "caf%C3%A9",
    "café",
    "%00",
    "%ff",
    "%252e%252e",
    "%20",
    "~",
    "favicon.ico",
    "auth",
];

const PUBLIC: &[&str] = &[
    "",
    "/public/*",
    "/public/*,/favicon.ico",
    "/*",
    "/docs.html",
];
const ROLES: &[&str] = &[
    "",
    "/admin/*=admin",
    "/docs/*=staff,/admin/*=admin",
    "/finance/q3.html=finance",
    "/=staff",
];

fn path() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(proptest::sample::select(SEGMENTS), 0..6),
        any::<bool>(),
        proptest::option::of(proptest::sample::select(&["x=1", "a=%2F..%2F", ""][..])),
    )
        .prop_map(|(segments, trailing, query)| {
            let mut p = format!("/{}", segments.join("/"));
            if trailing && !p.ends_with('/') {
                p.push('/');
            }
            if let Some(q) = query {
                p.push('?');
                p.push_str(q);
            }
            p
        })
}

/// A world per rule set and key set (an HMAC key, an Ed25519 key), each with four cookies: two
/// current, one forged (a changed signature), one whose token has lapsed.
fn worlds() -> Vec<(World, [String; 4])> {
    let mut worlds = Vec::new();
    for (public, roles, keys) in PUBLIC
        .iter()
        .flat_map(|p| ROLES.iter().map(move |r| (p, r)))
        .flat_map(|(p, r)| [(p, r, None), (p, r, Some(EDDSA_KEYS))])
    {
        let mut vars = vec![("PUBLIC_PATHS", *public), ("ROLE_PATHS", *roles)];
        vars.extend(keys.map(|k| ("SESSION_KEYS", k)));
        let w = world(&vars);
        let user = w.sign_in("ada@example.com", "1");
        let admin = w.sign_in("boss@example.com", "2");
        // One character of the signature changed: the same length, a signature that fails.
        let mut forged = user.clone().into_bytes();
        let at = forged.len() - 10;
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        let expired = w.sign_in("eve@example.com", "3");
        worlds.push((w, [user, admin, forged, expired]));
    }
    // The expired cookie's token lapses: every world moves past its interval, then the
    // two current cookies are issued anew.
    for (w, cookies) in &mut worlds {
        w.advance(301);
        cookies[0] = w.sign_in("ada@example.com", "1");
        cookies[1] = w.sign_in("boss@example.com", "2");
    }
    worlds
}

/// The runtime's hot-path decision: Ed25519 signatures deferred (to WebCrypto there), here
/// checked by the pure-Rust verifier between the two calls, as `gateCheckSignature` does.
fn deferred_decision(
    memory: &mut VerifiedTokens,
    config: &crate::config::Config,
    url: &str,
    cookie: Option<&str>,
    now: UnixTime,
) -> Quick {
    match quick_decision_deferred(memory, config, url, cookie, now, None) {
        Deferred::Decided(q) => q,
        Deferred::Check(check) if !check.verify_natively() => Quick::Full,
        Deferred::Check(check) => {
            let proof = check.passed();
            match quick_decision_deferred(memory, config, url, cookie, now, Some(&proof)) {
                Deferred::Decided(q) => q,
                Deferred::Check(_) => panic!("asked for a check again"),
            }
        }
    }
}

#[test]
fn the_hot_path_never_decides_what_the_full_route_would_not() {
    let worlds = worlds();
    // Each world's memory of verified tokens lives across the cases, as an isolate's does: a
    // remembered token must be decided exactly as a checked one.
    let memories: Vec<std::cell::RefCell<VerifiedTokens>> = worlds
        .iter()
        .map(|_| std::cell::RefCell::new(VerifiedTokens::default()))
        .collect();
    // The runtime's memory, whose Ed25519 checks are deferred (to WebCrypto there; here to the
    // same pure-Rust verifier): it must answer exactly as the inline one.
    let deferred: Vec<std::cell::RefCell<VerifiedTokens>> = worlds
        .iter()
        .map(|_| std::cell::RefCell::new(VerifiedTokens::default()))
        .collect();
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 2000,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let strategy = (
        0..worlds.len(),
        path(),
        proptest::option::of(0..4usize),
        proptest::option::of(0..4usize),
    );
    runner
        .run(&strategy, |(i, raw, first, second)| {
            let (w, cookies) = &worlds[i];
            // The runtime hands the gate its URL parser's reading of the request line.
            let Ok(url) = Url::parse(&format!("{SITE}{raw}")) else {
                return Ok(());
            };
            let path_and_query = &url[url::Position::BeforePath..];
            let cookie = match (first, second) {
                (Some(a), Some(b)) => Some(format!(
                    "theme=dark; {}; pref=café; {}",
                    cookies[a], cookies[b]
                )),
                (Some(a), None) | (None, Some(a)) => Some(cookies[a].clone()),
                (None, None) => None,
            };
            let now = UnixTime(w.now.get());
            let quick = quick_decision_in(
                &mut memories[i].borrow_mut(),
                &w.config,
                url.as_str(),
                cookie.as_deref(),
                now,
            );
            let runtime = deferred_decision(
                &mut deferred[i].borrow_mut(),
                &w.config,
                url.as_str(),
                cookie.as_deref(),
                now,
            );
            prop_assert_eq!(
                runtime,
                quick,
                "{} with {:?}: deferred and inline checks differ",
                raw,
                cookie
            );
            let mut headers = vec![("accept", "text/html")];
            if let Some(c) = &cookie {
                headers.push(("cookie", c.as_str()));
            }
            let full = w.get(path_and_query, &headers);
            match quick {
                Quick::Full => {}
                Quick::Public => prop_assert!(
                    full.forward.as_ref().is_some_and(|f| f.identity.is_none()),
                    "{raw}: hot path public, full route {}",
                    full.status
                ),
                Quick::Admitted { until } => {
                    prop_assert!(until > now, "{raw}: admitted until the past");
                    prop_assert!(
                        full.forward.as_ref().is_some_and(|f| f.identity.is_some()),
                        "{raw} with {cookie:?}: hot path admitted, full route {}",
                        full.status
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}
