//! Safe extraction of hostile archives before a scan. Entries may not leave the root (no
//! absolute paths, no `..`); links and special files are never created, and links that
//! point outside the archive (or that later entries are written through) are reported as
//! findings; every entry counts against the file budget and every decompressed byte,
//! including the data of skipped entries, against the byte and ratio budgets. Header
//! records (GNU long names, PAX extensions) are bounded before they are read, so a small
//! archive cannot make the extractor allocate without limit.
//!
//! This runs inside the unpacker's child process, which is memory-capped and killed at the
//! scan deadline (see `unpack`).

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Bounds on what an archive may expand to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    /// Most decompressed bytes read from the archive (file data, skipped data and headers).
    pub max_bytes: u64,
    /// Most entries of any kind (files, directories, links, special files).
    pub max_files: u64,
    /// Largest allowed ratio of decompressed bytes to archive bytes.
    pub max_ratio: u64,
}

/// Largest GNU long-name/long-link or PAX record read (they are held in memory).
pub const MAX_HEADER_RECORD: u64 = 64 * 1024;

/// Unsafe links reported in full; the rest are only counted.
const MAX_REPORTED_LINKS: usize = 100;

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("archive entry {0:?} would be written outside the scan directory")]
    Escapes(String),
    #[error("archive expands to more than {0} bytes")]
    TooLarge(u64),
    #[error("archive holds more than {0} entries")]
    TooManyFiles(u64),
    #[error("archive expands more than {0}x (compression bomb)")]
    Ratio(u64),
    #[error("archive header record of {size} bytes ({what}) exceeds the limit of {MAX_HEADER_RECORD} bytes")]
    HeaderTooLarge { what: &'static str, size: u64 },
    #[error("archive uses an unsupported feature: {0}")]
    Unsupported(String),
    #[error("archive is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What is wrong with a link found in an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkProblem {
    /// The link's target is an absolute path.
    Absolute,
    /// The target leaves the archive's root.
    OutsideRoot,
    /// A later entry is written through this link (`etc -> /etc`, then `etc/passwd`).
    WrittenThrough,
}

/// A link that a consumer unpacking the archive would be exposed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkFinding {
    /// The link's path in the archive (or, for `written_through`, the entry written through it).
    pub path: String,
    /// The link's target (or, for `written_through`, the link).
    pub target: String,
    pub problem: LinkProblem,
    /// `symlink` or `hardlink`.
    pub kind: String,
}

/// What was extracted (and what was found on the way).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    pub entries: u64,
    pub files: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
    /// Links seen (never created).
    pub links: u64,
    /// Unsafe links, the first `MAX_REPORTED_LINKS` of them.
    pub unsafe_links: Vec<LinkFinding>,
    pub unsafe_link_count: u64,
}

/// Counts every decompressed byte read through its readers against the budget.
#[derive(Clone)]
struct Meter {
    read: Rc<Cell<u64>>,
    exceeded: Rc<Cell<bool>>,
    ceiling: u64,
    limits: Limits,
    archive_bytes: u64,
}

impl Meter {
    fn new(limits: Limits, archive_bytes: u64) -> Self {
        let archive_bytes = archive_bytes.max(1);
        let ceiling = limits.max_bytes.min(archive_bytes.saturating_mul(limits.max_ratio));
        Self { read: Rc::default(), exceeded: Rc::default(), ceiling, limits, archive_bytes }
    }

    fn reader<R: Read>(&self, inner: R) -> Metered<R> {
        Metered { inner, meter: self.clone() }
    }

    fn over(&self) -> ExtractError {
        if self.limits.max_bytes <= self.archive_bytes.saturating_mul(self.limits.max_ratio) {
            ExtractError::TooLarge(self.limits.max_bytes)
        } else {
            ExtractError::Ratio(self.limits.max_ratio)
        }
    }

    /// The budget error wins over whatever error reading produced when the budget ran out.
    fn settle<T>(&self, result: Result<T, ExtractError>) -> Result<T, ExtractError> {
        if self.exceeded.get() {
            return Err(self.over());
        }
        result
    }
}

struct Metered<R> {
    inner: R,
    meter: Meter,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.meter.read.get() + n as u64;
        self.meter.read.set(total);
        if total > self.meter.ceiling {
            self.meter.exceeded.set(true);
            return Err(io::Error::other("extraction budget exceeded"));
        }
        Ok(n)
    }
}

/// One entry of a tar archive, with its long name and PAX records applied.
pub struct TarEntry<'r> {
    pub name: String,
    pub link: Option<String>,
    pub kind: tar::EntryType,
    pub size: u64,
    pub data: &'r mut dyn Read,
}

fn corrupt(e: impl std::fmt::Display) -> ExtractError {
    ExtractError::Corrupt(e.to_string())
}

