//! The `auth` function: sign-in, sessions, identity, API tokens. The only holder of the
//! access-token signing key. Background: pruning sessions, throttles and rate windows.
use std::time::Duration;

use shared::web::function::{self, Startup};
use shared::web::state::{Core, Issuer};
use shared::web::system::Probes;

#[derive(Clone, axum::extract::FromRef)]
struct Auth {
    core: Core,
    probes: Probes,
    issuer: Issuer,
}

fn main() -> std::process::ExitCode {
    function::main("auth", |mut startup: Startup| async move {
        let issuer = startup.issuer()?;
        let core = startup.core(issuer.0.verifier.clone()).await?;
        let state = Auth { probes: startup.probes(&core, None, None), issuer, core: core.clone() };
        let running = startup.serve(&core, shared::features::auth::router(), state);
        Ok(running.leased("prune", Duration::from_secs(600), move || {
            let core = core.clone();
            async move { shared::features::auth::prune(&core).await }
        }))
    })
}
