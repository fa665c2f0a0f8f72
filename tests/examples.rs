//! The deploy guides' `wrangler.toml` files (docs/deploy.md) and the repository's own dev one
//! are real configurations: they parse, bind what the worker uses, and their `[vars]` pass
//! Gatehouse's own validation (with placeholder secrets).

use std::collections::HashMap;

use gatehouse::config::Config;

const KEYS: &str =
    r#"{"keys":[{"kty":"oct","kid":"k","k":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"}]}"#;

fn load(path: &str) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn vars(t: &toml::Table) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = t
        .get("vars")
        .and_then(toml::Value::as_table)
        .map(|v| {
            v.iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("vars are strings").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    vars.insert("GOOGLE_CLIENT_SECRET".into(), "placeholder".into());
    vars.insert("SESSION_KEYS".into(), KEYS.into());
    vars
}

fn str_at<'a>(t: &'a toml::Table, path: &[&str]) -> Option<&'a str> {
    let mut v: &toml::Value = t.get(path[0])?;
    for key in &path[1..] {
        v = v.get(key)?;
    }
    v.as_str()
}

fn check_common(path: &str) -> (toml::Table, Config) {
    let t = load(path);
    assert_eq!(str_at(&t, &["main"]), Some("js/entry.mjs"), "{path}: main");
    assert_eq!(
        str_at(&t, &["build", "command"]),
        Some("bash scripts/build"),
        "{path}: build"
    );
    assert!(
        str_at(&t, &["compatibility_date"]).is_some(),
        "{path}: compatibility_date"
    );
    let d1 = t["d1_databases"].as_array().expect("d1_databases");
    assert!(
        d1.iter().any(
            |db| db.get("binding").and_then(toml::Value::as_str) == Some("DB")
                && db.get("migrations_dir").and_then(toml::Value::as_str) == Some("migrations")
        ),
        "{path}: D1 binding DB with migrations/"
    );
    let v = vars(&t);
    for key in v.keys() {
        assert!(
            KNOWN.contains(&key.as_str()),
            "{path}: unknown variable {key}"
        );
    }
    let config = Config::from_vars(|k| v.get(k).cloned())
        .unwrap_or_else(|errors| panic!("{path}: {errors:?}"));
    check_prune_trigger(path, &t);
    (t, config)
}

/// Every configuration with D1 runs the pruning handler on a cron trigger (src/prune.rs):
/// without one, ended sessions and old audit rows are never deleted.
fn check_prune_trigger(path: &str, t: &toml::Table) {
    let crons: Vec<&str> = t
        .get("triggers")
        .and_then(|tr| tr.get("crons"))
        .and_then(toml::Value::as_array)
        .unwrap_or_else(|| panic!("{path}: [triggers] crons is missing"))
        .iter()
        .map(|c| {
            c.as_str()
                .unwrap_or_else(|| panic!("{path}: a cron is a string"))
        })
        .collect();
    assert!(!crons.is_empty(), "{path}: no cron trigger");
    for cron in crons {
        assert_eq!(
            cron.split_whitespace().count(),
            5,
            "{path}: {cron:?} is not a five-field cron expression"
        );
    }
}

const KNOWN: &[&str] = &[
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "SESSION_KEYS",
    "AUTH_URL",
    "SITES",
    "GOOGLE_ISSUER",
    "GOOGLE_AUTHORIZATION_URL",
    "GOOGLE_TOKEN_URL",
    "GOOGLE_JWKS_URL",
    "ALLOWED_EMAIL_DOMAINS",
    "ALLOWED_EMAILS",
    "ADMIN_EMAILS",
    "PUBLIC_PATHS",
    "ROLE_PATHS",
    "UPSTREAM_URL",
    "SESSION_MAX_AGE",
    "SESSION_CHECK_INTERVAL",
    "SITE_NAME",
    "AUDIT_RETENTION_DAYS",
];

fn assets_first(t: &toml::Table) -> bool {
    str_at(t, &["assets", "binding"]) == Some("ASSETS")
        && t["assets"]
            .get("run_worker_first")
            .and_then(toml::Value::as_bool)
            == Some(true)
}

#[test]
fn dev_config_serves_public_behind_the_gate() {
    let (t, config) = check_common("wrangler.toml");
    assert!(
        assets_first(&t),
        "every request must reach the worker first"
    );
    assert!(config.upstream_url.is_none());
}

#[test]
fn static_site_guide_is_a_valid_configuration() {
    let (t, config) = check_common("examples/static-site/wrangler.toml");
    assert!(assets_first(&t));
    assert!(
        config.auth_url.is_some(),
        "a deployment names its public origin"
    );
    assert_eq!(config.gate.roles.len(), 2);
}

#[test]
fn pages_origin_guide_proxies_to_https_and_has_no_assets() {
    let (t, config) = check_common("examples/pages-origin/wrangler.toml");
    assert!(t.get("assets").is_none(), "the Pages project is the site");
    assert_eq!(
        config.upstream_url.as_ref().map(url::Url::scheme),
        Some("https")
    );
    assert!(config.auth_url.is_some());
}

#[test]
fn sites_guide_serves_three_subdomains_each_from_its_own_upstream() {
    let (t, config) = check_common("examples/sites/wrangler.toml");
    assert!(
        t.get("assets").is_none(),
        "each site is its own Pages project"
    );
    assert_eq!(config.sites.len(), 3);
    let auth = config.auth_url.as_ref().expect("the auth origin");
    let routes: Vec<&str> = t["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|r| r.get("pattern").and_then(toml::Value::as_str))
        .collect();
    for s in &config.sites {
        let host = url::Url::parse(s.site.origin()).unwrap();
        assert!(
            routes.contains(&host.host_str().unwrap()),
            "{} has a custom domain",
            s.site.origin()
        );
        assert_eq!(
            s.upstream.as_ref().map(url::Url::scheme),
            Some("https"),
            "{} has its own https upstream",
            s.site.origin()
        );
    }
    assert!(
        config
            .sites
            .iter()
            .any(|s| s.site.origin() == auth.origin().ascii_serialization()),
        "the auth origin is one of the sites"
    );
    assert_eq!(
        t.get("workers_dev").and_then(toml::Value::as_bool),
        Some(false)
    );
}

#[test]
fn nginx_guide_asks_the_verify_endpoint_and_never_trusts_client_identity_headers() {
    let conf = std::fs::read_to_string("examples/nginx/gatehouse.conf").unwrap();
    assert!(conf.contains("/auth/verify"));
    assert!(conf.contains("auth_request "));
    for h in ["X-Auth-User-Id", "X-Auth-Email", "X-Auth-Role"] {
        assert!(
            conf.contains(&format!("proxy_set_header {h} $auth_")),
            "{h} is set from the check, not the client"
        );
    }
    let open = conf.matches('{').count();
    assert_eq!(open, conf.matches('}').count(), "balanced braces");
}
