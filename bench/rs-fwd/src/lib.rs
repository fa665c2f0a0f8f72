//! `rs-fwd`: forwards every request to the `ASSETS` service binding, nothing else.

use worker::{Context, Env, Request, Response, Result, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    env.service("ASSETS")?.fetch_request(req).await
}
