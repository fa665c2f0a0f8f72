//! A local, Google-compatible OpenID Connect provider for `make dev` and end-to-end tests.
//!
//! It serves Google's paths (`/.well-known/openid-configuration`, `/o/oauth2/v2/auth`, `/token`,
//! `/oauth2/v3/certs`, `/v1/userinfo`) and issues RS256 ID tokens with Google's claims, signed
//! with an RSA key generated at start. Only loopback `redirect_uri`s are accepted, PKCE S256 is
//! required, and codes are single use.
//!
//! It is a development tool: it runs on plain HTTP and signs in whoever asks. Never expose it.

pub mod authorize;
pub mod client_auth;
pub mod config;
pub mod id_token;
pub mod pages;
pub mod params;
pub mod pkce;
pub mod server;
pub mod store;
