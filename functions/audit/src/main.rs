//! The `audit` function: the audit log, its verification and checkpoints, dead letters.
//! Background: signing checkpoints of the chain's head (leased).
use shared::features::audit::AuditKey;
use shared::web::function::{self, Startup};
use shared::web::state::Core;
use shared::web::system::Probes;

#[derive(Clone, axum::extract::FromRef)]
struct Audit {
    core: Core,
    probes: Probes,
    key: AuditKey,
}

fn main() -> std::process::ExitCode {
    function::main("audit", |mut startup: Startup| async move {
        let verifier = startup.jwt_verifier()?;
        let core = startup.core(verifier).await?;
        let key = startup.audit_key()?;
        let state = Audit { probes: startup.probes(&core, None, None), key: key.clone(), core: core.clone() };
        let running = startup.serve(&core, shared::features::audit::router(), state);
        Ok(running.leased("audit-checkpoint", core.config.audit_checkpoint, move || {
            let (core, key) = (core.clone(), key.clone());
            async move { shared::features::audit::checkpoint(&core, &key).await }
        }))
    })
}
