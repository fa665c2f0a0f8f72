//! The scheduled entry: the cron trigger of `wrangler.toml` (`[triggers] crons`) prunes old rows
//! ([`crate::prune`]). Thin: the configuration, D1, the clock and the log go in; the run itself
//! is plain Rust, tested natively.

use worker::{Env, ScheduleContext, ScheduledEvent, event};

use super::{Console, config, d1, now, panic_hook};
use crate::app::Log;
use crate::prune;

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    panic_hook();
    let parsed = config(&env);
    // A bad configuration (already logged once per isolate as `configuration_invalid`) prunes
    // nothing: no row is deleted on cut-offs made from values that failed their checks.
    let Ok(config) = parsed.as_ref() else {
        Console.line(&prune::failed_line("configuration_invalid"));
        return;
    };
    let store = d1::D1Store::new(&env, config.log_d1_queries);
    // One log line either way (`pruned` with counts, or `prune_failed` with the store's
    // reason); the trigger itself never fails, and the next run goes on.
    prune::run(&store, config, now(), &Console).await;
}
