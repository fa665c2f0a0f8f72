//! `gatehouse check`: reads `wrangler.toml` and refuses Static Assets settings that would serve
//! a protected file to someone the rules keep out of it. The worker cannot see these settings
//! (they are the runtime's, not variables), so the build checks them before every
//! `wrangler dev` and `wrangler deploy` (scripts/build runs this).

use std::path::{Path, PathBuf};

use gatehouse::config::site_gate_rules;
use gatehouse::gate::{GateRules, PathPattern, Requirement};

/// One thing the check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// An error stops the build; a warning is printed.
    pub error: bool,
    /// What and why, in words.
    pub message: String,
}

/// A path that names no file, below `dir` (`""` for the root).
fn missing_below(dir: &str) -> String {
    format!("{dir}/__gatehouse_missing__")
}

fn describe(r: &Requirement) -> String {
    match r {
        Requirement::Public => "no session (public)".into(),
        Requirement::Session => "a session".into(),
        Requirement::Role(role) => format!("the role {role:?}"),
    }
}

/// Missing paths to try: one below each rule, one matched by no rule.
fn samples(rules: &GateRules) -> Vec<String> {
    let patterns = rules
        .public
        .iter()
        .chain(rules.roles.iter().map(|(p, _)| p));
    let mut out: Vec<String> = patterns
        .map(|p| match p {
            PathPattern::Exact(key) => key.clone(),
            PathPattern::Prefix(prefix) => missing_below(prefix),
        })
        .collect();
    out.push(missing_below(""));
    out
}

/// The `404.html` files under `dir`, as URL paths (`/404.html`, `/docs/404.html`).
fn not_found_pages(dir: &Path, url_dir: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            not_found_pages(&path, &format!("{url_dir}/{name}"), out);
        } else if name == "404.html" {
            out.push(format!("{url_dir}/404.html"));
        }
    }
}

