//! The only module that talks to the Workers runtime: the fetch entry, configuration from
//! `Env`, D1, `Fetch`, and the forward to the site.

// Numbers cross from JS and D1 as f64: Unix seconds and row counts, far inside f64's exact range.
#![expect(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "JS and D1 numbers are f64; the values here are Unix seconds and counts"
)]

#[cfg(feature = "bench")]
mod bench;
#[cfg(feature = "contract")]
mod contract;
mod d1;
mod fetch;
mod hot_path;
mod scheduled;
mod webcrypto;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{Either, select};
use worker::{
    AbortController, Context, Delay, Env, Headers, Request, RequestInit, Response, event,
};

use crate::app::{self, App, Forward, Log, Outcome};
use crate::config::{Config, ConfigError};
use crate::error::ErrorCode;
use crate::oidc::jwks::JwksCache;
use crate::oidc::risc::RiscCache;
use crate::random::OsRandom;
use crate::session::cookies;
use crate::session::memory::SessionMemory;
use crate::site::Site;
use crate::store::SessionStore as _;
use crate::time::UnixTime;

/// How long the token endpoint and JWKS may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);

/// The isolate's configuration, or every problem with it.
type Parsed = Rc<Result<Config, Vec<ConfigError>>>;

thread_local! {
    // Parsed once per isolate; a bad configuration is remembered too (and logged once).
    static CONFIG: RefCell<Option<Parsed>> = const { RefCell::new(None) };
    static JWKS: Rc<RefCell<JwksCache>> = Rc::new(RefCell::new(JwksCache::default()));
    static SESSIONS: Rc<RefCell<SessionMemory>> = Rc::new(RefCell::new(SessionMemory::default()));
    static RISC: Rc<RiscCache> = Rc::new(RiscCache::default());
}

struct Console;

impl Log for Console {
    fn line(&self, line: &str) {
        worker::console_log!("{line}");
    }
}

fn config(env: &Env) -> Parsed {
    CONFIG.with(|cell| {
        if let Some(c) = cell.borrow().as_ref() {
            return c.clone();
        }
        // Vars and secrets are both plain strings to the worker; `.dev.vars` and `--var`
        // may provide either.
        let get = |name: &str| {
            env.var(name).ok().map(|v| v.to_string()).or_else(|| env.secret(name).ok().map(|s| s.to_string()))
        };
        let parsed = Config::from_vars(get);
        if let Err(errors) = &parsed {
            let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
            let line = serde_json::json!({ "level": "error", "event": "configuration_invalid", "problems": problems });
            Console.line(&line.to_string());
        }
        let parsed = Rc::new(parsed);
        *cell.borrow_mut() = Some(parsed.clone());
        parsed
    })
}

fn now() -> UnixTime {
    UnixTime(i64::try_from(worker::Date::now().as_millis() / 1000).unwrap_or(i64::MAX))
}

/// Logs a panic with its message and a JS stack trace, once per isolate, before the first
/// `gateCheck` or fetch does anything (js/entry.mjs calls `gateCheck` first). The hook that the
/// worker crate installs when the module starts (it flags the instance for reinitialisation)
/// keeps running after ours; `console_error_panic_hook::set_once` would replace it.
fn panic_hook() {
    static SET: std::sync::Once = std::sync::Once::new();
    SET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            console_error_panic_hook::hook(info);
            previous(info);
        }));
    });
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    panic_hook();
    match handle(req, &env, &ctx).await {
        Ok(response) => Ok(response),
        Err(e) => {
            // Never the error's text on the wire: a generic page, the reason in the log.
            let line = serde_json::json!({ "level": "error", "event": "runtime_error", "reason": e.to_string() });
            Console.line(&line.to_string());
            to_worker(App::<fetch::FetchClient, d1::D1Store<'_>>::configuration_error("Gatehouse"))
        }
    }
}

