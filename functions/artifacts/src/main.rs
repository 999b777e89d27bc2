//! The `artifacts` function: search, metadata, history, deletion (crypto-shred), names.
//! It holds no blob store: a deleted artifact's blob is removed by `ingest` on `deleted`.
use shared::web::function::{self, Startup};
use shared::web::state::Core;
use shared::web::system::Probes;

#[derive(Clone, axum::extract::FromRef)]
struct Artifacts {
    core: Core,
    probes: Probes,
}

fn main() -> std::process::ExitCode {
    function::main("artifacts", |mut startup: Startup| async move {
        let verifier = startup.jwt_verifier()?;
        let core = startup.core(verifier).await?;
        let state = Artifacts { probes: startup.probes(&core, None, None), core: core.clone() };
        Ok(startup.serve(&core, shared::features::artifacts::router(), state))
    })
}
