//! Structured JSON logs and Prometheus metrics.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
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
    pub scan_duration: Histogram,
    /// Scans waiting for or holding a scanner slot.
    pub scan_queue: IntGauge,
    pub scan_outcomes: IntCounterVec,
    pub scanner_failures: IntCounter,
    pub dead_letters: IntCounter,
    /// Audit entries of anonymous failed requests beyond the per-IP budget (not written).
    pub audit_suppressed: IntCounter,
    /// Age of the vulnerability DB in use, in seconds (-1: none).
    pub trivy_db_age: IntGauge,
    /// Outbox events not delivered yet.
    pub outbox_depth: IntGauge,
    /// Bytes of artifacts whose upload was verified (size and SHA-256 as declared).
    pub upload_bytes: IntCounter,
    /// Checkpoint rounds that found the audit log altered (alert on any increase).
    pub audit_tampering: IntCounter,
    /// Stuck artifacts whose event the reconciler sent again (`outcome`: `redriven`), or
    /// that it failed after the last attempt (`failed`).
    pub redrives: IntCounterVec,
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
        let scan_duration = Histogram::with_opts(
            HistogramOpts::new("arca_scan_duration_seconds", "Wall time of Trivy scans")
                .buckets(vec![0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0]),
        )
        .expect("valid metric");
        let scan_queue = IntGauge::new("arca_scan_queue_depth", "Scans queued or running").expect("valid metric");
        let scan_outcomes = IntCounterVec::new(
            Opts::new("arca_scan_outcomes_total", "Policy outcomes of scans (approved, quarantined, failed)"),
            &["outcome"],
        )
        .expect("valid metric");
        let scanner_failures =
            IntCounter::new("arca_scanner_failures_total", "Scans that did not complete (errors, deadlines)")
                .expect("valid metric");
        let dead_letters =
            IntCounter::new("arca_outbox_dead_letters_total", "Events dead-lettered after repeated handler failures")
                .expect("valid metric");
        let audit_suppressed = IntCounter::new(
            "arca_audit_suppressed_total",
            "Audit entries of anonymous failed requests over the per-IP budget (not written)",
        )
        .expect("valid metric");
        let trivy_db_age = IntGauge::new("arca_trivy_db_age_seconds", "Age of the vulnerability DB in use (-1: none)")
            .expect("valid metric");
        let outbox_depth =
            IntGauge::new("arca_outbox_depth", "Lifecycle events not delivered yet").expect("valid metric");
        let upload_bytes = IntCounter::new("arca_upload_bytes_total", "Bytes of artifacts whose upload was verified")
            .expect("valid metric");
        let audit_tampering = IntCounter::new(
            "arca_audit_tampering_total",
            "Checkpoint rounds that found the audit log no longer agreeing with a signed checkpoint",
        )
        .expect("valid metric");
        let redrives = IntCounterVec::new(
            Opts::new(
                "arca_artifacts_redriven_total",
                "Artifacts stuck in scanning or signing: event sent again (redriven), or failed after the last attempt",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(upload_bytes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(redrives.clone()),
            Box::new(audit_tampering.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_duration.clone()),
            Box::new(scan_duration.clone()),
            Box::new(scan_queue.clone()),
            Box::new(scan_outcomes.clone()),
            Box::new(scanner_failures.clone()),
            Box::new(dead_letters.clone()),
            Box::new(audit_suppressed.clone()),
            Box::new(trivy_db_age.clone()),
            Box::new(outbox_depth.clone()),
        ] {
            registry.register(collector).expect("unique metric");
        }
        Self {
            registry,
            http_requests,
            http_duration,
            scan_duration,
            scan_queue,
            scan_outcomes,
            scanner_failures,
            dead_letters,
            audit_suppressed,
            trivy_db_age,
            outbox_depth,
            upload_bytes,
            audit_tampering,
            redrives,
        }
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