async fn handle(mut req: Request, env: &Env, ctx: &Context) -> worker::Result<Response> {
    let config = config(env);
    let Ok(config) = config.as_ref() else {
        let host = req
            .url()
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        return to_worker(App::<fetch::FetchClient, d1::D1Store<'_>>::configuration_error(&host));
    };
    let url = req.url()?;
    let method =
        http::Method::from_bytes(req.method().as_ref().as_bytes()).unwrap_or(http::Method::GET);
    // Every value kept as the runtime gives it, non-ASCII included (see `header_map`).
    let headers = crate::http::header_map(req.headers().entries());
    let is_auth = url.path() == "/auth" || url.path().starts_with("/auth/");
    // Only auth forms are read here; the site's own request bodies stream through untouched.
    let body = if is_auth && method == http::Method::POST {
        let bytes = req.bytes().await?;
        if bytes.len() > 64 * 1024 {
            Vec::new()
        } else {
            bytes
        }
    } else {
        Vec::new()
    };
    let incoming = app::Request {
        method,
        url: url.clone(),
        headers,
        body,
    };
    let store = d1::D1Store::new(env, config.log_d1_queries);
    let http = fetch::FetchClient {
        timeout: PROVIDER_TIMEOUT,
    };
    let jwks = JWKS.with(Rc::clone);
    let sessions = SESSIONS.with(Rc::clone);
    let risc = RISC.with(Rc::clone);
    let app = App {
        config,
        http: &http,
        store: &store,
        random: &OsRandom,
        jwks: &jwks,
        rs256: &webcrypto::WebCryptoRs256,
        sessions: &sessions,
        risc: &risc,
        log: &Console,
        now: now(),
    };
    let outcome = app.handle(&incoming).await;
    if sessions.borrow_mut().schedule_seen() {
        write_seen_later(env.clone(), config.log_d1_queries, ctx);
    }
    match outcome {
        Outcome::Respond(response) => to_worker(response),
        Outcome::Forward(forward) => {
            // Only a served site's requests are forwarded (`App::handle`).
            let Some((site, _)) = config.site_of(&url) else {
                return to_worker(app::outage_json(ErrorCode::Configuration));
            };
            forward_to_site(req, env, config, &site, &forward).await
        }
    }
}

/// Writes the isolate's queued `last_seen_at` writes now that a full batch is queued, in
/// `waitUntil` (the response does not wait); smaller queues go with the next feed pull
/// (docs/scale.md). A failed write is logged (a count, no ids) and dropped: last seen is then
/// one `LAST_SEEN_INTERVAL` late, nothing else depends on it.
fn write_seen_later(env: Env, log_queries: bool, ctx: &Context) {
    ctx.wait_until(async move {
        let ids = SESSIONS.with(|s| s.borrow_mut().take_seen());
        if ids.is_empty() {
            return;
        }
        let store = d1::D1Store::new(&env, log_queries);
        let (level, event, reason) = match store.seen(&ids, now()).await {
            Ok(()) => ("info", "last_seen_written", None),
            Err(e) => ("error", "last_seen_write_failed", Some(e.0)),
        };
        let mut line = serde_json::json!({ "level": level, "event": event, "sessions": ids.len() });
        if let Some(reason) = reason {
            line["reason"] = reason.into();
        }
        Console.line(&line.to_string());
    });
}

/// Passes an admitted request to `ASSETS` (or `UPSTREAM_URL`): identity headers replaced,
/// Gatehouse's cookies removed, the response marked private.
async fn forward_to_site(
    req: Request,
    env: &Env,
    config: &Config,
    site: &Site,
    forward: &Forward,
) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in req.headers().entries() {
        let lower = name.to_ascii_lowercase();
        // Identity headers are always set by us, never passed from the visitor.
        // `host` names the public site; the fetch to the upstream sets its own.
        if lower == "host" && config.upstream_for(site).is_some() {
            continue;
        }
        if lower.starts_with(app::IDENTITY_HEADER_PREFIX)
            || lower == "cookie"
            || (lower == "authorization" && forward.strip_authorization)
        {
            continue;
        }
        headers.append(&name, &value)?;
    }
    if let Some(cookie) = req
        .headers()
        .get("cookie")?
        .and_then(|c| cookies::without_ours(&c, site))
    {
        headers.set("cookie", &cookie)?;
    }
    if let Some(id) = &forward.identity {
        headers.set("x-auth-user-id", &id.user_id)?;
        headers.set("x-auth-email", &id.email)?;
        headers.set("x-auth-role", &id.role)?;
    }
    let mut url = req.url()?;
    let mut init = RequestInit::new();
    init.with_method(req.method())
        .with_headers(headers)
        .with_redirect(worker::RequestRedirect::Manual);
    if !matches!(req.method(), worker::Method::Get | worker::Method::Head) {
        init.with_body(req.inner().body().map(Into::into));
    }
    let response = if let Some(upstream) = config.upstream_for(site) {
        url.set_scheme(upstream.scheme()).ok();
        url.set_host(upstream.host_str()).ok();
        url.set_port(upstream.port()).ok();
        let request = Request::new_with_init(url.as_str(), &init)?;
        match send_upstream(request, config.upstream_timeout).await {
            Ok(response) => response,
            Err(code) => return site_outage(&req, &url, config, site, forward, code),
        }
    } else {
        let request = Request::new_with_init(url.as_str(), &init)?;
        match env.assets("ASSETS")?.fetch_request(request).await {
            Ok(response) => response,
            Err(_) => {
                return site_outage(&req, &url, config, site, forward, ErrorCode::BadGateway);
            }
        }
    };
    let protected = forward.identity.is_some();
    // The site's response headers are immutable: work on a copy.
    let out = response.headers().clone();
    if protected {
        let cache = app::private_cache_control(out.get("cache-control")?.as_deref());
        out.set("cache-control", &cache)?;
        out.set("vary", &app::private_vary(out.get("vary")?.as_deref()))?;
        // A CDN obeys these over `Cache-Control`: gone, or it could share an identity's page.
        for name in app::SHARED_CACHE_HEADERS {
            out.delete(name)?;
        }
    }
    for cookie in &forward.set_cookies {
        out.append("set-cookie", cookie)?;
    }
    if let (Some(upstream), Some(location)) = (config.upstream_for(site), out.get("location")?)
        && let Some(rewritten) = app::rewrite_location(&location, upstream, site.origin())
    {
        out.set("location", &rewritten)?;
    }
    Ok(response.with_headers(out))
}

