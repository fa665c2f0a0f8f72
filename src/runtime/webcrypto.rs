//! Signature checks with the runtime's WebCrypto (`crypto.subtle.verify`):
//! - Ed25519, for EdDSA session tokens new to the isolate on the hot path: ≈ 80 µs for the whole
//!   hot-path call in workerd, against ≈ 250–450 µs for the pure-Rust verifier alone in wasm
//!   (docs/performance.md);
//! - RS256, for Google's ID tokens and security event tokens ([`WebCryptoRs256`], the
//!   `oidc::rs256` seam): ≈ 30 µs instead of ≈ 1 ms, and no RSA code in the wasm.
//!
//! Only the signature math happens here; which key, which bytes and what the claims are worth
//! is decided in pure Rust (`session::keys::Ed25519Check`, `oidc::rs256::Rs256Check`), as for
//! every other token.
//!
//! Security: the key is always one configured in `SESSION_KEYS` (named by `kid`, checked in
//! `KeySet::ed25519_check`), imported as Ed25519 for `verify` only. Should WebCrypto and the
//! pure-Rust verifier ever differ on an edge case of Ed25519 (non-canonical encodings), a
//! signature either accepts still covers this exact header and payload under our key: no
//! claim can be changed that way. `tests/e2e/store_contract.test.mjs` checks that they agree.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen_futures::JsFuture;

use crate::oidc::jwks::RsaKey;
use crate::oidc::rs256::{Rs256Check, Rs256Verifier};
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

    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = importKey, catch)]
    fn import_jwk(
        format: &str,
        key: &Object,
        algorithm: &Object,
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
    // The provider's RSA keys met so far (Google publishes two or three at a time).
    static RSA_KEYS: RefCell<Vec<(RsaKey, JsValue)>> = const { RefCell::new(Vec::new()) };
}

/// Most RSA keys kept imported; past it the list starts again (keys rotate every few days).
const MAX_RSA_KEYS: usize = 8;

/// The `CryptoKey` imported earlier for `key`, if any.
fn imported<K: PartialEq>(
    cache: &'static std::thread::LocalKey<RefCell<Vec<(K, JsValue)>>>,
    key: &K,
) -> Option<JsValue> {
    cache.with_borrow(|keys| {
        keys.iter()
            .find(|(k, _)| k == key)
            .map(|(_, js)| js.clone())
    })
}

async fn public_key(raw: &[u8; 32]) -> Result<JsValue, JsValue> {
    if let Some(key) = imported(&KEYS, raw) {
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

/// RS256 through WebCrypto (RSASSA-PKCS1-v1_5 with SHA-256), for `App`'s `rs256` seam.
pub(super) struct WebCryptoRs256;

impl Rs256Verifier for WebCryptoRs256 {
    fn verify<'a>(&'a self, check: &'a Rs256Check) -> Pin<Box<dyn Future<Output = bool> + 'a>> {
        Box::pin(async move {
            rs256(check).await.unwrap_or_else(|_| {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    let line = serde_json::json!({ "level": "error", "event": "webcrypto_unavailable", "reason": "RS256 key import or verify failed" });
                    worker::console_log!("{line}");
                });
                false
            })
        })
    }
}

fn object(entries: &[(&str, JsValue)]) -> Result<Object, JsValue> {
    let o = Object::new();
    for (name, value) in entries {
        Reflect::set(&o, &JsValue::from_str(name), value)?;
    }
    Ok(o)
}

fn rs256_algorithm() -> Result<Object, JsValue> {
    object(&[
        ("name", JsValue::from_str("RSASSA-PKCS1-v1_5")),
        ("hash", JsValue::from_str("SHA-256")),
    ])
}

async fn rsa_key(key: &RsaKey) -> Result<JsValue, JsValue> {
    if let Some(found) = imported(&RSA_KEYS, key) {
        return Ok(found);
    }
    let jwk = object(&[
        ("kty", JsValue::from_str("RSA")),
        (
            "n",
            JsValue::from_str(&URL_SAFE_NO_PAD.encode(&key.modulus)),
        ),
        (
            "e",
            JsValue::from_str(&URL_SAFE_NO_PAD.encode(&key.exponent)),
        ),
        ("alg", JsValue::from_str("RS256")),
    ])?;
    let usages = Array::of1(&JsValue::from_str("verify"));
    let imported = JsFuture::from(import_jwk(
        "jwk",
        &jwk,
        &rs256_algorithm()?,
        false,
        &usages,
    )?)
    .await?;
    RSA_KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if keys.len() >= MAX_RSA_KEYS {
            keys.clear();
        }
        keys.push((key.clone(), imported.clone()));
    });
    Ok(imported)
}

async fn rs256(check: &Rs256Check) -> Result<bool, JsValue> {
    let key = rsa_key(&check.key).await?;
    let signature = Uint8Array::from(check.signature.as_slice());
    let data = Uint8Array::from(check.message.as_bytes());
    let ok = JsFuture::from(subtle_verify("RSASSA-PKCS1-v1_5", &key, &signature, &data)?).await?;
    Ok(ok.as_bool() == Some(true))
}
