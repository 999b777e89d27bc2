//! The `users` function: accounts and roles.
use shared::web::function::{self, Startup};
use shared::web::state::Core;
use shared::web::system::Probes;

#[derive(Clone, axum::extract::FromRef)]
struct Users {
    core: Core,
    probes: Probes,
}

fn main() -> std::process::ExitCode {
    function::main("users", |mut startup: Startup| async move {
        let verifier = startup.jwt_verifier()?;
        let core = startup.core(verifier).await?;
        let state = Users { probes: startup.probes(&core, None, None), core: core.clone() };
        Ok(startup.serve(&core, shared::features::users::router(), state))
    })
}
