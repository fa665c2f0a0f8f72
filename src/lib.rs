//! # Gatehouse
//!
//! Login and sessions at the edge: a Cloudflare Worker that signs visitors in with Google,
//! keeps users in D1, and admits each request by checking a signed JWT session cookie alone.
//! The token lives `SESSION_CHECK_INTERVAL` seconds; past that, it is renewed from the token and
//! the isolate's feed of what changed in D1 (or one D1 read, for a session that changed), or the
//! session ends, which bounds how long a revoked session survives.
//!
//! Everything but [`runtime`] (wasm only) is plain Rust, tested natively.

#![warn(missing_docs, unreachable_pub)]
#![warn(clippy::pedantic)]
// Named exceptions to pedantic, as jwt-compact makes them: most functions here return values
// whose use the types already force, and errors are documented on their error types.
#![allow(clippy::must_use_candidate, clippy::missing_errors_doc)]

pub mod admin;
pub mod app;
pub mod config;
pub mod error;
pub mod gate;
pub mod handoff;
pub mod http;
pub mod oidc;
pub mod pages;
pub mod prune;
pub mod random;
pub mod redacted;
pub mod redirect;
pub mod session;
pub mod site;
pub mod store;
pub mod time;

#[cfg(target_arch = "wasm32")]
pub mod runtime;
