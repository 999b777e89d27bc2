//! The `scan` function: Trivy on `uploaded`/`rescan` CloudEvents (`POST /`), the findings,
//! policy, releases and exceptions. It runs hostile input and holds no signing key.
//! Background: policy re-checks and retries (leased), its own vulnerability-DB updates.
use shared::web::function::{self, Startup};
use shared::web::state::{Blobs, Core, Receiver, Scanning};
use shared::web::system::Probes;

#[derive(Clone, axum::extract::FromRef)]
struct Scan {
    core: Core,
    probes: Probes,
    blobs: Blobs,
    scanning: Scanning,
    receiver: Receiver,
}

fn main() -> std::process::ExitCode {
    function::main("scan", |mut startup: Startup| async move {
        let verifier = startup.jwt_verifier()?;
        let core = startup.core(verifier).await?;
        let blobs = startup.blobs().await?;
        let scanning = startup.scanning().await?;
        let handlers = shared::features::scan::handlers(core.clone(), scanning.clone(), blobs.clone());
        let state = Scan {
            probes: startup.probes(&core, Some(&blobs), Some(&scanning)),
            receiver: startup.receiver(handlers)?,
            blobs,
            scanning: scanning.clone(),
            core: core.clone(),
        };
        let routes = shared::web::receiver::add(shared::features::scan::router());
        Ok(function::with_scan_jobs(startup.serve(&core, routes, state), &core, &scanning))
    })
}
