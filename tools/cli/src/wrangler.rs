//! Running SQL on D1 through `wrangler d1 execute … --json --command "<SQL>"`, as a child process.
//!
//! The SQL is handed to wrangler as one argument (no shell in between). Wrangler splits it at `;`
//! and runs the statements in order as one D1 batch; `--json` prints one entry per statement:
//! `[ { "results": [ {row}, … ], "success": true, "meta": { … } }, … ]`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

/// One row of a result: column name → value.
pub type Row = Map<String, Value>;

/// Which D1 database, and where: the `D1 options` of every `users` command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub remote: bool,
    /// Binding or database name, as `wrangler d1 execute <DB>` takes it.
    pub database: String,
    /// `--config PATH` (wrangler.toml), passed on as given.
    pub config: Option<String>,
    /// `--persist-to DIR` (local state), passed on as given; only with `--local`.
    pub persist_to: Option<String>,
}

impl Default for Target {
    fn default() -> Self {
        Self {
            remote: false,
            database: "DB".into(),
            config: None,
            persist_to: None,
        }
    }
}

impl Target {
    /// Where the change lands, for messages: "local D1 database DB".
    pub fn describe(&self) -> String {
        let place = if self.remote { "remote" } else { "local" };
        format!("{place} D1 database {}", self.database)
    }

    /// The arguments after `wrangler`.
    pub fn args(&self, sql: &str) -> Vec<String> {
        let mut args: Vec<String> = vec!["d1".into(), "execute".into(), self.database.clone()];
        args.push(if self.remote { "--remote" } else { "--local" }.into());
        args.push("--json".into());
        if let Some(dir) = &self.persist_to {
            args.push("--persist-to".into());
            args.push(dir.clone());
        }
        if let Some(config) = &self.config {
            args.push("--config".into());
            args.push(config.clone());
        }
        args.push("--command".into());
        args.push(sql.into());
        args
    }
}

/// What a finished wrangler process left behind.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// The exit code; `None` when it ended by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// How a wrangler binary is started: the program and the arguments that come before ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub program: PathBuf,
    pub prefix: Vec<String>,
}

#[cfg(windows)]
const BIN: &str = "node_modules/.bin/wrangler.cmd";
#[cfg(not(windows))]
const BIN: &str = "node_modules/.bin/wrangler";
#[cfg(windows)]
const NPX: &str = "npx.cmd";
#[cfg(not(windows))]
const NPX: &str = "npx";

const CONFIG_FILES: [&str; 3] = ["wrangler.toml", "wrangler.jsonc", "wrangler.json"];

/// `node_modules/.bin/wrangler` in `cwd`, else in the nearest directory above it that holds a
/// wrangler configuration (the project root), else `npx wrangler`.
pub fn locate(cwd: &Path) -> Program {
    let here = cwd.join(BIN);
    let found = if here.is_file() {
        Some(here)
    } else {
        cwd.ancestors()
            .find(|dir| CONFIG_FILES.iter().any(|f| dir.join(f).is_file()))
            .map(|root| root.join(BIN))
            .filter(|bin| bin.is_file())
    };
    match found {
        Some(program) => Program {
            program,
            prefix: Vec::new(),
        },
        None => Program {
            program: NPX.into(),
            prefix: vec!["wrangler".into()],
        },
    }
}

