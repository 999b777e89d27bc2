//! Scanning with Trivy: the blob is fetched to a private directory, its kind detected,
//! archives safely extracted, and Trivy run offline (no DB download, no telemetry) with a
//! deadline after which its whole process group is killed.

pub mod detect;
pub mod extract;
pub mod policy;
pub mod report;
pub mod service;
pub mod trivydb;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

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
}

/// Why a scan did not produce findings.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("archive refused: {0}")]
    Archive(#[from] extract::ExtractError),
    #[error("scan exceeded its deadline of {0} s")]
    Timeout(u64),
    #[error("trivy failed: {0}")]
    Trivy(String),
    #[error("unreadable trivy report: {0}")]
    Report(String),
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
    pub skipped_links: u64,
}

pub struct Scanner {
    pub config: ScanConfig,
    permits: Semaphore,
    version: OnceCell<String>,
}

impl Scanner {
    pub fn new(config: ScanConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.work_dir)?;
        std::fs::create_dir_all(&config.cache_dir)?;
        crate::fsutil::restrict_dir(&config.work_dir)?;
        Ok(Self { permits: Semaphore::new(config.concurrency.max(1)), version: OnceCell::new(), config })
    }

    /// `UpdatedAt` of the vulnerability DB in use (None when there is no DB).
    pub fn db_updated_at(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.config.cache_dir.join("db/metadata.json")).ok()?;
        let meta: serde_json::Value = serde_json::from_str(&text).ok()?;
        meta["UpdatedAt"].as_str().map(str::to_owned)
    }

    /// Trivy's version (asked once; call at start-up so no scan waits for it).
    pub async fn trivy_version(&self) -> String {
        self.version
            .get_or_init(|| async {
                let out = tokio::process::Command::new(&self.config.trivy)
                    .args(["--version", "--format", "json"])
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

    /// A private working directory for one scan (removed when dropped).
    pub fn workspace(&self) -> std::io::Result<tempfile::TempDir> {
        tempfile::Builder::new().prefix("scan-").tempdir_in(&self.config.work_dir)
    }

    /// Scans the file `blob` (inside `workspace`), published as `filename`.
    pub async fn scan(&self, workspace: &Path, blob: &Path, filename: &str) -> Result<ScanRun, ScanError> {
        let _permit = self.permits.acquire().await.map_err(|_| ScanError::Trivy("scanner stopped".into()))?;
        let kind = detect::detect(blob, filename)?;
        let root = workspace.join("root");
        let mut skipped_links = 0;
        let (command, target): (&[&str], PathBuf) = match kind {
            Kind::Image => {
                // Trivy reads a docker-save tarball as is, an OCI layout only as a directory.
                extract_blocking(kind, blob, &root, self.config.limits).await?;
                let oci = root.join("oci-layout").is_file();
                (&["image", "--input"], if oci { root.clone() } else { blob.to_owned() })
            }
            Kind::Sbom => (&["sbom"], blob.to_owned()),
            Kind::Tar | Kind::TarGz | Kind::Zip => {
                skipped_links = extract_blocking(kind, blob, &root, self.config.limits).await?.skipped_links;
                (&["rootfs"], root.clone())
            }
            Kind::Jar | Kind::File => {
                tokio::fs::create_dir(&root).await?;
                let name = safe_file_name(filename);
                let placed = root.join(&name);
                tokio::fs::rename(blob, &placed).await?;
                // Trivy looks for Go/Rust module info in executables only.
                set_executable(&placed)?;
                (&["rootfs"], root.clone())
            }
        };
        let report = workspace.join("report.json");
        let scanners = if kind == Kind::Sbom { "vuln,license" } else { "vuln,secret,license" };
        let timeout = self.config.timeout.as_secs().max(1);
        let mut child = tokio::process::Command::new(&self.config.trivy)
            .args(command)
            .arg(&target)
            .args(["--scanners", scanners, "--format", "json", "--output"])
            .arg(&report)
            .args(["--skip-db-update", "--skip-java-db-update", "--skip-version-check", "--disable-telemetry"])
            .args(["--offline-scan", "--no-progress", "--quiet", "--cache-backend", "memory", "--cache-dir"])
            .arg(&self.config.cache_dir)
            .arg("--timeout")
            .arg(format!("{timeout}s"))
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
        let deadline = self.config.timeout + Duration::from_secs(5);
        let (status, stderr_text) =
            match tokio::time::timeout(deadline, async { tokio::join!(child.wait(), collect) }).await {
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
        let findings = Findings::parse(&json).map_err(|e| ScanError::Report(e.to_string()))?;
        Ok(ScanRun {
            kind,
            findings,
            trivy_version: self.trivy_version().await,
            db_updated_at: self.db_updated_at(),
            skipped_links,
        })
    }
}

/// Safely extracts the archive `blob` into the new directory `root` (off the async threads).
async fn extract_blocking(
    kind: Kind,
    blob: &Path,
    root: &Path,
    limits: extract::Limits,
) -> Result<extract::Extracted, ScanError> {
    let (blob, root) = (blob.to_owned(), root.to_owned());
    tokio::task::spawn_blocking(move || -> Result<extract::Extracted, ScanError> {
        std::fs::create_dir(&root)?;
        let size = std::fs::metadata(&blob)?.len();
        let file = std::fs::File::open(&blob)?;
        Ok(match kind {
            Kind::TarGz => extract::tar(flate2::read::GzDecoder::new(file), &root, size, limits)?,
            Kind::Zip => extract::zip(file, &root, limits)?,
            _ => extract::tar(file, &root, size, limits)?,
        })
    })
    .await
    .map_err(|e| ScanError::Trivy(e.to_string()))?
}

/// The publisher's file name reduced to a safe single component.
fn safe_file_name(filename: &str) -> String {
    let name: String =
        filename.chars().map(|c| if c.is_ascii_alphanumeric() || "._-+".contains(c) { c } else { '_' }).collect();
    match name.trim_start_matches('.') {
        "" => "artifact".to_owned(),
        n => n.to_owned(),
    }
}

fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Kills a process group (Trivy and anything it started).
async fn kill_group(pid: u32) {
    let _ = tokio::process::Command::new("kill").args(["-s", "KILL", "--", &format!("-{pid}")]).status().await;
}