/// Checks the wrangler configuration `text`, whose file lives in `base` (for `[assets]`
/// `directory`).
pub fn check(text: &str, base: &Path) -> Result<Vec<Finding>, String> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e| format!("wrangler.toml does not parse: {e}"))?;
    let var = |name: &str| {
        doc.get("vars")
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let mut problems = Vec::new();
    // With SITES, entries may name one of its origins; the origins themselves are the
    // worker's to check (an unlisted one is reported here as an unknown site).
    let origins: Vec<String> = var("SITES")
        .unwrap_or_default()
        .split(',')
        .map(|entry| entry.split_once('=').map_or(entry, |(origin, _)| origin))
        .filter_map(|o| url::Url::parse(o.trim()).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    let (shared, per_site) = site_gate_rules(
        var("PUBLIC_PATHS"),
        var("ROLE_PATHS"),
        &origins,
        &mut problems,
    );
    let mut rules = shared;
    for site in per_site {
        rules.public.extend(site.public);
        rules.roles.extend(site.roles);
    }
    let mut found: Vec<Finding> = problems
        .into_iter()
        .map(|p| Finding {
            error: true,
            message: p.to_string(),
        })
        .collect();
    let Some(assets) = doc.get("assets").and_then(|a| a.as_table()) else {
        return Ok(found);
    };
    let setting = |name: &str| assets.get(name).and_then(|v| v.as_str()).unwrap_or("none");
    // Without it, Static Assets answers requests for existing files itself: no gate at all.
    if assets
        .get("run_worker_first")
        .and_then(toml::Value::as_bool)
        != Some(true)
    {
        found.push(Finding {
            error: true,
            message: "[assets] run_worker_first must be true: otherwise Workers Static Assets serves every existing file without asking Gatehouse".into(),
        });
    }
    match setting("not_found_handling") {
        "single-page-application" => {
            // Every missing path is answered with /index.html.
            let index = rules.requirement("/index.html");
            for sample in samples(&rules) {
                let here = rules.requirement(&sample);
                if !here.at_least(&index) {
                    found.push(Finding {
                        error: true,
                        message: format!(
                            "[assets] not_found_handling = \"single-page-application\" answers every missing path with /index.html, which needs {}; a missing path such as {sample} needs only {}, so /index.html would be served to visitors the rules keep out. Give / the most open rule of the site, or use \"404-page\" or \"none\"",
                            describe(&index),
                            describe(&here)
                        ),
                    });
                }
            }
        }
        "404-page" => {
            // A missing path is answered with the nearest 404.html above it.
            let dir = assets
                .get("directory")
                .and_then(|v| v.as_str())
                .map(|d| base.join(d))
                .unwrap_or_else(|| PathBuf::from(base));
            let mut pages = Vec::new();
            not_found_pages(&dir, "", &mut pages);
            let nearest = |path: &str| {
                pages
                    .iter()
                    .filter(|p| path.starts_with(p.trim_end_matches("404.html")))
                    .max_by_key(|p| p.len())
            };
            for sample in samples(&rules) {
                let Some(page) = nearest(&sample) else {
                    continue;
                };
                let (needs, here) = (rules.requirement(page), rules.requirement(&sample));
                if !here.at_least(&needs) {
                    found.push(Finding {
                        error: false,
                        message: format!(
                            "[assets] not_found_handling = \"404-page\" answers a missing path such as {sample} (which needs {}) with {page}, which needs {}: that page is shown to visitors the rules keep out of it",
                            describe(&here),
                            describe(&needs)
                        ),
                    });
                }
            }
        }
        _ => {}
    }
    Ok(found)
}

/// `gatehouse check [--config PATH]`: prints the findings; an error fails.
pub fn main(config: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| format!("reading {}: {e}", config.display()))?;
    let base = config.parent().unwrap_or(Path::new("."));
    let found = check(&text, base)?;
    let mut errors = 0;
    for f in &found {
        if f.error {
            errors += 1;
            eprintln!("gatehouse check: error: {}", f.message);
        } else {
            eprintln!("gatehouse check: warning: {}", f.message);
        }
    }
    if errors > 0 {
        return Err(format!(
            "{} exposes protected files ({errors} error{})",
            config.display(),
            if errors == 1 { "" } else { "s" }
        ));
    }
    Ok(format!(
        "gatehouse check: {} is safe to serve",
        config.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(assets: &str, vars: &str) -> String {
        format!(
            "name = \"x\"\nmain = \"js/entry.mjs\"\n[assets]\ndirectory = \"public\"\nbinding = \"ASSETS\"\n{assets}\n[vars]\n{vars}\n"
        )
    }

    fn errors(text: &str, base: &Path) -> Vec<String> {
        check(text, base)
            .unwrap()
            .into_iter()
            .filter(|f| f.error)
            .map(|f| f.message)
            .collect()
    }

    #[test]
    fn the_demo_configuration_passes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join("wrangler.toml")).unwrap();
        assert_eq!(check(&text, &root).unwrap(), Vec::new());
    }

    #[test]
    fn per_site_rules_of_sites_are_read_and_unknown_sites_reported() {
        let base = Path::new(".");
        let sites =
            "SITES = \"https://a.example.com, https://b.example.com=https://b.pages.dev\"\n";
        let ok = format!(
            "{sites}PUBLIC_PATHS = \"/public/*, https://b.example.com/open/*\"\nROLE_PATHS = \"https://a.example.com/admin/*=admin\""
        );
        assert_eq!(
            errors(&toml("run_worker_first = true", &ok), base),
            Vec::<String>::new()
        );
        let unknown = format!("{sites}PUBLIC_PATHS = \"https://c.example.com/x\"");
        let e = errors(&toml("run_worker_first = true", &unknown), base);
        assert!(e.iter().any(|m| m.contains("does not list")), "{e:?}");
    }

    #[test]
    fn a_single_page_application_fallback_must_not_outrank_the_rules() {
        let base = Path::new(".");
        // The home page is private, /public/* is not: /public/missing would serve it.
        let spa = "run_worker_first = true\nnot_found_handling = \"single-page-application\"";
        let e = errors(&toml(spa, "PUBLIC_PATHS = \"/public/*\""), base);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("/public/__gatehouse_missing__") && e[0].contains("a session"),
            "{e:?}"
        );
        // The home page needs a role that the rest of the site does not.
        let e = errors(&toml(spa, "ROLE_PATHS = \"/=staff\""), base);
        assert!(!e.is_empty());
        // An open home page, a role below it: nothing to leak.
        assert!(
            errors(
                &toml(
                    spa,
                    "PUBLIC_PATHS = \"/*\"\nROLE_PATHS = \"/admin/*=admin\""
                ),
                base
            )
            .is_empty()
        );
        // Everything private, nothing public: fine as well.
        assert!(errors(&toml(spa, ""), base).is_empty());
        // The same rules without the fallback: fine.
        assert!(
            errors(
                &toml("run_worker_first = true", "PUBLIC_PATHS = \"/public/*\""),
                base
            )
            .is_empty()
        );
    }

    #[test]
    fn a_protected_404_page_shown_on_public_misses_is_a_warning() {
        let dir = std::env::temp_dir().join(format!("gatehouse-check-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("public/public")).unwrap();
        std::fs::write(dir.join("public/404.html"), "private 404").unwrap();
        let text = toml(
            "run_worker_first = true\nnot_found_handling = \"404-page\"",
            "PUBLIC_PATHS = \"/public/*\"",
        );
        let found = check(&text, &dir).unwrap();
        assert!(found.iter().all(|f| !f.error), "{found:?}");
        assert!(
            found.iter().any(|f| f.message.contains("/404.html")),
            "{found:?}"
        );
        // A public 404 page next to the public pages: nothing to say.
        std::fs::write(dir.join("public/public/404.html"), "public 404").unwrap();
        let found = check(&text, &dir).unwrap();
        assert_eq!(found, Vec::new());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn assets_must_reach_the_worker_first_and_rules_must_parse() {
        let base = Path::new(".");
        let e = errors(&toml("", ""), base);
        assert!(e.iter().any(|m| m.contains("run_worker_first")), "{e:?}");
        let e = errors(
            &toml("run_worker_first = true", "ROLE_PATHS = \"/a/*\""),
            base,
        );
        assert!(e.iter().any(|m| m.contains("ROLE_PATHS")), "{e:?}");
        // No [assets] (UPSTREAM_URL deployments): only the rules are checked.
        assert!(check("name = \"x\"\n", base).unwrap().is_empty());
    }
}
