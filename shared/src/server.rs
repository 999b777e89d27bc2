//! Running a router: HTTPS or plain HTTP on a bound listener, with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;

/// Binds the listening socket up front so that "port in use" is a clear start-up error.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    listener.set_nonblocking(true).context("listener")?;
    Ok(listener)
}

/// Serves until SIGTERM/SIGINT, then stops accepting and lets in-flight requests finish
/// for at most `shutdown_timeout`.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown_timeout: Duration,
) -> anyhow::Result<()> {
    let handle = Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone(), shutdown_timeout));
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(config) => {
            let mut server = axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(config));
            tune_http2(server.http_builder());
            server.handle(handle).serve(service).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener);
            tune_http2(server.http_builder());
            server.handle(handle).serve(service).await
        }
    }
    .context("server")
}

/// HTTP/2's default 64 KiB flow-control window throttles large uploads; let it grow.
fn tune_http2(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    builder.http2().adaptive_window(true).max_frame_size(1 << 20);
}

async fn shutdown_on_signal(handle: Handle, timeout: Duration) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!(timeout_secs = timeout.as_secs(), "shutting down: finishing in-flight requests");
    handle.graceful_shutdown(Some(timeout));
}
