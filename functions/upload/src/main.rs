//! The `upload` function: declaring artifacts, upload targets, completing uploads.
use shared::web::function::{self, Startup};
use shared::web::state::{Blobs, Core};
use shared::web::system::Probes;

#[derive(Clone, axum::extract::FromRef)]
struct Upload {
    core: Core,
    probes: Probes,
    blobs: Blobs,
}

fn main() -> std::process::ExitCode {
    function::main("upload", |mut startup: Startup| async move {
        let verifier = startup.jwt_verifier()?;
        let core = startup.core(verifier).await?;
        let blobs = startup.blobs().await?;
        let state = Upload { probes: startup.probes(&core, Some(&blobs), None), blobs, core: core.clone() };
        Ok(startup.serve(&core, shared::features::upload::router(), state))
    })
}