/// The visitor was let in but the site did not answer: say so (502, or 504 on a timeout), keep
/// a renewed cookie, and log why; never the `Configuration` page, never the error's text.
fn site_outage(
    req: &Request,
    url: &url::Url,
    config: &Config,
    site: &Site,
    forward: &Forward,
    code: ErrorCode,
) -> worker::Result<Response> {
    let event = match code {
        ErrorCode::GatewayTimeout => "upstream_timeout",
        _ => "upstream_unreachable",
    };
    let line = serde_json::json!({ "level": "error", "event": event, "method": req.method().as_ref(), "path": url.path() });
    Console.line(&line.to_string());
    let mut r = if is_navigation(req) {
        let again = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let name = config.site_name.clone().unwrap_or_else(|| {
            let origin = url::Url::parse(site.origin()).ok();
            origin
                .and_then(|o| o.host_str().map(str::to_owned))
                .unwrap_or_default()
        });
        app::outage_page(&name, code, &again)
    } else {
        app::outage_json(code)
    };
    for cookie in &forward.set_cookies {
        if let Ok(v) = http::HeaderValue::from_str(cookie) {
            r.headers_mut().append(http::header::SET_COOKIE, v);
        }
    }
    to_worker(r)
}

/// Sends `request` to `UPSTREAM_URL`: its response once the headers arrive, or `BadGateway`
/// (connection refused, DNS, TLS) or `GatewayTimeout` (no answer within `timeout` seconds).
async fn send_upstream(request: Request, timeout: i64) -> Result<Response, ErrorCode> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = worker::Fetch::Request(request);
    let send = fetch.send_with_signal(&signal);
    match within(Duration::from_secs(timeout.unsigned_abs()), send).await {
        Some(Ok(response)) => Ok(response),
        Some(Err(_)) => Err(ErrorCode::BadGateway),
        None => {
            controller.abort();
            Err(ErrorCode::GatewayTimeout)
        }
    }
}

/// `work`'s output, or `None` when it has not finished within `limit`. The one way the runtime
/// bounds a wait on something outside the isolate: the upstream, the identity provider, D1.
async fn within<F: Future>(limit: Duration, work: F) -> Option<F::Output> {
    futures_util::pin_mut!(work);
    match select(work, Delay::from(limit)).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

/// A browser navigation (GET/HEAD asking for HTML), as `app::Request::is_navigation` says.
fn is_navigation(req: &Request) -> bool {
    matches!(req.method(), worker::Method::Get | worker::Method::Head)
        && req
            .headers()
            .get("accept")
            .ok()
            .flatten()
            .is_some_and(|a| a.contains("text/html"))
}

fn to_worker(response: app::Response) -> worker::Result<Response> {
    let (parts, body) = response.into_parts();
    let headers = Headers::new();
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            headers.append(name.as_str(), v)?;
        }
    }
    Ok(Response::from_bytes(body)?
        .with_status(parts.status.as_u16())
        .with_headers(headers))
}
