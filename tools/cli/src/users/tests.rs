//! Unit tests of `gatehouse users`: validation, parsing, SQL, output, runs on a fake wrangler.

use super::format::{date, date_time};
use super::*;
use crate::wrangler::Target;

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn parsed(a: &[&str]) -> Result<(Command, Target), Failure> {
    parse_args(&args(a))
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

const HOSTILE_EMAILS: &[&str] = &[
    "a'--@x.test",
    "x@y.test'; DROP TABLE users; --",
    "x@y.test';DROP/**/TABLE/**/users;--",
    "x@y.test\"",
    "x\\@y.test",
    "x\\'@y.test",
    "a b@x.test",
    "a@x.test\n; DELETE FROM users",
    "a@x.test\0",
    "a@b@x.test",
    "ab.x.test",
    "@x.test",
    "a@",
    "a@x.test;",
    "ä@x.test",
    "a@x.test\u{1b}[2J",
    "",
    "   ",
];

#[test]
fn emails_accepted_trimmed_and_refused() {
    for (ok, canonical) in [
        ("a@x.test", "a@x.test"),
        (
            "  Someone.Else+tag@Example.COM \n",
            "someone.else+tag@example.com",
        ),
        (
            "o_k-1!#$%&*/=?^`{|}~@sub.x-y.test",
            "o_k-1!#$%&*/=?^`{|}~@sub.x-y.test",
        ),
    ] {
        assert_eq!(Email::parse(ok).unwrap().as_str(), canonical, "{ok:?}");
        // The worker's own canonical form: what it stores and compares.
        assert_eq!(
            gatehouse::oidc::canonical_email(ok).as_deref(),
            Some(canonical)
        );
    }
    for bad in HOSTILE_EMAILS {
        assert!(Email::parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn roles_and_searches() {
    for ok in ["admin", "user", "editor_2", "a-b", &"r".repeat(32)] {
        assert!(Role::parse(ok).is_ok(), "{ok:?}");
    }
    for bad in [
        "",
        &"r".repeat(33),
        "admin'",
        "admin' OR '1'='1",
        "ad min",
        "rôle",
        "a;b",
        "a\n",
    ] {
        assert!(Role::parse(bad).is_err(), "accepted {bad:?}");
    }
    assert_eq!(Search::parse(" Al ").unwrap(), Some(Search("Al".into())));
    assert_eq!(Search::parse("  ").unwrap(), None);
    for bad in [
        "a%",
        "a_",
        "a'",
        "a\"",
        "a\\",
        "é",
        "a\tb",
        &"a".repeat(255),
    ] {
        assert!(Search::parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn sql_str_doubles_quotes() {
    assert_eq!(sql_str("a@x.test"), "'a@x.test'");
    assert_eq!(sql_str("it's"), "'it''s'");
    assert_eq!(
        sql_str("'; DROP TABLE users; --"),
        "'''; DROP TABLE users; --'"
    );
    assert_eq!(sql_str(""), "''");
}

#[test]
fn hostile_input_is_refused_before_any_sql_is_built_or_run() {
    let never = |a: &[String]| -> Result<Output, String> { panic!("wrangler run with {a:?}") };
    for bad in HOSTILE_EMAILS {
        for cmd in ["disable", "enable", "revoke"] {
            let r = run(&args(&[cmd, bad]), never);
            assert!(matches!(r, Err(Failure::Usage(_))), "{cmd} {bad:?}: {r:?}");
        }
        let r = run(&args(&["set-role", bad, "admin"]), never);
        assert!(
            matches!(r, Err(Failure::Usage(_))),
            "set-role {bad:?}: {r:?}"
        );
    }
    for role in ["admin'--", "admin'; DROP TABLE users; --", ""] {
        let r = run(&args(&["set-role", "a@x.test", role]), never);
        assert!(matches!(r, Err(Failure::Usage(_))), "role {role:?}: {r:?}");
    }
    for search in ["a'--", "%", "x' OR 1=1 --", "_"] {
        let r = run(&args(&["list", "--search", search]), never);
        assert!(
            matches!(r, Err(Failure::Usage(_))),
            "search {search:?}: {r:?}"
        );
    }
    let r = run(&args(&["list", "--database", "--remote"]), never);
    assert!(matches!(r, Err(Failure::Usage(_))));
    let r = run(&args(&["list", "--database", "DB;x"]), never);
    assert!(matches!(r, Err(Failure::Usage(_))));
    assert_eq!(
        run(&args(&["disable", "a'--@x.test"]), never)
            .unwrap_err()
            .exit_code(),
        2
    );
}

#[test]
fn argument_parsing() {
    assert_eq!(
        parsed(&["list"]).unwrap(),
        (
            Command::List {
                search: None,
                limit: 50
            },
            Target::default()
        )
    );
    let (cmd, target) = parsed(&[
        "list",
        "--search=Al",
        "--limit",
        "7",
        "--remote",
        "--database",
        "gatehouse",
        "--config",
        "site/wrangler.toml",
    ])
    .unwrap();
    assert_eq!(
        cmd,
        Command::List {
            search: Some(Search("Al".into())),
            limit: 7
        }
    );
    assert_eq!(
        target,
        Target {
            remote: true,
            database: "gatehouse".into(),
            config: Some("site/wrangler.toml".into()),
            persist_to: None
        }
    );
    let (cmd, target) = parsed(&[
        "--local",
        "--persist-to",
        "/tmp/s",
        "set-role",
        "A@x.test",
        "editor",
    ])
    .unwrap();
    assert_eq!(
        cmd,
        Command::Change {
            email: email("A@x.test"),
            action: Action::SetRole(Role("editor".into()))
        }
    );
    assert_eq!(target.persist_to.as_deref(), Some("/tmp/s"));
    assert!(!target.remote);
    for (sub, action) in [
        ("disable", Action::Disable),
        ("enable", Action::Enable),
        ("revoke", Action::Revoke),
    ] {
        assert_eq!(
            parsed(&[sub, "a@x.test"]).unwrap().0,
            Command::Change {
                email: email("a@x.test"),
                action
            }
        );
    }
    assert_eq!(parsed(&[]).unwrap().0, Command::Help);
    assert_eq!(parsed(&["disable", "--help"]).unwrap().0, Command::Help);
    assert_eq!(parsed(&["help"]).unwrap().0, Command::Help);

    for bad in [
        &["list", "--local", "--remote"][..],
        &["list", "--remote", "--persist-to", "x"],
        &["list", "--limit", "0"],
        &["list", "--limit", "10001"],
        &["list", "--limit", "-1"],
        &["list", "--limit", "many"],
        &["list", "--limit"],
        &["list", "--search"],
        &["list", "extra"],
        &["list", "--persist-to="],
        &["list", "--local=yes"],
        &["list", "--frobnicate"],
        &["disable"],
        &["disable", "a@x.test", "b@x.test"],
        &["disable", "a@x.test", "--search", "a"],
        &["set-role", "a@x.test"],
        &["set-role", "a@x.test", "admin", "more"],
        &["delete", "a@x.test"],
    ] {
        assert!(
            matches!(parsed(bad), Err(Failure::Usage(_))),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn list_sql_text() {
    assert_eq!(
        list_sql(None, 50),
        "SELECT u.email, u.name, u.role, u.created_at, u.disabled_at, \
         NULLIF(MAX(IFNULL(u.last_seen_at, 0), IFNULL((SELECT MAX(s.last_seen_at) \
         FROM sessions s WHERE s.user_id = u.id), 0)), 0) AS last_seen_at, \
         (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL \
         AND s.expires_at > unixepoch()) AS active_sessions \
         FROM users u ORDER BY u.email LIMIT 51"
    );
    let s = list_sql(Search::parse("Al").unwrap().as_ref(), 5);
    assert!(
        s.ends_with("FROM users u WHERE u.email LIKE 'Al%' ORDER BY u.email LIMIT 6"),
        "{s}"
    );
}

#[test]
fn change_sql_text() {
    let e = email("A@x.test");
    let lookup = "SELECT u.id, u.email, u.role, u.disabled_at, (SELECT COUNT(*) FROM sessions s \
         WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > unixepoch()) \
         AS active_sessions, (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND \
         s.revoked_at IS NULL) AS revocable_sessions FROM users u WHERE u.email = 'a@x.test'";
    let audit = |action: &str, target: &str| {
        format!(
            "INSERT INTO audit_log (actor_user_id, action, target, created_at) SELECT NULL, \
             '{action}', {target}, unixepoch() FROM users WHERE email = 'a@x.test'"
        )
    };
    let revoke = "UPDATE sessions SET revoked_at = unixepoch() WHERE user_id = \
         (SELECT id FROM users WHERE email = 'a@x.test') AND revoked_at IS NULL";
    let cases = [
        (
            Action::SetRole(Role("editor".into())),
            vec![
                lookup.to_owned(),
                audit("cli:set-role", "id || ' role=editor'"),
                "UPDATE users SET role = 'editor', updated_at = unixepoch() WHERE email = 'a@x.test'"
                    .into(),
            ],
        ),
        (
            Action::Disable,
            vec![
                lookup.to_owned(),
                audit("cli:disable", "id"),
                "UPDATE users SET disabled_at = COALESCE(disabled_at, unixepoch()), \
                 updated_at = unixepoch() WHERE email = 'a@x.test'"
                    .into(),
                revoke.into(),
            ],
        ),
        (
            Action::Enable,
            vec![
                lookup.to_owned(),
                audit("cli:enable", "id"),
                "UPDATE users SET disabled_at = NULL, updated_at = unixepoch() WHERE email = 'a@x.test'"
                    .into(),
            ],
        ),
        (
            Action::Revoke,
            vec![
                lookup.to_owned(),
                format!(
                    "{} AND EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = users.id AND \
                     s.revoked_at IS NULL)",
                    audit("cli:revoke", "id")
                ),
                revoke.into(),
            ],
        ),
    ];
    for (action, statements) in cases {
        assert_eq!(change_statements(&e, &action), statements, "{action:?}");
    }
}

/// `gatehouse users statements` lists what each command issues, for every command clap has, and
/// runs nothing.
#[test]
fn statements_lists_every_command() {
    let out = run(&["statements".to_owned()], |_| {
        panic!("`users statements` runs nothing")
    })
    .unwrap();
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let listed = listed.as_array().unwrap();
    let named = |command: &str| {
        listed
            .iter()
            .find(|e| e["command"] == command)
            .unwrap_or_else(|| panic!("no statements for {command}: {out}"))["statements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let commands = args::sql_commands();
    assert_eq!(
        commands,
        ["list", "set-role", "disable", "enable", "revoke"]
    );
    for command in &commands {
        assert!(!named(command).is_empty(), "{command}");
    }
    let email = email("someone@example.com");
    assert_eq!(named("list"), [list_sql(None, 50)]);
    assert_eq!(
        named("list --search"),
        [list_sql(Search::parse("some").unwrap().as_ref(), 50)]
    );
    assert_eq!(
        named("disable"),
        change_statements(&email, &Action::Disable)
    );
    assert_eq!(named("revoke"), change_statements(&email, &Action::Revoke));
    assert_eq!(listed.len(), 6, "{out}");
}

fn wrangler_says(stdout: &'static str) -> impl FnOnce(&[String]) -> Result<Output, String> {
    move |_| {
        Ok(Output {
            code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        })
    }
}

#[test]
fn list_runs_one_query_and_prints_a_table() {
    let mut seen = Vec::new();
    let out = run(
        &args(&["list", "--limit", "2", "--persist-to", "/s"]),
        |a| {
            seen = a.to_vec();
            Ok(Output {
                code: Some(0),
                stdout: r#"🌀 banner [x]
[{"results": [
  {"email": "a@x.test", "name": "Ann \u001b[31mRed", "role": "admin", "created_at": 1767225600,
   "disabled_at": null, "last_seen_at": 1767312000, "active_sessions": 2},
  {"email": "b@x.test", "name": null, "role": "user", "created_at": 1767225600,
   "disabled_at": 1767300000, "last_seen_at": null, "active_sessions": 0},
  {"email": "c@x.test", "name": "C", "role": "user", "created_at": 1, "disabled_at": null,
   "last_seen_at": null, "active_sessions": 0}
], "success": true, "meta": {}}]"#
                    .into(),
                stderr: String::new(),
            })
        },
    )
    .unwrap();
    assert_eq!(
        seen[..7],
        [
            "d1",
            "execute",
            "DB",
            "--local",
            "--json",
            "--persist-to",
            "/s"
        ]
    );
    assert_eq!(seen[7], "--command");
    assert_eq!(seen[8], list_sql(None, 2));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("EMAIL     NAME"), "{out}");
    assert_eq!(
        lines[1],
        "a@x.test  Ann ?[31mRed  admin  2026-01-01  2026-01-02 00:00                2  no"
    );
    assert_eq!(
        lines[2],
        "b@x.test  -             user   2026-01-01  -                               0  yes"
    );
    assert!(lines[3].contains("more exist"), "{out}");
    assert!(!out.contains("c@x.test"));

    let none = run(
        &args(&["list", "--search", "zz"]),
        wrangler_says(r#"[{"results": [], "success": true}]"#),
    )
    .unwrap();
    assert!(none.contains("\"zz\""), "{none}");
}

#[test]
fn changes_report_what_they_did_and_unknown_emails_exit_1() {
    let before = r#"[
          {"results": [{"id": "u1", "email": "a@x.test", "role": "user", "disabled_at": null, "active_sessions": 3}], "success": true},
          {"results": [], "success": true}, {"results": [], "success": true}, {"results": [], "success": true}
        ]"#;
    let out = run(&args(&["disable", "A@X.test"]), wrangler_says(before)).unwrap();
    assert!(out.contains("a@x.test (user u1) is now disabled in the local D1 database DB; 3 active sessions revoked"), "{out}");
    assert!(out.contains("SESSION_CHECK_INTERVAL"), "{out}");
    let three = r#"[
          {"results": [{"id": "u1", "email": "a@x.test", "role": "admin", "disabled_at": null, "active_sessions": 1, "revocable_sessions": 2}], "success": true},
          {"results": [], "success": true}, {"results": [], "success": true}
        ]"#;
    let out = run(
        &args(&["set-role", "a@x.test", "editor", "--remote"]),
        wrangler_says(three),
    )
    .unwrap();
    assert!(
        out.contains("now has role editor (was admin) in the remote D1 database DB"),
        "{out}"
    );
    assert!(
        out.contains("next renewal") && out.contains("ADMIN_EMAILS"),
        "{out}"
    );
    assert!(!out.contains("local database"), "{out}");
    let out = run(&args(&["revoke", "a@x.test"]), wrangler_says(three)).unwrap();
    assert!(
        out.contains("1 active session of a@x.test (user u1) revoked"),
        "{out}"
    );
    assert!(out.contains("SESSION_CHECK_INTERVAL"), "{out}");
    let out = run(&args(&["enable", "a@x.test"]), wrangler_says(three)).unwrap();
    assert!(out.contains("was not disabled"), "{out}");

    // Nothing left to revoke: exit 1, nothing changed (the audit row's condition is the same).
    let none = r#"[
          {"results": [{"id": "u1", "email": "a@x.test", "role": "user", "disabled_at": null, "active_sessions": 0, "revocable_sessions": 0}], "success": true},
          {"results": [], "success": true}, {"results": [], "success": true}
        ]"#;
    let e = run(&args(&["revoke", "a@x.test"]), wrangler_says(none)).unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(
        e.message().contains("a@x.test (user u1) has no live sessions in the local D1 database DB: nothing changed, nothing logged"),
        "{e:?}"
    );

    let unknown = r#"[{"results": [], "success": true}, {"results": [], "success": true}, {"results": [], "success": true}]"#;
    let e = run(&args(&["revoke", "nobody@x.test"]), wrangler_says(unknown)).unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(
        e.message().contains("no user with email nobody@x.test"),
        "{e:?}"
    );
    // Fewer results than statements: something is off, never "done".
    let e = run(&args(&["disable", "a@x.test"]), wrangler_says(three)).unwrap_err();
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn wrangler_failures_exit_2_with_its_words() {
    let e = run(&args(&["list"]), |_| {
        Ok(Output {
            code: Some(1),
            stdout: String::new(),
            stderr: "✘ [ERROR] Not logged in.".into(),
        })
    })
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.message().contains("Not logged in."), "{e:?}");
    let e = run(&args(&["list"]), |_| Err("could not run npx".into())).unwrap_err();
    assert_eq!(e, Failure::Wrangler("could not run npx".into()));
    let e = run(&args(&["list"]), wrangler_says("Oops, not JSON")).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.message().contains("Oops"), "{e:?}");
}

#[test]
fn dates_are_utc() {
    assert_eq!(date(Some(0)), "1970-01-01");
    assert_eq!(date(Some(951_782_400)), "2000-02-29");
    assert_eq!(date_time(Some(1_767_225_599)), "2025-12-31 23:59");
    assert_eq!(date(Some(-5)), "-5");
    assert_eq!(date(None), "-");
    assert_eq!(date_time(Some(i64::MAX)), i64::MAX.to_string());
}