/// Runs wrangler with `args`: stdin closed (a prompt fails instead of waiting unseen), stdout
/// and stderr captured.
pub fn run(program: &Program, args: &[String]) -> Result<Output, String> {
    let out = Command::new(&program.program)
        .args(&program.prefix)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            format!(
                "could not run {} ({e}); install wrangler in the project (npm install --save-dev wrangler)",
                program.program.display()
            )
        })?;
    Ok(Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// How often a statement refused with `SQLITE_BUSY` is tried in all.
pub const BUSY_ATTEMPTS: u32 = 6;

/// Runs `run` again while wrangler fails with `SQLITE_BUSY`, waiting 100 ms, 200 ms, … between
/// attempts (3.1 s in all). A local database is one SQLite file that `wrangler dev` holds open
/// too, so a command can meet its lock for a moment. Trying again is safe: a refused batch
/// changed nothing (wrangler runs `--command` as one D1 batch, a transaction).
pub fn retry_busy(
    mut run: impl FnMut() -> Result<Output, String>,
    mut sleep: impl FnMut(std::time::Duration),
) -> Result<Output, String> {
    let mut attempt = 1;
    loop {
        let out = run()?;
        let busy = out.code != Some(0)
            && (out.stdout.contains("SQLITE_BUSY") || out.stderr.contains("SQLITE_BUSY"));
        if !busy || attempt >= BUSY_ATTEMPTS {
            return Ok(out);
        }
        sleep(std::time::Duration::from_millis(100 << (attempt - 1)));
        attempt += 1;
    }
}

/// The first JSON value in `text` that starts at one of `openers` and parses, skipping any
/// banner or warning lines before it (they may hold brackets of their own, e.g. `[WARNING]`).
fn first_json(text: &str, openers: &[char], accept: impl Fn(&Value) -> bool) -> Option<Value> {
    text.match_indices(openers).find_map(|(i, _)| {
        let mut values = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
        match values.next() {
            Some(Ok(v)) if accept(&v) => Some(v),
            _ => None,
        }
    })
}

/// The error text wrangler prints as JSON (`{"error": {"text": …}}`) with `--json`, if any.
fn json_error(stdout: &str) -> Option<String> {
    let v = first_json(stdout, &['{'], |v| v.get("error").is_some())?;
    let e = v.get("error")?;
    let text = e
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| e.to_string());
    let notes: Vec<&str> = e
        .get("notes")
        .and_then(Value::as_array)
        .map(|n| {
            n.iter()
                .filter_map(|n| n.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    Some(if notes.is_empty() {
        text
    } else {
        format!("{text} ({})", notes.join("; "))
    })
}

/// The rows of each statement, from a finished wrangler run. Any failure (non-zero exit, no
/// JSON, a statement that did not succeed) is an error message holding what wrangler said.
pub fn results(out: &Output) -> Result<Vec<Vec<Row>>, String> {
    if out.code != Some(0) {
        let status = match out.code {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".into(),
        };
        let mut msg = format!("wrangler failed ({status})");
        if let Some(e) = json_error(&out.stdout) {
            msg.push_str(&format!(": {e}"));
        } else if !out.stdout.trim().is_empty() {
            msg.push_str(&format!("\nwrangler stdout:\n{}", out.stdout.trim_end()));
        }
        if !out.stderr.trim().is_empty() {
            msg.push_str(&format!("\nwrangler stderr:\n{}", out.stderr.trim_end()));
        }
        return Err(msg);
    }
    parse(&out.stdout).map_err(|e| {
        let mut msg = e;
        if !out.stderr.trim().is_empty() {
            msg.push_str(&format!("\nwrangler stderr:\n{}", out.stderr.trim_end()));
        }
        msg
    })
}

/// Parses `wrangler d1 execute --json` output: an optional banner, then
/// `[ { "results": [ … ], "success": true, … }, … ]`, one entry per statement.
pub fn parse(stdout: &str) -> Result<Vec<Vec<Row>>, String> {
    let is_result_list = |v: &Value| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .all(|e| e.get("results").is_some() || e.get("success").is_some())
        })
    };
    let Some(Value::Array(entries)) = first_json(stdout, &['['], is_result_list) else {
        if let Some(e) = json_error(stdout) {
            return Err(format!("wrangler: {e}"));
        }
        let shown: String = stdout.trim().chars().take(2000).collect();
        return Err(format!(
            "wrangler printed no JSON result list; its output:\n{shown}"
        ));
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            if entry.get("success").and_then(Value::as_bool) == Some(false) {
                let why = entry
                    .get("error")
                    .map(|e| {
                        e.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| e.to_string())
                    })
                    .unwrap_or_else(|| "no reason given".into());
                return Err(format!("statement {} failed: {why}", i + 1));
            }
            match entry.get("results") {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(rows)) => rows
                    .iter()
                    .map(|r| {
                        r.as_object()
                            .cloned()
                            .ok_or_else(|| format!("statement {}: a row is not an object", i + 1))
                    })
                    .collect(),
                Some(_) => Err(format!("statement {}: \"results\" is not a list", i + 1)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> Output {
        Output {
            code: Some(1),
            stdout: String::new(),
            stderr: "✘ [ERROR] database is locked: SQLITE_BUSY".into(),
        }
    }

    fn ok() -> Output {
        Output {
            code: Some(0),
            stdout: "[{\"results\":[],\"success\":true}]".into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn a_busy_database_is_tried_again_until_it_answers() {
        let mut answers = vec![busy(), busy(), ok()].into_iter();
        let mut waits = Vec::new();
        let out = retry_busy(|| Ok(answers.next().unwrap()), |d| waits.push(d)).unwrap();
        assert_eq!(out.code, Some(0));
        assert_eq!(waits, [100, 200].map(std::time::Duration::from_millis));
    }

    #[test]
    fn a_database_busy_for_too_long_is_reported_and_other_errors_at_once() {
        let mut calls = 0;
        let out = retry_busy(
            || {
                calls += 1;
                Ok(busy())
            },
            |_| {},
        )
        .unwrap();
        assert_eq!((calls, out.code), (BUSY_ATTEMPTS, Some(1)));
        assert!(results(&out).unwrap_err().contains("SQLITE_BUSY"));

        let mut calls = 0;
        let other = Output {
            stderr: "no such table: users: SQLITE_ERROR".into(),
            ..busy()
        };
        retry_busy(
            || {
                calls += 1;
                Ok(other.clone())
            },
            |_| panic!("no wait"),
        )
        .unwrap();
        assert_eq!(calls, 1);
    }

    #[test]
    fn args_for_local_and_remote() {
        let local = Target {
            persist_to: Some("/tmp/state".into()),
            config: Some("site/wrangler.toml".into()),
            ..Target::default()
        };
        assert_eq!(
            local.args("SELECT 1"),
            [
                "d1",
                "execute",
                "DB",
                "--local",
                "--json",
                "--persist-to",
                "/tmp/state",
                "--config",
                "site/wrangler.toml",
                "--command",
                "SELECT 1"
            ]
        );
        let remote = Target {
            remote: true,
            database: "gatehouse".into(),
            ..Target::default()
        };
        assert_eq!(
            remote.args("SELECT 1"),
            [
                "d1",
                "execute",
                "gatehouse",
                "--remote",
                "--json",
                "--command",
                "SELECT 1"
            ]
        );
    }

    const SAMPLE: &str = r#"[
  { "results": [], "success": true, "meta": { "duration": 1 } },
  { "results": [ { "id": "u1", "email": "a@x.test", "n": 2, "t": null } ], "success": true, "meta": { "duration": 0 } }
]"#;

    #[test]
    fn parses_one_entry_per_statement() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r[0].is_empty());
        assert_eq!(r[1][0]["email"], "a@x.test");
        assert_eq!(r[1][0]["n"], 2);
        assert!(r[1][0]["t"].is_null());
    }

    #[test]
    fn skips_a_banner_even_one_with_brackets() {
        let text = format!(
            " ⛅️ wrangler 4.86.0\n───────────────\n▲ [WARNING] something [about] this\n\n{SAMPLE}\n"
        );
        assert_eq!(parse(&text).unwrap(), parse(SAMPLE).unwrap());
    }

    #[test]
    fn failures_are_errors_with_wranglers_words() {
        assert!(parse("").is_err());
        assert!(parse("not json at all").is_err());
        assert!(parse("[1, 2").is_err());
        let e =
            parse("{\n  \"error\": {\n    \"text\": \"no such table: nope: SQLITE_ERROR\"\n  }\n}")
                .unwrap_err();
        assert!(e.contains("no such table"), "{e}");
        let e = parse(r#"[{"results": [], "success": false, "error": "boom"}]"#).unwrap_err();
        assert!(e.contains("boom"), "{e}");
        assert!(parse(r#"[{"results": "x", "success": true}]"#).is_err());
        assert!(parse(r#"[{"results": [1], "success": true}]"#).is_err());

        let out = Output {
            code: Some(1),
            stdout:
                "{\"error\": {\"text\": \"Couldn't find a D1 DB with the name or binding 'X'\"}}"
                    .into(),
            stderr: "✘ [ERROR] Couldn't find a D1 DB\n".into(),
        };
        let e = results(&out).unwrap_err();
        assert!(
            e.contains("exit code 1") && e.contains("Couldn't find a D1 DB with the name"),
            "{e}"
        );
        assert!(e.contains("wrangler stderr:\n✘ [ERROR]"), "{e}");
        let out = Output {
            code: None,
            ..Output::default()
        };
        assert!(results(&out).unwrap_err().contains("signal"));
        let out = Output {
            code: Some(0),
            stdout: "done".into(),
            stderr: "odd".into(),
        };
        let e = results(&out).unwrap_err();
        assert!(e.contains("no JSON") && e.contains("odd"), "{e}");
    }

    #[test]
    fn locates_wrangler_in_the_project_root_or_falls_back_to_npx() {
        let base = std::env::temp_dir().join(format!(
            "gatehouse-cli-locate-{}-{}",
            std::process::id(),
            line!()
        ));
        let root = base.join("site");
        let sub = root.join("a").join("b");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(locate(&sub).prefix, ["wrangler"], "no project: npx");
        std::fs::write(root.join("wrangler.toml"), "name = \"x\"\n").unwrap();
        let bin = root.join(BIN);
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, "").unwrap();
        assert_eq!(
            locate(&sub),
            Program {
                program: bin.clone(),
                prefix: vec![]
            }
        );
        let here = sub.join(BIN);
        std::fs::create_dir_all(here.parent().unwrap()).unwrap();
        std::fs::write(&here, "").unwrap();
        assert_eq!(locate(&sub).program, here, "the current directory first");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
