//! The store contract against real D1 (cargo feature `contract`, never in the release bundle):
//! `tests/e2e/store_contract.test.mjs` serves this export from a small entry module under
//! `wrangler dev` with freshly migrated local D1 and checks that D1 passes every check of
//! [`crate::store::contract`], as the in-memory store does natively. The same run hands the
//! test every distinct SQL text the D1 store prepared, for its query plan check.

#![expect(
    unreachable_pub,
    reason = "wasm exports: reached from JavaScript, not from Rust"
)]

use std::cell::RefCell;

use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;

use super::d1::D1Store;
use crate::store::contract;
use crate::store::contract::coverage::Coverage;

thread_local! {
    /// Each distinct SQL text `D1Store::statement_in` prepared, in first-seen order.
    static PREPARED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Called by `D1Store::statement_in` for every statement it prepares.
pub(super) fn record(sql: &str) {
    PREPARED.with_borrow_mut(|seen| {
        if !seen.iter().any(|s| s == sql) {
            seen.push(sql.to_owned());
        }
    });
}

/// Runs the contract suite on the `DB` binding of `env` (an empty, migrated database) and
/// returns, as JSON, `{"checks": [{"check": NAME, "ok": BOOL, "error": TEXT|null}, …],
/// "statements": [SQL, …], "missing_shapes": [SHAPE, …]}`: the checks' results, every
/// distinct SQL text prepared during the run, and the call shapes the suite never made
/// ([`crate::store::contract::coverage`]; none, or the statements are not all of them).
#[wasm_bindgen(js_name = storeContract)]
pub async fn store_contract(env: JsValue) -> String {
    let env: worker::Env = wasm_bindgen::JsCast::unchecked_into(env);
    let store = D1Store::new(&env, false);
    let covered = Coverage::new(&store);
    PREPARED.with_borrow_mut(Vec::clear);
    let results = contract::run(&covered).await;
    let checks: Vec<serde_json::Value> = results
        .into_iter()
        .map(|(check, result)| {
            serde_json::json!({ "check": check, "ok": result.is_ok(), "error": result.err() })
        })
        .collect();
    let mut missing: Vec<String> = covered.missing().into_iter().map(str::to_owned).collect();
    missing.extend(
        covered
            .unlisted()
            .into_iter()
            .map(|s| format!("{s} (not in SHAPES)")),
    );
    serde_json::json!({
        "checks": checks,
        "statements": PREPARED.with_borrow(Clone::clone),
        "missing_shapes": missing,
    })
    .to_string()
}

/// The runtime's Ed25519 check (`runtime::webcrypto`, WebCrypto) beside the pure-Rust one, in
/// real workerd: for each token of `tokens_json` (a JSON array of strings) under the session
/// key set `keys_json`, `{"webcrypto": BOOL, "native": BOOL}`, or `null` when the token needs no
/// Ed25519 check or its header is refused. The hot path trusts the first where native tests
/// exercise the second; `tests/e2e/store_contract.test.mjs` asserts they agree.
#[wasm_bindgen(js_name = ed25519Checks)]
pub async fn ed25519_checks(keys_json: String, tokens_json: String) -> String {
    let Ok(keys) = crate::session::keys::KeySet::from_jwk_set(&keys_json) else {
        return "\"bad key set\"".to_owned();
    };
    let tokens: Vec<String> = serde_json::from_str(&tokens_json).unwrap_or_default();
    let mut out = Vec::new();
    for token in &tokens {
        let Ok(Some(check)) = keys.ed25519_check(crate::session::token::SESSION_TYP, token) else {
            out.push(serde_json::Value::Null);
            continue;
        };
        let webcrypto = match super::webcrypto::verify(&check).await {
            Ok(verified) => serde_json::Value::Bool(verified),
            Err(e) => serde_json::Value::String(format!("{e:?}")),
        };
        out.push(serde_json::json!({ "webcrypto": webcrypto, "native": check.verify_natively() }));
    }
    serde_json::Value::Array(out).to_string()
}
