//! The `download` function: approved, signed artifacts only; single-use download links.
use shared::web::function::{self, Startup};
use shared::web::state::{Blobs, Core, DownloadLinks, Trusted};
use shared::web::system::Probes;

#[derive(Clone, axum::extract::FromRef)]
struct Download {
    core: Core,
    probes: Probes,
    blobs: Blobs,
    trusted: Trusted,
    links: DownloadLinks,
}

fn main() -> std::process::ExitCode {
    function::main("download", |mut startup: Startup| async move {
        let verifier = startup.jwt_verifier()?;
        let core = startup.core(verifier).await?;
        let blobs = startup.blobs().await?;
        let state = Download {
            probes: startup.probes(&core, Some(&blobs), None),
            trusted: startup.trusted()?,
            links: startup.download_links()?,
            blobs,
            core: core.clone(),
        };
        Ok(startup.serve(&core, shared::features::download::router(), state))
    })
}
