//! Progress reports of long transfers: the CLI draws bars from them, tests ignore them.

use std::sync::Arc;

/// What a transfer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Computing the SHA-256 of the file before declaring it.
    Hashing,
    Uploading,
    /// Waiting for verification, scanning and signing (no byte counts).
    Waiting,
    Downloading,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Hashing => "hashing",
            Phase::Uploading => "uploading",
            Phase::Waiting => "waiting",
            Phase::Downloading => "downloading",
        }
    }
}

/// One report: `done` of `total` bytes in `phase` (cumulative). `message` carries notes
/// such as "resuming" or the status while waiting.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub phase: Phase,
    pub done: u64,
    pub total: u64,
    pub message: Option<&'a str>,
}

/// A progress callback (called from the transfer's tasks; keep it cheap).
pub type Progress = Arc<dyn Fn(&Report<'_>) + Send + Sync>;

/// Counts bytes for one phase and reports them.
pub(crate) struct Meter {
    progress: Option<Progress>,
    phase: Phase,
    total: u64,
    done: std::sync::atomic::AtomicU64,
}

impl Meter {
    pub(crate) fn new(progress: Option<&Progress>, phase: Phase, total: u64) -> Self {
        let meter = Self { progress: progress.cloned(), phase, total, done: 0.into() };
        meter.report(0, None);
        meter
    }

    pub(crate) fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        self.report(done, None);
    }

    pub(crate) fn note(&self, message: &str) {
        self.report(self.done.load(std::sync::atomic::Ordering::Relaxed), Some(message));
    }

    fn report(&self, done: u64, message: Option<&str>) {
        if let Some(progress) = &self.progress {
            progress(&Report { phase: self.phase, done, total: self.total, message });
        }
    }
}
