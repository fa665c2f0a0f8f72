//! The store contract against real D1 (cargo feature `contract`, never in the release bundle):
//! `tests/e2e/store_contract.test.mjs` serves this export from a small entry module under
//! `wrangler dev` with freshly migrated local D1 and checks that D1 passes every check of
//! [`crate::store::contract`], as the in-memory store does natively.

#![expect(
    unreachable_pub,
    reason = "wasm exports: reached from JavaScript, not from Rust"
)]

use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;

use super::d1::D1Store;
use crate::store::contract;

/// Runs the contract suite on the `DB` binding of `env` (an empty, migrated database) and
/// returns `[{"check": NAME, "ok": BOOL, "error": TEXT|null}, …]` as JSON.
#[wasm_bindgen(js_name = storeContract)]
pub async fn store_contract(env: JsValue) -> String {
    let env: worker::Env = wasm_bindgen::JsCast::unchecked_into(env);
    let store = D1Store::new(&env, false);
    let results = contract::run(&store).await;
    let rows: Vec<serde_json::Value> = results
        .into_iter()
        .map(|(check, result)| {
            serde_json::json!({ "check": check, "ok": result.is_ok(), "error": result.err() })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}
