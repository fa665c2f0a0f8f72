//! The exports `js/entry.mjs` calls on the hot path: `gateCheck` (and `gateCheckSignature`
//! for an EdDSA token new to the isolate), and the rules it applies to what it forwards
//! (identity header prefix, cache headers), all decided in `app` so that the entry and the
//! full route never disagree.

#![expect(
    unreachable_pub,
    reason = "wasm exports: reached from JavaScript, not from Rust"
)]
#![expect(
    clippy::cast_precision_loss,
    reason = "Unix seconds cross to JS as f64, far inside its exact range"
)]

use std::cell::RefCell;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::Env;

use super::{Console, SESSIONS, config, now, panic_hook, webcrypto};
use crate::app::{self, Deferred, Log};
use crate::session::keys::Ed25519Check;

thread_local! {
    // The Ed25519 check `gateCheck` asked for, until `gateCheckSignature` takes it: js/entry.mjs
    // calls the two back to back, with no await between, so no other request can come between.
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// A hot-path decision waiting for its Ed25519 signature check (WebCrypto is asynchronous).
struct Pending {
    url: String,
    cookie: Option<String>,
    check: Ed25519Check,
}

/// `gateCheck`'s answer for "check the signature first": js/entry.mjs then awaits
/// `gateCheckSignature`, which gives one of the other answers.
const CHECK_SIGNATURE: f64 = -1.0;

/// The hot path for `js/entry.mjs`: 0 = take the full route, 1 = public (forward as is),
/// -1 = an Ed25519 token new to this isolate (call `gateCheckSignature` at once, which checks
/// its signature with WebCrypto and gives one of the other answers), any other value = a
/// current session admitted (forward, mark private) until that Unix time in seconds (always far
/// above 1), after which the same inputs are no longer admitted.
/// Synchronous, no I/O; handed only the request's URL and `Cookie` header, so a request costs
/// one URL parse and one signature check (none for a token this isolate verified before), and
/// no `Request` round trip.
#[wasm_bindgen(js_name = gateCheck)]
pub fn gate_check(env: JsValue, url: String, cookie: Option<String>) -> f64 {
    panic_hook();
    let env: Env = env.unchecked_into();
    let parsed = config(&env);
    let Ok(config) = parsed.as_ref() else {
        return 0.0;
    };
    // The isolate's memory of verified tokens (`session::verified`); the full route, when it
    // runs, has let go of it (it is only held within synchronous steps).
    let decided = SESSIONS.with(|sessions| match sessions.try_borrow_mut() {
        Ok(mut memory) => app::quick_decision_deferred(
            &mut memory.verified,
            config,
            &url,
            cookie.as_deref(),
            now(),
            None,
        ),
        Err(_) => Deferred::Decided(app::quick_decision(config, &url, cookie.as_deref(), now())),
    });
    match decided {
        Deferred::Decided(quick) => verdict(quick),
        Deferred::Check(check) => {
            PENDING.with(|p| *p.borrow_mut() = Some(Pending { url, cookie, check }));
            CHECK_SIGNATURE
        }
    }
}

/// After `gateCheck` answered -1: checks that token's Ed25519 signature with WebCrypto, then
/// decides again with the proof (the token is then remembered like any verified token).
/// Resolves to 0, 1 or an admitted-until time, as `gateCheck`; never to -1. A signature that
/// does not verify, or a WebCrypto failure, gives 0: the full route checks the token again in
/// pure Rust and answers (and logs) as for any refused token.
#[wasm_bindgen(js_name = gateCheckSignature)]
pub fn gate_check_signature(env: JsValue) -> js_sys::Promise {
    // Taken now, synchronously: the future below runs later, when another request may have
    // left its own check here.
    let pending = PENDING.with(|p| p.borrow_mut().take());
    wasm_bindgen_futures::future_to_promise(async move {
        let answer = match pending {
            Some(pending) => checked_verdict(env, pending).await,
            None => 0.0,
        };
        Ok(JsValue::from_f64(answer))
    })
}

async fn checked_verdict(env: JsValue, pending: Pending) -> f64 {
    let verified = webcrypto::verify(&pending.check).await.unwrap_or_else(|_| {
        // Once per isolate: the full route (pure Rust) still decides every such request.
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let line = serde_json::json!({ "level": "warn", "event": "webcrypto_unavailable", "reason": "Ed25519 verify failed; tokens are checked in Rust" });
            Console.line(&line.to_string());
        });
        false
    });
    if !verified {
        return 0.0;
    }
    let env: Env = env.unchecked_into();
    let parsed = config(&env);
    let Ok(config) = parsed.as_ref() else {
        return 0.0;
    };
    let proof = pending.check.passed();
    let quick = SESSIONS.with(|sessions| match sessions.try_borrow_mut() {
        Ok(mut memory) => match app::quick_decision_deferred(
            &mut memory.verified,
            config,
            &pending.url,
            pending.cookie.as_deref(),
            now(),
            Some(&proof),
        ) {
            Deferred::Decided(quick) => quick,
            Deferred::Check(_) => app::Quick::Full,
        },
        Err(_) => app::Quick::Full,
    });
    verdict(quick)
}

/// `gateCheck`'s number for a verdict.
fn verdict(quick: app::Quick) -> f64 {
    match quick {
        app::Quick::Public => 1.0,
        // Unix seconds fit an f64 exactly; a time at or below 1 cannot come from a token that
        // is current now (`now` is past 1970), but stay on the safe side: full route.
        app::Quick::Admitted { until } if until.secs() > 1 => until.secs() as f64,
        app::Quick::Full | app::Quick::Admitted { .. } => 0.0,
    }
}

/// The prefix of identity headers (see [`app::IDENTITY_HEADER_PREFIX`]), for js/filter.mjs.
#[wasm_bindgen(js_name = identityHeaderPrefix)]
pub fn identity_header_prefix() -> String {
    app::IDENTITY_HEADER_PREFIX.to_owned()
}

/// `Cache-Control` for a protected response (see [`app::private_cache_control`]).
#[wasm_bindgen(js_name = privateCacheControl)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "wasm-bindgen hands over owned values"
)]
pub fn private_cache_control(existing: Option<String>) -> String {
    app::private_cache_control(existing.as_deref())
}

/// `Vary` for a protected response (see [`app::private_vary`]).
#[wasm_bindgen(js_name = privateVary)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "wasm-bindgen hands over owned values"
)]
pub fn private_vary(existing: Option<String>) -> String {
    app::private_vary(existing.as_deref())
}

/// The headers a protected response loses (see [`app::SHARED_CACHE_HEADERS`]), lower case, so
/// that js/entry.mjs removes exactly what the runtime's forward removes.
#[wasm_bindgen(js_name = sharedCacheHeaders)]
pub fn shared_cache_headers() -> Vec<String> {
    app::SHARED_CACHE_HEADERS.map(str::to_owned).to_vec()
}