fn read_record(entry: &mut impl Read, size: u64, what: &'static str) -> Result<Vec<u8>, ExtractError> {
    if size > MAX_HEADER_RECORD {
        return Err(ExtractError::HeaderTooLarge { what, size });
    }
    let mut record = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry.take(size).read_to_end(&mut record)?;
    Ok(record)
}

fn trim_nul(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Walks a (decompressed) tar stream entry by entry. Header records are read here, bounded,
/// never by the tar crate (which would read them whole). `visit` returns false to stop.
pub fn walk_tar<R: Read>(
    reader: R,
    mut visit: impl FnMut(&mut TarEntry<'_>) -> Result<bool, ExtractError>,
) -> Result<(), ExtractError> {
    let mut archive = tar::Archive::new(reader);
    let (mut long_name, mut long_link, mut pax): (Option<String>, Option<String>, Option<Vec<u8>>) = (None, None, None);
    for entry in archive.entries().map_err(corrupt)?.raw(true) {
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        let size = entry.size();
        match kind {
            tar::EntryType::GNULongName => {
                long_name = Some(trim_nul(&read_record(&mut entry, size, "GNU long name")?));
                continue;
            }
            tar::EntryType::GNULongLink => {
                long_link = Some(trim_nul(&read_record(&mut entry, size, "GNU long link")?));
                continue;
            }
            tar::EntryType::XHeader => {
                pax = Some(read_record(&mut entry, size, "PAX extended header")?);
                continue;
            }
            tar::EntryType::XGlobalHeader => {
                read_record(&mut entry, size, "PAX global header")?;
                continue;
            }
            tar::EntryType::GNUSparse => return Err(ExtractError::Unsupported("GNU sparse file".into())),
            _ => {}
        }
        let (mut pax_path, mut pax_link) = (None, None);
        if let Some(records) = pax.take() {
            for record in tar::PaxExtensions::new(&records) {
                let record = record.map_err(|_| corrupt("malformed PAX record"))?;
                match record.key() {
                    Ok("path") => pax_path = Some(String::from_utf8_lossy(record.value_bytes()).into_owned()),
                    Ok("linkpath") => pax_link = Some(String::from_utf8_lossy(record.value_bytes()).into_owned()),
                    // The tar crate in raw mode steps over the header's size: a PAX size
                    // that disagrees would make two parsers see two different archives.
                    Ok("size") if record.value().ok().and_then(|v| v.parse::<u64>().ok()) != Some(size) => {
                        return Err(corrupt("PAX size disagrees with the header"));
                    }
                    Ok(key) if key.starts_with("GNU.sparse") => {
                        return Err(ExtractError::Unsupported("GNU sparse file".into()))
                    }
                    _ => {}
                }
            }
        }
        // Extension records describe the next entry only.
        let (gnu_name, gnu_link) = (long_name.take(), long_link.take());
        let name = pax_path.or(gnu_name).unwrap_or_else(|| trim_nul(&entry.path_bytes()));
        let link = pax_link.or(gnu_link).or_else(|| entry.link_name_bytes().map(|l| trim_nul(&l)));
        let mut view = TarEntry { name, link, kind, size, data: &mut entry };
        if !visit(&mut view)? {
            break;
        }
    }
    Ok(())
}

/// Extracts a tar stream (already decompressed) under `root`. `archive_bytes` is the size of
/// the archive as stored (for the compression ratio).
pub fn tar(reader: impl Read, root: &Path, archive_bytes: u64, limits: Limits) -> Result<Extracted, ExtractError> {
    let meter = Meter::new(limits, archive_bytes);
    let mut extraction = Extraction::new(root, limits);
    let result = walk_tar(meter.reader(reader), |entry| {
        extraction.entry(&entry.name, entry.link.as_deref(), EntryKind::of_tar(entry.kind), &mut *entry.data)?;
        Ok(true)
    });
    meter.settle(result)?;
    extraction.done.bytes = meter.read.get();
    Ok(extraction.done)
}

/// Extracts a zip file (also whl) under `root`.
pub fn zip(file: File, root: &Path, limits: Limits) -> Result<Extracted, ExtractError> {
    let meter = Meter::new(limits, file.metadata()?.len());
    let mut archive = ::zip::ZipArchive::new(file).map_err(corrupt)?;
    if archive.len() as u64 > limits.max_files {
        return Err(ExtractError::TooManyFiles(limits.max_files));
    }
    let mut extraction = Extraction::new(root, limits);
    let result = (|| {
        for i in 0..archive.len() {
            let entry = archive.by_index(i).map_err(corrupt)?;
            let name = entry.name().to_owned();
            let kind = if entry.is_symlink() {
                EntryKind::Symlink
            } else if entry.is_dir() {
                EntryKind::Dir
            } else {
                EntryKind::File
            };
            let mut data = meter.reader(entry);
            let link = match kind {
                EntryKind::Symlink => {
                    let mut target = Vec::new();
                    (&mut data).take(4096).read_to_end(&mut target)?;
                    Some(String::from_utf8_lossy(&target).into_owned())
                }
                _ => None,
            };
            extraction.entry(&name, link.as_deref(), kind, &mut data)?;
        }
        Ok(())
    })();
    meter.settle(result)?;
    extraction.done.bytes = meter.read.get();
    Ok(extraction.done)
}

/// Decompresses a single compressed file into `target`, within the same budget.
pub fn single(reader: impl Read, target: &Path, archive_bytes: u64, limits: Limits) -> Result<Extracted, ExtractError> {
    let meter = Meter::new(limits, archive_bytes);
    let result = (|| {
        let mut out = File::options().write(true).create_new(true).open(target)?;
        io::copy(&mut meter.reader(reader), &mut out)?;
        out.flush()?;
        Ok(())
    })();
    meter.settle(result)?;
    Ok(Extracted { entries: 1, files: 1, bytes: meter.read.get(), ..Extracted::default() })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    /// Devices, FIFOs, unknown types: not created; their data still counts.
    Other,
}

impl EntryKind {
    fn of_tar(kind: tar::EntryType) -> Self {
        match kind {
            k if k.is_file() || k == tar::EntryType::Continuous => EntryKind::File,
            k if k.is_dir() => EntryKind::Dir,
            k if k.is_symlink() => EntryKind::Symlink,
            k if k.is_hard_link() => EntryKind::Hardlink,
            _ => EntryKind::Other,
        }
    }
}

struct Extraction<'a> {
    root: &'a Path,
    limits: Limits,
    done: Extracted,
    /// Paths of the links seen so far (relative to the root).
    link_paths: Vec<PathBuf>,
}

impl<'a> Extraction<'a> {
    fn new(root: &'a Path, limits: Limits) -> Self {
        Self { root, limits, done: Extracted::default(), link_paths: Vec::new() }
    }

    fn entry(
        &mut self,
        name: &str,
        link: Option<&str>,
        kind: EntryKind,
        data: &mut dyn Read,
    ) -> Result<(), ExtractError> {
        self.done.entries += 1;
        if self.done.entries > self.limits.max_files {
            return Err(ExtractError::TooManyFiles(self.limits.max_files));
        }
        let Some(relative) = safe_path(name)? else { return Ok(()) };
        if let Some(through) = self.link_paths.iter().find(|l| relative.starts_with(l) && relative != **l) {
            let through = through.display().to_string();
            self.report(LinkFinding {
                path: name.to_owned(),
                target: through,
                problem: LinkProblem::WrittenThrough,
                kind: "symlink".into(),
            });
        }
        match kind {
            EntryKind::Dir => {
                let dir = self.root.join(&relative);
                if fs::symlink_metadata(&dir).is_ok_and(|m| !m.is_dir()) {
                    return Err(ExtractError::Corrupt(format!("duplicate entry {name:?}")));
                }
                fs::create_dir_all(dir)?;
            }
            EntryKind::File => self.write_file(name, &relative, data)?,
            EntryKind::Symlink | EntryKind::Hardlink => {
                self.done.links += 1;
                let target = link.unwrap_or_default();
                let hard = kind == EntryKind::Hardlink;
                if let Some(problem) = link_problem(&relative, target, hard) {
                    self.report(LinkFinding {
                        path: name.to_owned(),
                        target: target.to_owned(),
                        problem,
                        kind: if hard { "hardlink" } else { "symlink" }.into(),
                    });
                }
                if !hard {
                    self.link_paths.push(relative);
                }
            }
            EntryKind::Other => {}
        }
        Ok(())
    }

    fn report(&mut self, finding: LinkFinding) {
        self.done.unsafe_link_count += 1;
        if self.done.unsafe_links.len() < MAX_REPORTED_LINKS {
            self.done.unsafe_links.push(finding);
        }
    }

    fn write_file(&mut self, name: &str, relative: &Path, data: &mut dyn Read) -> Result<(), ExtractError> {
        self.done.files += 1;
        let target = self.root.join(relative);
        if let Some(parent) = target.parent() {
            if fs::symlink_metadata(parent).is_ok_and(|m| !m.is_dir()) {
                return Err(ExtractError::Corrupt(format!("entry {name:?} is inside a file")));
            }
            fs::create_dir_all(parent)?;
        }
        // A later entry with the same name must not follow or overwrite what an earlier one made.
        let mut out = match File::options().write(true).create_new(true).open(&target) {
            Ok(out) => out,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(ExtractError::Corrupt(format!("duplicate entry {name:?}")))
            }
            Err(e) => return Err(e.into()),
        };
        io::copy(data, &mut out)?;
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

/// Where a link would lead a consumer who unpacks the archive. Symlink targets are relative
/// to the link's directory; hard-link targets are archive paths.
fn link_problem(link: &Path, target: &str, hard: bool) -> Option<LinkProblem> {
    if target.starts_with('/') || target.starts_with('\\') {
        return Some(LinkProblem::Absolute);
    }
    let base = if hard { Path::new("") } else { link.parent().unwrap_or(Path::new("")) };
    let mut depth: i64 = base.components().filter(|c| matches!(c, Component::Normal(_))).count() as i64;
    for component in Path::new(target).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Some(LinkProblem::OutsideRoot);
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Some(LinkProblem::Absolute),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_bytes: 1 << 20, max_files: 10, max_ratio: 100 };

    fn raw_header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(kind);
        // Written raw so that hostile names reach the extractor unchanged.
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        header
    }

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            builder.append(&raw_header(name, tar::EntryType::Regular, data.len() as u64), *data).unwrap();
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
    fn bounds_entries_of_every_kind_and_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        for i in 0..11 {
            builder.append(&raw_header(&format!("d{i}/"), tar::EntryType::Directory, 0), &[][..]).unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let err = tar(&bytes[..], dir.path(), bytes.len() as u64, LIMITS).unwrap_err();
        assert!(matches!(err, ExtractError::TooManyFiles(10)), "directories count: {err}");
        let dir = tempfile::tempdir().unwrap();
        let zeros = vec![0u8; 512 * 1024];
        let bytes = tar_with(&[("z", &zeros)]);
        // Claimed to come from a 1 KiB archive: far above the ratio.
        assert!(matches!(tar(&bytes[..], dir.path(), 1024, LIMITS), Err(ExtractError::Ratio(100))));
    }

    #[test]
    fn data_of_skipped_entries_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let data = vec![0u8; 300 * 1024];
        builder.append(&raw_header("fifo", tar::EntryType::Fifo, data.len() as u64), &data[..]).unwrap();
        let bytes = builder.into_inner().unwrap();
        let limits = Limits { max_bytes: 100 * 1024, ..LIMITS };
        let err = tar(&bytes[..], dir.path(), bytes.len() as u64, limits).unwrap_err();
        assert!(matches!(err, ExtractError::TooLarge(_)), "{err}");
    }

    #[test]
    fn long_header_records_are_bounded_before_they_are_read() {
        for kind in [tar::EntryType::GNULongName, tar::EntryType::XHeader, tar::EntryType::XGlobalHeader] {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = raw_header("././@LongLink", kind, 1 << 30).as_bytes().to_vec();
            bytes.extend_from_slice(&[b'a'; 4096]); // the rest is never read
            let err = tar(&bytes[..], dir.path(), 1 << 40, Limits { max_bytes: u64::MAX, ..LIMITS }).unwrap_err();
            assert!(matches!(err, ExtractError::HeaderTooLarge { size: 1073741824, .. }), "{kind:?}: {err}");
        }
    }

    #[test]
    fn long_names_and_pax_paths_apply() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{}/file", "d".repeat(200));
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        builder.append_data(&mut header, &long, &b"hi"[..]).unwrap();
        let bytes = builder.into_inner().unwrap();
        tar(&bytes[..], dir.path(), bytes.len() as u64, LIMITS).unwrap();
        assert_eq!(fs::read(dir.path().join(&long)).unwrap(), b"hi");
    }

    #[test]
    fn unsafe_links_are_findings() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        for (name, target, kind) in [
            ("etc", "/etc", tar::EntryType::Symlink),
            ("up", "../../x", tar::EntryType::Symlink),
            ("ok", "lib/x.so.1", tar::EntryType::Symlink),
            ("hard", "../outside", tar::EntryType::Link),
        ] {
            let mut header = raw_header(name, kind, 0);
            header.set_link_name(target).unwrap();
            header.set_cksum();
            builder.append(&header, &[][..]).unwrap();
        }
        builder.append(&raw_header("etc/x", tar::EntryType::Regular, 1), &b"x"[..]).unwrap();
        let bytes = builder.into_inner().unwrap();
        let done = tar(&bytes[..], dir.path(), bytes.len() as u64, LIMITS).unwrap();
        let problems: Vec<(&str, LinkProblem)> =
            done.unsafe_links.iter().map(|l| (l.path.as_str(), l.problem)).collect();
        assert_eq!(
            problems,
            [
                ("etc", LinkProblem::Absolute),
                ("up", LinkProblem::OutsideRoot),
                ("hard", LinkProblem::OutsideRoot),
                ("etc/x", LinkProblem::WrittenThrough)
            ]
        );
        assert_eq!(done.links, 4);
        assert!(!dir.path().join("ok").exists() && !fs::symlink_metadata(dir.path().join("etc")).unwrap().is_symlink());
    }
}
