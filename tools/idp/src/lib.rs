//! A local, Google-compatible OpenID Connect provider for `make dev` and end-to-end tests.
//!
//! It serves Google's paths (`/.well-known/openid-configuration`, `/o/oauth2/v2/auth`, `/token`,
//! `/oauth2/v3/certs`, `/v1/userinfo`) and issues RS256 ID tokens with Google's claims, signed
//! with an RSA key generated at start. Only loopback `redirect_uri`s are accepted, PKCE S256 is
//! required, and codes are single use.
//!
//! It also plays Google's Cross-Account Protection (RISC) transmitter: it serves
//! `/.well-known/risc-configuration` and, on request (`POST /_control/risc` below), makes Security
//! Event Tokens and pushes them to a receiver.
//!
//! It is a development tool: it runs on plain HTTP and signs in whoever asks. Never expose it.
//!
//! # Automatic approval
//!
//! A GET authorization request with `test_email=…` is approved at once (no chooser page);
//! `test_name`, `test_picture`, `test_sub`, `test_email_verified=false` and `test_hd` shape the
//! identity, and `test_deny=1` refuses instead (`error=access_denied`).
//!
//! # Hostile mode: `test_twist`
//!
//! Next to `test_email`, `test_twist=NAME` makes the sign-in bad in one precise way. It may be
//! repeated (or list names separated by commas) to combine twists that change different things;
//! two twists for the same thing (say `wrong_iss` and `no_iss`), an unknown name, or a twist
//! without `test_email` get a 400 error page instead of a redirect. The twists are stored with
//! the code ([`id_token::Issuance`]) and applied when that code is redeemed; nothing else
//! changes, and the code is still single use. [`twist::Twist`] lists them in code, and
//! `GET /_control/twists` over HTTP.
//!
//! ID token signature and header (one at a time):
//!
//! - `foreign_key`: RS256, signed by another RSA key (made on first use, never in the JWKS),
//!   with the real key's `kid`.
//! - `alg_none`: header `{"alg":"none","kid":…,"typ":"JWT"}`, empty signature (`header.payload.`).
//! - `hs256_pubkey`: HS256, the HMAC key being the provider's public key as PEM
//!   (SubjectPublicKeyInfo, `-----BEGIN PUBLIC KEY-----…`), the classic algorithm confusion.
//! - `no_kid`: a valid RS256 signature, no `kid` in the header.
//! - `unknown_kid`: a valid RS256 signature by the real key, a random `kid` that is not served.
//! - `rs512`, `ps256`: signed by the real key with RS512 / PS256, `alg` saying so.
//! - `bad_signature`: an honest token with the last signature byte flipped.
//! - `garbage`: `id_token` is `"not-a-jwt"`.
//!
//! ID token claims (`client` is the configured client id, `other-client` a second one):
//!
//! - `wrong_iss` (`https://evil.example`), `no_iss`.
//! - `wrong_aud` (`someone-else.apps.googleusercontent.com`; `azp` stays `client`).
//! - `aud_array_with_azp`: `aud` = `[client, "other-client"]`, `azp` = `client`. **Valid**: a
//!   correct relying party accepts it.
//! - `aud_array_no_azp`: that `aud`, no `azp`; `aud_array_wrong_azp`: that `aud`,
//!   `azp` = `other-client`; `wrong_azp`: `aud` = `client`, `azp` = `other-client`.
//! - `expired`: `exp` = now − 120, `iat` = now − 3720.
//! - `expired_within_leeway`: `exp` = now − 30 (`iat` one lifetime earlier). **Valid** (60 s
//!   leeway).
//! - `iat_future`: `iat` = now + 300, `exp` = now + 3900.
//! - `iat_future_within_leeway`: `iat` = now + 30 (`exp` one lifetime later). **Valid**.
//! - `no_exp`, `no_iat`: the claim is left out (also when combined with a time twist).
//! - `no_nonce`; `wrong_nonce` (`"wrong-nonce"`).
//! - `unverified_email` (`email_verified: false`); `no_email` (no `email`, no
//!   `email_verified`); `email_verified_string` (`email_verified: "true"`, a string).
//! - `no_sub`; `empty_sub` (`sub: ""`).
//!
//! Token endpoint answer for that code (one at a time; client authentication and the code checks
//! happen first, as always):
//!
//! - `token_500`: 500 with an HTML body.
//! - `token_503_json`: 503 `{"error":"temporarily_unavailable"}`.
//! - `token_not_json`: 200, `text/html`, `<html>oops</html>`.
//! - `token_error_json`: 400 `{"error":"invalid_grant","error_description":"Bad Request"}`.
//! - `token_no_id_token`: 200, the usual JSON without `id_token`.
//! - `token_id_token_not_string`: 200, `"id_token": 42`.
//! - `token_stall`: reads the request, waits 30 s, then answers honestly.
//! - `token_close`: reads the request, then closes the connection without a response.
//! - `token_huge`: 200, the usual JSON padded (`"padding": "xxx…"`) to exactly 3 MiB.
//! - `token_slow_body`: the head (with the full `Content-Length`) at once, then the usual JSON
//!   body one byte per second.
//! - `token_huge_slow_body`: the `token_huge` answer (3 MiB, announced in `Content-Length`), sent
//!   one byte per second.
//! - `token_endless`: 200, chunked (no `Content-Length`), `{"padding":"` and then 64 KiB of `x`
//!   every 20 ms, never ending (until the client hangs up).
//!
//! Code reuse needs no twist: a second redemption is always `invalid_grant`.
//!
//! It runs on hyper (see [`http`]): each connection is a task and each answer is computed on
//! the blocking pool, so a stalled or trickling answer holds up nobody else;
//! waits end early when the server stops, and the process keeps the default SIGTERM behaviour
//! (it ends at once, whatever is waiting).
//!
//! # Control endpoints (tests only)
//!
//! Served on the provider's own listener (so only on its `--host`), never cached, and refused
//! (403) when the request carries an `Origin` header or a `Sec-Fetch-Site` other than `none`,
//! so a web page cannot drive them. Parameters come from the query string (or a form body).
//! The `POST`s but `risc` answer with the current state, `{"kid","jwks_mode","jwks_max_age"}`.
//!
//! - `POST /_control/rotate`: a new RSA key with a new `kid`; from now on the JWKS serves only
//!   it (the old key is gone) and new ID tokens are signed with it. Also answers
//!   `previous_kid`.
//! - `POST /_control/jwks?mode=ok|500|stall|garbage|endless|huge_slow`: how `/oauth2/v3/certs`
//!   answers from now on: honestly; 500 with an HTML body; honestly after 30 s; 200
//!   `{"nope":1}`; 200 with a chunked body that never ends (as `token_endless`); or the honest
//!   key set padded to 3 MiB (announced in `Content-Length`) sent one byte per second.
//! - `POST /_control/jwks_max_age?secs=N`: the JWKS `Cache-Control: public, max-age=N`
//!   (default 3600).
//! - `POST /_control/reset`: back to honest defaults (`mode=ok`, max-age 3600) and counters to
//!   zero; keeps the current key.
//! - `GET /_control/stats`: `{"jwks_requests": N, "token_requests": N,
//!   "authorization_requests": N}`, requests received at `GET /oauth2/v3/certs`, `POST /token`
//!   and `GET /o/oauth2/v2/auth` (whatever their outcome) since start or reset.
//! - `GET /_control/twists`: `{"twists":[{"name","kind","acceptable"}…]}`, every twist with
//!   whether a correct relying party accepts it.
//! - `POST /_control/risc`: makes a Security Event Token (RFC 8417) as Google's RISC sends them
//!   ([`risc`]) and, given `receiver`, pushes it there (RFC 8935). Parameters:
//!   - `event` (required): `sessions-revoked`, `tokens-revoked`, `account-disabled`,
//!     `account-enabled`, `account-credential-change-required`, `verification`, or `unknown`
//!     (the type `https://schemas.openid.net/secevent/risc/event-type/made-up`).
//!   - `sub`: the Google account id; required, except for `verification`, which refuses it.
//!   - `reason` (`account-disabled` only, any text, e.g. `hijacking`, `bulk-account`); `state`
//!     (`verification` only). Both optional.
//!   - `jti` (default: 32 random hex digits; send the same one twice to replay), `aud`
//!     (default: the configured client id).
//!   - `twist` (one, optional): `bad_signature` (last signature byte flipped), `wrong_aud`
//!     (`someone-else.apps.googleusercontent.com`), `stale_iat` (30 days ago), `future_iat`
//!     (1 hour ahead), `wrong_iss` (`https://evil.example/`; the subject's `iss` stays honest),
//!     `unknown_kid` (signed by the real key, a `kid` not in the JWKS), `alg_none` (header
//!     `alg` `none`, empty signature), `no_jti`, `no_events`, `subject_other_iss` (the
//!     subject's `iss` is `https://evil.example/`; not for `verification`).
//!   - `receiver`: an `http://` URL. The SET is POSTed there with
//!     `Content-Type: application/secevent+jwt` and `Accept: application/json`, within 10 s.
//!
//!   The SET: header `{"alg":"RS256","kid":…,"typ":"secevent+jwt"}`, signed by the current
//!   ID-token key (so verifiable with `/oauth2/v3/certs`); claims `iss` (the ID-token issuer plus
//!   a trailing `/`, as Google's `https://accounts.google.com/`), `aud`, `iat`, `jti`, and
//!   `events`: `{URI: {"subject": {"subject_type":"iss-sub","iss":ISS,"sub":SUB}}}` (plus
//!   `"reason"` if given), or for `verification` `{URI: {"state": …}}`; no `exp`. The answer:
//!   `200 {"jti","set"}` without `receiver`; with it `200 {"jti","set","status","body"}`, the
//!   receiver's status and the start of its body (4 KiB at most, as text), or
//!   `502 {"error":"receiver_unreachable","error_description","jti"}` if no answer came (no
//!   connection, or none within 10 s). `jti` is `null` with `no_jti`. Bad parameters (an unknown
//!   event or twist, a missing or refused `sub`, `reason` or `state` on the wrong event, an
//!   empty value, a `receiver` that is not `http://`) get 400 `invalid_request`.
//!
//! `GET /.well-known/risc-configuration` answers like Google's: `issuer` (the RISC issuer, with
//! its `/`), `jwks_uri` (the ID tokens' JWKS), `delivery_methods_supported` (push only) and the
//! stream management endpoints (`add_subject_endpoint`, …), which are listed but not served.
//!
//! Logs are one line per request, `METHOD /path STATUS`: never a query, body, code or token.

pub mod authorize;
pub mod client_auth;
pub mod config;
pub mod http;
pub mod id_token;
pub mod pages;
pub mod params;
pub mod pkce;
pub mod risc;
pub mod server;
pub mod store;
pub mod twist;
