//! Structured JSON logs and Prometheus metrics.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber (stdout). Each line carries the request span's fields,
/// among them `request_id`.
pub fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter).map_err(|_| anyhow::anyhow!("ARCA_LOG: invalid log filter '{filter}'"))?;
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .try_init()
        .map_err(|e| anyhow::anyhow!("logging: {e}"))
}

/// The process's metrics, in a registry of its own (several apps can live in one test process).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let labels = &["method", "route", "status"];
        let http_requests = IntCounterVec::new(
            Opts::new("arca_http_requests_total", "HTTP requests by route template and status"),
            labels,
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "arca_http_request_duration_seconds",
                "HTTP request latency by route template and status",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            labels,
        )
        .expect("valid metric");
        registry.register(Box::new(http_requests.clone())).expect("unique metric");
        registry.register(Box::new(http_duration.clone())).expect("unique metric");
        Self { registry, http_requests, http_duration }
    }

    /// Registers another collector (used by later subsystems: scans, outbox, …).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
