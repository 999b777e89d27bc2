//! Running one function on its own: plain HTTP on `0.0.0.0:$PORT` (Knative), or on AWS
//! Lambda through `lambda_http` when `AWS_LAMBDA_RUNTIME_API` is set.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::app::AppState;
use crate::config::{Config, ServerArgs};
use crate::routes::FunctionRouter;
use crate::{server, system, telemetry};

#[derive(Parser)]
struct FunctionArgs {
    #[command(flatten)]
    server: ServerArgs,
}

/// The whole `main` of a function binary.
pub fn main(function: fn() -> FunctionRouter) -> ExitCode {
    crate::scan::unpack::run_child_if_requested();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arca: error: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(function)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arca: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(function: fn() -> FunctionRouter) -> anyhow::Result<()> {
    // Functions take configuration from the environment only.
    let mut args =
        FunctionArgs::try_parse_from(["function"]).map_err(|e| anyhow::anyhow!(first_line(&e.to_string())))?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().with_context(|| format!("PORT: not a port number: '{p}'"))?,
        Err(_) => 8080,
    };
    args.server.listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    args.server.plain_http = true; // TLS terminates at the ingress.
    telemetry::init_logging(&args.server.log)?;
    let config = Config::from_args(args.server)?;
    let startup = AppState::build(config).await?;
    let state = startup.state;
    let function = function();
    let name = function.name;
    let router = state.router(vec![function.merge(system::router())]);
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        tracing::info!(function = name, "running on AWS Lambda");
        return lambda_http::run(router).await.map_err(|e| anyhow::anyhow!("lambda: {e}"));
    }
    let listener = server::bind(state.config.listen)?;
    tracing::info!(function = name, listen = %state.config.listen, "function listening");
    let result = server::serve(listener, router, None, state.config.shutdown_timeout).await;
    state.audit.flush().await;
    result
}

/// clap renders errors over several lines; Arca reports configuration problems in one.
pub fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}
