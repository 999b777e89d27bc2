//! Unpacking in a child process. Detection and extraction read hostile bytes, so they run
//! in a child of the server (the same executable, started with a hidden first argument)
//! whose address space is capped, whose environment is empty, and which is killed at the
//! scan deadline. A decompression or header bomb then ends that child, never the server
//! and the functions that share its process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::detect::{self, Kind};
use super::extract::{self, ExtractError, Extracted, Limits};

/// First argument that turns an Arca executable into the unpacker child.
pub const CHILD_ARG: &str = "__arca-unpack";

/// What the child is asked to do.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    blob: PathBuf,
    root: PathBuf,
    filename: String,
    limits: Limits,
    memory_limit: u64,
}

/// What unpacking produced: the kind, and what was extracted into the root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unpacked {
    pub kind: Kind,
    pub extracted: Extracted,
}

#[derive(Debug, Serialize, Deserialize)]
enum Outcome {
    Unpacked(Unpacked),
    /// The archive itself is refused (permanent).
    Refused(String),
    /// Unpacking failed for a reason outside the archive (disk full, …): retry.
    Failed(String),
}

/// Why unpacking did not produce a tree to scan.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("archive refused: {0}")]
    Refused(String),
    #[error("unpacking exceeded the scan deadline")]
    Timeout,
    #[error("unpacking failed: {0}")]
    Failed(String),
}

/// If this process was started as the unpacker child, unpacks and exits. Every Arca
/// executable calls this first thing in `main`.
pub fn run_child_if_requested() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(CHILD_ARG)) {
        return;
    }
    let outcome = match args.next().and_then(|a| serde_json::from_str::<Request>(&a.to_string_lossy()).ok()) {
        Some(request) => child(&request),
        None => Outcome::Failed("malformed unpack request".into()),
    };
    println!("{}", serde_json::to_string(&outcome).unwrap_or_default());
    std::process::exit(0);
}

fn child(request: &Request) -> Outcome {
    use rlimit::Resource;
    let capped = rlimit::setrlimit(Resource::AS, request.memory_limit, request.memory_limit)
        .and_then(|()| rlimit::setrlimit(Resource::CORE, 0, 0));
    if let Err(e) = capped {
        return Outcome::Failed(format!("cannot cap the unpacker's memory: {e}"));
    }
    match unpack(request) {
        Ok(unpacked) => Outcome::Unpacked(unpacked),
        Err(ExtractError::Io(e)) => Outcome::Failed(e.to_string()),
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

fn unpack(request: &Request) -> Result<Unpacked, ExtractError> {
    let (blob, root, limits) = (&request.blob, &request.root, request.limits);
    let kind = detect::detect(blob, &request.filename)?;
    std::fs::create_dir(root)?;
    let archive_bytes = std::fs::metadata(blob)?.len();
    let extracted = match kind {
        Kind::Tar(compression) => {
            extract::tar(compression.decoder(std::fs::File::open(blob)?)?, root, archive_bytes, limits)?
        }
        // Trivy reads a docker-save tarball as is, an OCI layout only as a directory.
        Kind::Image => extract::tar(std::fs::File::open(blob)?, root, archive_bytes, limits)?,
        Kind::Zip => extract::zip(std::fs::File::open(blob)?, root, limits)?,
        Kind::Compressed(compression) => {
            let name = strip_compression_suffix(&safe_file_name(&request.filename));
            let target = root.join(name);
            let done =
                extract::single(compression.decoder(std::fs::File::open(blob)?)?, &target, archive_bytes, limits)?;
            set_executable(&target)?;
            done
        }
        Kind::Jar | Kind::File => place_file(blob, root, &request.filename)?,
        Kind::Sbom | Kind::Unsupported(_) => Extracted::default(),
    };
    Ok(Unpacked { kind, extracted })
}

/// Moves a single file into `root` under a safe name (Trivy looks for Go/Rust module info
/// in executables only, so it is made executable).
pub fn place_file(blob: &Path, root: &Path, filename: &str) -> std::io::Result<Extracted> {
    if !root.is_dir() {
        std::fs::create_dir(root)?;
    }
    let placed = root.join(safe_file_name(filename));
    std::fs::rename(blob, &placed)?;
    set_executable(&placed)?;
    Ok(Extracted { entries: 1, files: 1, ..Extracted::default() })
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

fn strip_compression_suffix(name: &str) -> String {
    for suffix in [".gz", ".xz", ".bz2", ".zst", ".zstd"] {
        if let Some(stem) = name.strip_suffix(suffix).filter(|s| !s.is_empty()) {
            return stem.to_owned();
        }
    }
    format!("{name}.out")
}

fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// How the parent starts the child.
#[derive(Debug, Clone)]
pub struct Unpacker {
    /// The executable to run as the child (an Arca binary: `arca` or a function).
    pub program: PathBuf,
    /// Address-space cap of the child, in bytes.
    pub memory_limit: u64,
}

impl Unpacker {
    /// Unpacks `blob` (in `workspace`) into `workspace/root`, killed at `deadline`.
    pub async fn run(
        &self,
        workspace: &Path,
        blob: &Path,
        filename: &str,
        limits: Limits,
        deadline: Instant,
    ) -> Result<Unpacked, UnpackError> {
        let request = Request {
            blob: blob.to_owned(),
            root: workspace.join("root"),
            filename: filename.to_owned(),
            limits,
            memory_limit: self.memory_limit,
        };
        let request = serde_json::to_string(&request).map_err(|e| UnpackError::Failed(e.to_string()))?;
        let mut child = tokio::process::Command::new(&self.program)
            .arg(CHILD_ARG)
            .arg(request)
            .env_clear()
            .current_dir(workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| UnpackError::Failed(format!("cannot start the unpacker {}: {e}", self.program.display())))?;
        let mut stdout = child.stdout.take();
        let collect = async move {
            let mut text = String::new();
            if let Some(out) = stdout.as_mut() {
                let _ = out.take(4 * 1024 * 1024).read_to_string(&mut text).await;
            }
            text
        };
        let waited = tokio::time::timeout_at(deadline.into(), async { tokio::join!(child.wait(), collect) }).await;
        let (status, output) = match waited {
            Ok((status, output)) => (status.map_err(|e| UnpackError::Failed(e.to_string()))?, output),
            Err(_) => {
                if let Some(pid) = child.id() {
                    super::kill_group(pid).await;
                }
                let _ = child.wait().await;
                return Err(UnpackError::Timeout);
            }
        };
        if !status.success() || output.trim().is_empty() {
            use std::os::unix::process::ExitStatusExt;
            // An allocation refused under the cap aborts the child (SIGABRT); the kernel may
            // also kill it. Either way the archive took more than it may.
            let why = match status.signal() {
                Some(signal) => format!(
                    "unpacking exceeded its memory cap of {} MiB (signal {signal})",
                    self.memory_limit / (1024 * 1024)
                ),
                None => format!("the unpacker failed ({status})"),
            };
            return Err(UnpackError::Refused(why));
        }
        let line = output.lines().last().unwrap_or_default();
        match serde_json::from_str::<Outcome>(line) {
            Ok(Outcome::Unpacked(unpacked)) => Ok(unpacked),
            Ok(Outcome::Refused(why)) => Err(UnpackError::Refused(why)),
            Ok(Outcome::Failed(why)) => Err(UnpackError::Failed(why)),
            Err(_) => Err(UnpackError::Failed("unreadable answer from the unpacker".into())),
        }
    }
}
