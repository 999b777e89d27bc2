//! Scanning with Trivy: the blob is fetched to a private directory, its kind detected,
//! archives safely extracted, and Trivy run offline (no DB download, no telemetry) with a
//! deadline after which its whole process group is killed.

pub mod detect;
pub mod extract;
pub mod policy;
pub mod report;
pub mod trivydb;
pub mod unpack;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::{OnceCell, Semaphore};

use detect::Kind;
use report::Findings;

/// How scans run (from the server configuration).
#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub trivy: PathBuf,
    /// Holds `db/trivy.db` (+ `java-db/`); shared read-only by concurrent scans.
    pub cache_dir: PathBuf,
    /// Private parent of every scan's working directory.
    pub work_dir: PathBuf,
    pub timeout: Duration,
    pub concurrency: usize,
    pub limits: extract::Limits,
    /// Attempts before a scan that keeps failing fails the artifact.
    pub attempts: u32,
    /// Runs detection and extraction in a memory-capped child process.
    pub unpacker: unpack::Unpacker,
    /// The vulnerability DB counts as stale past this age.
    pub db_stale_after: Duration,
    /// Downloads of the vulnerability DB through Trivy; None: air-gapped (imports only).
    pub db_download: Option<trivydb::Download>,
}

/// Why a scan did not produce findings.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The artifact itself is refused (hostile or corrupt archive): scanning again cannot help.
    #[error("archive refused: {0}")]
    Archive(String),
    #[error("scan exceeded its deadline of {0} s")]
    Timeout(u64),
    #[error("trivy failed: {0}")]
    Trivy(String),
    #[error("unreadable trivy report: {0}")]
    Report(String),
    #[error("unpacking failed: {0}")]
    Unpack(String),
    #[error("no vulnerability DB: import one (`arca admin trivy-db-import`) or let Arca download it")]
    NoDatabase,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ScanError {
    /// Errors that scanning again cannot fix (the artifact itself is refused).
    pub fn is_permanent(&self) -> bool {
        matches!(self, ScanError::Archive(_))
    }
}

/// What one scan produced.
#[derive(Debug, Clone)]
pub struct ScanRun {
    pub kind: Kind,
    pub findings: Findings,
    pub trivy_version: String,
    pub db_updated_at: Option<String>,
}

pub struct Scanner {
    pub config: ScanConfig,
    permits: Semaphore,
    version: OnceCell<String>,
    /// Why the last vulnerability-DB update failed (None after a success).
    update_error: std::sync::Mutex<Option<String>>,
}

