//! Ed25519 signature checks with the runtime's WebCrypto (`crypto.subtle.verify`): ≈ 45–95 µs
//! in workerd against ≈ 450 µs for the pure-Rust verifier in wasm (docs/performance.md). Only
//! the signature math happens here; which key, which bytes and what the claims are worth is
//! decided in `session::keys` (`Ed25519Check`), as for every other token.
//!
//! Security: the key is always one configured in `SESSION_KEYS` (named by `kid`, checked in
//! `KeySet::ed25519_check`), imported as Ed25519 for `verify` only. Should WebCrypto and the
//! pure-Rust verifier ever differ on an edge case of Ed25519 (non-canonical encodings), a
//! signature either accepts still covers this exact header and payload under our key: no
//! claim can be changed that way. `tests/e2e/store_contract.test.mjs` checks that they agree.

use std::cell::RefCell;

use js_sys::{Array, Promise, Uint8Array};
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen_futures::JsFuture;

use crate::session::keys::Ed25519Check;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = importKey, catch)]
    fn import_key(
        format: &str,
        key: &Uint8Array,
        algorithm: &str,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = verify, catch)]
    fn subtle_verify(
        algorithm: &str,
        key: &JsValue,
        signature: &Uint8Array,
        data: &Uint8Array,
    ) -> Result<Promise, JsValue>;
}

thread_local! {
    // The configured public keys, imported once per isolate (a handful at most: rotation).
    static KEYS: RefCell<Vec<([u8; 32], JsValue)>> = const { RefCell::new(Vec::new()) };
}

async fn public_key(raw: &[u8; 32]) -> Result<JsValue, JsValue> {
    if let Some(key) = KEYS.with(|keys| {
        keys.borrow()
            .iter()
            .find(|(k, _)| k == raw)
            .map(|(_, key)| key.clone())
    }) {
        return Ok(key);
    }
    let usages = Array::of1(&JsValue::from_str("verify"));
    let key = JsFuture::from(import_key(
        "raw",
        &Uint8Array::from(&raw[..]),
        "Ed25519",
        false,
        &usages,
    )?)
    .await?;
    KEYS.with(|keys| keys.borrow_mut().push((*raw, key.clone())));
    Ok(key)
}

/// Whether the signature of `check` verifies; an error if WebCrypto could not tell (no
/// Ed25519 support, a key it refuses).
pub(super) async fn verify(check: &Ed25519Check) -> Result<bool, JsValue> {
    let key = public_key(&check.public_key).await?;
    // Copies, not views into wasm memory: the promise outlives this call's borrows.
    let signature = Uint8Array::from(check.signature.as_slice());
    let data = Uint8Array::from(check.message.as_bytes());
    let ok = JsFuture::from(subtle_verify("Ed25519", &key, &signature, &data)?).await?;
    Ok(ok.as_bool() == Some(true))
}
