//! Running a router: HTTPS or plain HTTP on a bound listener, with graceful shutdown, and
//! the limits a server on the open network needs: a cap on connections (over it, new ones
//! are closed at once and counted), a TLS handshake timeout, a timeout for the request
//! headers, an idle timeout for connections that send nothing, and HTTP/2 limits on
//! concurrent streams and header size. (Per-request timeouts of non-streaming routes are
//! in the middleware: `http::finish`.)

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum_server::accept::{Accept, DefaultAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::core::config::Config;

/// Binds the listening socket up front so that "port in use" is a clear start-up error.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    listener.set_nonblocking(true).context("listener")?;
    Ok(listener)
}

/// Connections refused because the cap was reached (for metrics and tests).
pub static REFUSED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Serves until SIGTERM/SIGINT, then stops accepting and lets in-flight requests finish
/// for at most the shutdown timeout.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    config: &Config,
) -> anyhow::Result<()> {
    let handle = Handle::<SocketAddr>::new();
    tokio::spawn(shutdown_on_signal(handle.clone(), config.shutdown_timeout));
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let limits =
        Limits { permits: Arc::new(Semaphore::new(config.server.max_connections)), idle: config.server.idle_timeout };
    match tls {
        Some(tls) => {
            let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(tls))
                .handshake_timeout(config.server.header_timeout)
                .acceptor(limits);
            let mut server = axum_server::from_tcp(listener).context("listener")?.acceptor(acceptor);
            tune(server.http_builder(), config);
            server.handle(handle).serve(service).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener).context("listener")?.acceptor(limits);
            tune(server.http_builder(), config);
            server.handle(handle).serve(service).await
        }
    }
    .context("server")
}

/// Timeouts and HTTP/2 limits. HTTP/2's default 64 KiB flow-control window throttles
/// large uploads, so windows and frames are larger (see `make bench`).
fn tune(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>, config: &Config) {
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(config.server.header_timeout);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(config.server.max_streams)
        .max_header_list_size(64 * 1024)
        .max_pending_accept_reset_streams(64)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .initial_stream_window_size(16 * 1024 * 1024)
        .initial_connection_window_size(32 * 1024 * 1024)
        .max_frame_size(1 << 20)
        .max_send_buf_size(4 * 1024 * 1024);
}

/// Caps connections and closes those idle for too long.
#[derive(Clone)]
struct Limits {
    permits: Arc<Semaphore>,
    idle: Duration,
}

impl<S: Send + 'static> Accept<TcpStream, S> for Limits {
    type Stream = IdleStream;
    type Service = S;
    type Future = BoxFuture<'static, io::Result<(IdleStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let limits = self.clone();
        Box::pin(async move {
            let Ok(permit) = limits.permits.clone().try_acquire_owned() else {
                let count = REFUSED_CONNECTIONS.fetch_add(1, Ordering::Relaxed) + 1;
                if count == 1 || count.is_multiple_of(100) {
                    tracing::warn!(
                        refused = count,
                        "connection refused: the connection limit (ARCA_MAX_CONNECTIONS) is reached"
                    );
                }
                drop(stream);
                return Err(io::Error::new(io::ErrorKind::ConnectionRefused, "connection limit reached"));
            };
            let (stream, service) = DefaultAcceptor.accept(stream, service).await?;
            Ok((IdleStream::new(stream, permit, limits.idle), service))
        })
    }
}

/// A connection that fails once nothing was read or written for `timeout`; it holds its
/// slot of the connection cap until it closes.
pub struct IdleStream {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl IdleStream {
    fn new(inner: TcpStream, permit: OwnedSemaphorePermit, timeout: Duration) -> Self {
        Self { inner, _permit: permit, timeout, deadline: Box::pin(tokio::time::sleep(timeout)) }
    }

    fn touch(&mut self) {
        self.deadline.as_mut().reset(tokio::time::Instant::now() + self.timeout);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

impl AsyncRead for IdleStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for IdleStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection stalled for too long")))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection stalled for too long")))
            }
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

async fn shutdown_on_signal(handle: Handle<SocketAddr>, timeout: Duration) {
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