impl Scanner {
    /// Prepares the directories; workspaces a crashed process left behind (decrypted
    /// plaintext of artifacts) are wiped.
    pub fn new(config: ScanConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.work_dir)?;
        std::fs::create_dir_all(&config.cache_dir)?;
        crate::core::fsutil::restrict_dir(&config.work_dir)?;
        for entry in std::fs::read_dir(&config.work_dir)? {
            let path = entry?.path();
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            if let Err(e) = removed {
                tracing::warn!(path = %path.display(), error = %e, "cannot wipe a stale scan workspace");
            }
        }
        trivydb::adopt_legacy_layout(&config.cache_dir)?;
        Ok(Self {
            permits: Semaphore::new(config.concurrency.max(1)),
            version: OnceCell::new(),
            update_error: std::sync::Mutex::new(None),
            config,
        })
    }

    /// `UpdatedAt` of the vulnerability DB in use (None when there is no DB).
    pub fn db_updated_at(&self) -> Option<String> {
        trivydb::updated_at(&self.config.cache_dir.join("db"))
    }

    /// How old the DB in use is.
    pub fn db_age(&self) -> Option<Duration> {
        let updated = chrono::DateTime::parse_from_rfc3339(&self.db_updated_at()?).ok()?;
        (chrono::Utc::now() - updated.with_timezone(&chrono::Utc)).to_std().ok()
    }

    /// Why the last DB update failed, if it did.
    pub fn last_update_error(&self) -> Option<String> {
        self.update_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_update_error(&self, error: Option<String>) {
        *self.update_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = error;
    }

    /// Downloads a newer vulnerability DB through Trivy, checks it and swaps it in (see
    /// `trivydb::update`). Errors are kept for health and `/api/scanner`; the old DB stays.
    pub async fn update_db(&self) -> anyhow::Result<Option<String>> {
        let Some(download) = &self.config.db_download else { return Ok(None) };
        let result = trivydb::update(&self.config.trivy, &self.config.cache_dir, download).await;
        match &result {
            Ok(updated) => {
                self.set_update_error(None);
                if let Some(updated_at) = updated {
                    tracing::info!(updated_at, "vulnerability DB updated");
                }
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "vulnerability DB update failed; the DB in use stays");
                self.set_update_error(Some(format!("{e:#}")));
            }
        }
        result
    }

    /// Trivy answers and a DB is there: scans can run.
    pub async fn trivy_available(&self) -> bool {
        if self.db_updated_at().is_none() {
            return false;
        }
        let out = tokio::process::Command::new(&self.config.trivy)
            .arg("--version")
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .await;
        out.is_ok_and(|o| o.status.success())
    }

    /// Trivy's version (asked once; call at start-up so no scan waits for it).
    pub async fn trivy_version(&self) -> String {
        self.version
            .get_or_init(|| async {
                let out = tokio::process::Command::new(&self.config.trivy)
                    .args(["--version", "--format", "json"])
                    .env_clear()
                    .stdin(Stdio::null())
                    .output()
                    .await;
                out.ok()
                    .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
                    .and_then(|v| v["Version"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unknown".to_owned())
            })
            .await
            .clone()
    }

    /// A private working directory for one scan of `artifact_id` (removed when dropped, also
    /// on failure; [`Scanner::wipe`] removes it when the artifact is deleted).
    pub fn workspace(&self, artifact_id: &str) -> std::io::Result<tempfile::TempDir> {
        tempfile::Builder::new().prefix(&format!("scan-{artifact_id}-")).tempdir_in(&self.config.work_dir)
    }

    /// Removes every workspace of an artifact (after a crypto-shred delete).
    pub fn wipe(&self, artifact_id: &str) {
        let prefix = format!("scan-{artifact_id}-");
        let Ok(entries) = std::fs::read_dir(&self.config.work_dir) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Scans the file `blob` (inside `workspace`), published as `filename`. The deadline
    /// covers unpacking and Trivy.
    pub async fn scan(
        &self,
        workspace: &Path,
        blob: &Path,
        filename: &str,
        block_unsupported: bool,
    ) -> Result<ScanRun, ScanError> {
        let _permit = self.permits.acquire().await.map_err(|_| ScanError::Trivy("scanner stopped".into()))?;
        let deadline = Instant::now() + self.config.timeout;
        let timeout = self.config.timeout.as_secs().max(1);
        let unpacked = match self.config.unpacker.run(workspace, blob, filename, self.config.limits, deadline).await {
            Ok(unpacked) => unpacked,
            Err(unpack::UnpackError::Refused(why)) => return Err(ScanError::Archive(why)),
            Err(unpack::UnpackError::Timeout) => return Err(ScanError::Timeout(timeout)),
            Err(unpack::UnpackError::Failed(why)) => return Err(ScanError::Unpack(why)),
        };
        let kind = unpacked.kind;
        let root = workspace.join("root");
        let mut archive = report::ArchiveReport::from(&unpacked);
        let (command, target): (&[&str], PathBuf) = match kind {
            Kind::Image if root.join("oci-layout").is_file() => (&["image", "--input"], root.clone()),
            Kind::Image => (&["image", "--input"], blob.to_owned()),
            Kind::Sbom => (&["sbom"], blob.to_owned()),
            Kind::Unsupported(_) if block_unsupported => {
                // Policy refuses it; nothing for Trivy to look at.
                return Ok(ScanRun {
                    kind,
                    findings: report::Findings { archive, ..report::Findings::default() },
                    trivy_version: self.trivy_version().await,
                    db_updated_at: self.db_updated_at(),
                });
            }
            Kind::Unsupported(_) => {
                // Allowed by policy: scanned as one opaque file.
                archive.unsupported_format = None;
                unpack::place_file(blob, &root, filename)?;
                (&["rootfs"], root.clone())
            }
            Kind::Tar(_) | Kind::Zip | Kind::Jar | Kind::File | Kind::Compressed(_) => (&["rootfs"], root.clone()),
        };
        let report = workspace.join("report.json");
        let scanners = if kind == Kind::Sbom { "vuln,license" } else { "vuln,secret,license" };
        let mut child = tokio::process::Command::new(&self.config.trivy)
            .args(command)
            .arg(&target)
            .args(["--scanners", scanners, "--format", "json", "--output"])
            .arg(&report)
            .args(["--skip-db-update", "--skip-java-db-update", "--skip-version-check", "--disable-telemetry"])
            .args(["--offline-scan", "--no-progress", "--quiet", "--cache-backend", "memory", "--cache-dir"])
            .arg(&self.config.cache_dir)
            .arg("--timeout")
            .arg(format!("{}s", deadline.saturating_duration_since(Instant::now()).as_secs().max(1)))
            // Trivy reads hostile input: it gets none of the server's secrets.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", workspace)
            .env("TMPDIR", workspace)
            .current_dir(workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ScanError::Trivy(format!("cannot run {}: {e}", self.config.trivy.display())))?;
        let mut stderr = child.stderr.take();
        let collect = async move {
            let mut text = String::new();
            if let Some(err) = stderr.as_mut() {
                let _ = err.take(64 * 1024).read_to_string(&mut text).await;
            }
            text
        };
        // Arca's own deadline, a little after Trivy's: then the whole group is killed.
        let hard_deadline = deadline + Duration::from_secs(5);
        let (status, stderr_text) =
            match tokio::time::timeout_at(hard_deadline.into(), async { tokio::join!(child.wait(), collect) }).await {
                Ok((status, text)) => (status?, text),
                Err(_) => {
                    if let Some(pid) = child.id() {
                        kill_group(pid).await;
                    }
                    let _ = child.wait().await;
                    return Err(ScanError::Timeout(timeout));
                }
            };
        if !status.success() {
            let last: String =
                stderr_text.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
            return Err(ScanError::Trivy(format!("{status}: {}", last.chars().take(500).collect::<String>())));
        }
        let json = tokio::fs::read(&report).await?;
        let mut findings = Findings::parse(&json).map_err(|e| ScanError::Report(e.to_string()))?;
        findings.archive = archive;
        Ok(ScanRun { kind, findings, trivy_version: self.trivy_version().await, db_updated_at: self.db_updated_at() })
    }
}

/// Kills a process group (Trivy and anything it started).
pub(crate) async fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}
