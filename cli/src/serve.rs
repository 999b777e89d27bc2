//! `arca serve`: all functions in one process on embedded defaults.

use shared::app::AppState;
use shared::config::{Config, ServerArgs};
use shared::{server, telemetry, tls};

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    telemetry::init_logging(&args.log)?;
    let config = Config::from_args(args)?;
    let listener = server::bind(config.listen)?;
    let tls = tls::load(&config.tls, &config.data_dir)?;
    let startup = AppState::build(config).await?;
    let state = startup.state;

    // Operator-facing notices go to stderr as plain lines, never into the JSON log.
    if let Some(password) = &startup.generated_admin_password {
        eprintln!("arca: created user 'admin' with password: {password}");
        eprintln!("arca: this password is shown only once; store it or set ARCA_ADMIN_PASSWORD");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(tls) = &tls {
        if tls.generated {
            eprintln!(
                "arca: generated a self-signed TLS certificate in {}",
                state.config.data_dir.join("tls").display()
            );
        }
        eprintln!("arca: TLS certificate SHA-256 fingerprint {}", tls.fingerprint);
    }
    let addr = listener.local_addr()?;
    eprintln!("arca: listening on {scheme}://{addr} (database: {})", state.db.backend());
    tracing::info!(%addr, scheme, database = state.db.backend(), "arca serve listening");

    let router = state.router(shared::all_functions());
    let result = server::serve(listener, router, tls.map(|t| t.config), state.config.shutdown_timeout).await;
    state.audit.flush().await;
    state.db.close().await;
    tracing::info!("stopped");
    result
}
