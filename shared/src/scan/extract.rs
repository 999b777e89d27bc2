//! Safe extraction of archives before a scan: entries may not leave the root (no absolute
//! paths, no `..`), links and special files are never created, and totals are bounded
//! (bytes, files, compression ratio) so a bomb stops early with a clear reason.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

/// Bounds on what an archive may expand to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_files: u64,
    /// Largest allowed ratio of extracted bytes to archive bytes.
    pub max_ratio: u64,
}

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("archive entry {0:?} would be written outside the scan directory")]
    Escapes(String),
    #[error("archive expands to more than {0} bytes")]
    TooLarge(u64),
    #[error("archive holds more than {0} files")]
    TooManyFiles(u64),
    #[error("archive expands more than {0}x (compression bomb)")]
    Ratio(u64),
    #[error("archive is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What was extracted (and what was left out on purpose).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Extracted {
    pub files: u64,
    pub bytes: u64,
    pub skipped_links: u64,
}

struct Budget {
    limits: Limits,
    archive_bytes: u64,
    done: Extracted,
}

impl Budget {
    fn new(limits: Limits, archive_bytes: u64) -> Self {
        Self { limits, archive_bytes: archive_bytes.max(1), done: Extracted::default() }
    }

    fn ceiling(&self) -> u64 {
        self.limits.max_bytes.min(self.archive_bytes.saturating_mul(self.limits.max_ratio))
    }

    fn over(&self) -> ExtractError {
        if self.limits.max_bytes <= self.archive_bytes.saturating_mul(self.limits.max_ratio) {
            ExtractError::TooLarge(self.limits.max_bytes)
        } else {
            ExtractError::Ratio(self.limits.max_ratio)
        }
    }

    /// Copies one file's bytes, within the remaining budget.
    fn write_file(
        &mut self,
        root: &Path,
        name: &str,
        relative: &Path,
        reader: &mut dyn Read,
    ) -> Result<(), ExtractError> {
        self.done.files += 1;
        if self.done.files > self.limits.max_files {
            return Err(ExtractError::TooManyFiles(self.limits.max_files));
        }
        let target = root.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        // A later entry with the same name must not follow anything an earlier one made.
        if fs::symlink_metadata(&target).is_ok() {
            return Err(ExtractError::Corrupt(format!("duplicate entry {name:?}")));
        }
        let mut out = File::options().write(true).create_new(true).open(&target)?;
        let remaining = self.ceiling().saturating_sub(self.done.bytes);
        let copied = io::copy(&mut reader.take(remaining + 1), &mut out)?;
        self.done.bytes += copied;
        if copied > remaining {
            return Err(self.over());
        }
        out.flush()?;
        Ok(())
    }
}

/// The entry's path inside the root, or why it is refused.
fn safe_path(name: &str) -> Result<Option<PathBuf>, ExtractError> {
    let mut out = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ExtractError::Escapes(name.to_owned()))
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Extracts a tar stream (already decompressed if it was gzip) under `root`.
pub fn tar(reader: impl Read, root: &Path, archive_bytes: u64, limits: Limits) -> Result<Extracted, ExtractError> {
    let mut budget = Budget::new(limits, archive_bytes);
    let mut archive = ::tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| ExtractError::Corrupt(e.to_string()))? {
        let mut entry = entry.map_err(|e| ExtractError::Corrupt(e.to_string()))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(relative) = safe_path(&name)? else { continue };
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::create_dir_all(root.join(&relative))?;
        } else if kind.is_file() || kind == ::tar::EntryType::Continuous {
            budget.write_file(root, &name, &relative, &mut entry)?;
        } else if kind.is_symlink() || kind.is_hard_link() {
            budget.done.skipped_links += 1; // never created: a link could point anywhere
        }
        // Devices, FIFOs and extended headers are ignored.
    }
    Ok(budget.done)
}

/// Extracts a zip file (also jar/war/whl) under `root`.
pub fn zip(file: File, root: &Path, limits: Limits) -> Result<Extracted, ExtractError> {
    let archive_bytes = file.metadata()?.len();
    let mut budget = Budget::new(limits, archive_bytes);
    let mut archive = ::zip::ZipArchive::new(file).map_err(|e| ExtractError::Corrupt(e.to_string()))?;
    if archive.len() as u64 > limits.max_files {
        return Err(ExtractError::TooManyFiles(limits.max_files));
    }
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| ExtractError::Corrupt(e.to_string()))?;
        let name = entry.name().to_owned();
        let Some(relative) = safe_path(&name)? else { continue };
        if entry.is_symlink() {
            budget.done.skipped_links += 1;
        } else if entry.is_dir() {
            fs::create_dir_all(root.join(&relative))?;
        } else {
            budget.write_file(root, &name, &relative, &mut entry)?;
        }
    }
    Ok(budget.done)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_bytes: 1 << 20, max_files: 10, max_ratio: 100 };

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = ::tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = ::tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            // Written raw so that hostile names reach the extractor unchanged.
            header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn refuses_escapes() {
        for name in ["../evil", "a/../../evil", "/etc/evil"] {
            let dir = tempfile::tempdir().unwrap();
            let bytes = tar_with(&[(name, b"x")]);
            let err = tar(&bytes[..], dir.path(), bytes.len() as u64, LIMITS).unwrap_err();
            assert!(matches!(err, ExtractError::Escapes(_)), "{name}: {err}");
        }
    }

    #[test]
    fn bounds_files_and_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let many: Vec<(String, Vec<u8>)> = (0..11).map(|i| (format!("f{i}"), vec![1u8])).collect();
        let entries: Vec<(&str, &[u8])> = many.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        let bytes = tar_with(&entries);
        assert!(matches!(tar(&bytes[..], dir.path(), bytes.len() as u64, LIMITS), Err(ExtractError::TooManyFiles(10))));
        let dir = tempfile::tempdir().unwrap();
        let zeros = vec![0u8; 512 * 1024];
        let bytes = tar_with(&[("z", &zeros)]);
        // Claimed to come from a 1 KiB archive: far above the ratio.
        assert!(matches!(tar(&bytes[..], dir.path(), 1024, LIMITS), Err(ExtractError::Ratio(100))));
    }
}
