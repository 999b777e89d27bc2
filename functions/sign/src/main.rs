//! The `sign` function: the only holder of Arca's signing key. On `scanned` CloudEvents
//! (`POST /`) it promotes, signs and approves; it serves signatures and publishers' ones.
use shared::web::function::{self, Startup};
use shared::web::state::{Blobs, Core, PublisherTrust, Receiver, Signing, Trusted};
use shared::web::system::Probes;

#[derive(Clone, axum::extract::FromRef)]
struct Sign {
    core: Core,
    probes: Probes,
    blobs: Blobs,
    signing: Signing,
    trusted: Trusted,
    publisher_trust: PublisherTrust,
    receiver: Receiver,
}

fn main() -> std::process::ExitCode {
    function::main("sign", |mut startup: Startup| async move {
        let verifier = startup.jwt_verifier()?;
        let core = startup.core(verifier).await?;
        let blobs = startup.blobs().await?;
        let signing = startup.signing()?;
        let handlers = shared::features::sign::handlers(core.clone(), signing.clone(), blobs.clone());
        let state = Sign {
            probes: startup.probes(&core, Some(&blobs), None),
            trusted: startup.trusted()?,
            publisher_trust: startup.publisher_trust()?,
            receiver: startup.receiver(handlers)?,
            signing,
            blobs,
            core: core.clone(),
        };
        let routes = shared::web::receiver::add(shared::features::sign::router());
        Ok(startup.serve(&core, routes, state))
    })
}
