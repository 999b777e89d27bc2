//! `arca serve`: every function in one process, on embedded defaults.

use shared::core::config::{Config, ServerArgs};
use shared::core::{telemetry, tls};
use shared::web::{function, server};

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    telemetry::init_logging(&args.log)?;
    let config = Config::from_args(args)?;
    let listener = server::bind(config.listen)?;
    config.prepare_data_dir()?;
    let tls = tls::load(&config.tls, &config.data_dir)?;
    let (running, generated_admin_password) = function::embedded(config).await?;
    let core = running.core().clone();

    // Operator-facing notices go to stderr as plain lines, never into the JSON log.
    if let Some(password) = &generated_admin_password {
        eprintln!("arca: created user 'admin' with password: {password}");
        eprintln!("arca: this password is shown only once; store it or set ARCA_ADMIN_PASSWORD");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(tls) = &tls {
        if tls.generated {
            eprintln!(
                "arca: generated a self-signed TLS certificate in {}",
                core.config.data_dir.join("tls").display()
            );
        }
        eprintln!("arca: TLS certificate SHA-256 fingerprint {}", tls.fingerprint);
    }
    let addr = listener.local_addr()?;
    eprintln!("arca: listening on {scheme}://{addr} (database: {})", core.db.backend());
    tracing::info!(%addr, scheme, database = core.db.backend(), "arca serve listening");
    let result = function::run_on(running, listener, tls.map(|t| t.config)).await;
    core.db.close().await;
    tracing::info!("stopped");
    result
}
