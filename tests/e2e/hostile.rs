//! Hardening findings 2–5 and 14 (and issue 16, point 6): every hostile archive, in every format Arca opens (tar,
//! tar.gz, tgz, zip, tar.xz, tar.bz2, tar.zst), against a real server with real Trivy. None
//! is approved, the server's peak RSS stays under 512 MiB, every scan ends within its
//! deadline, nothing is written outside the scan workspace, and no workspace survives.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::artifacts::wait_final;
use crate::helpers::{Arca, Backend, ADMIN_PASSWORD};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Tar,
    TarGz,
    Tgz,
    Zip,
    TarXz,
    TarBz2,
    TarZst,
}

const FORMATS: [Format; 7] =
    [Format::Tar, Format::TarGz, Format::Tgz, Format::Zip, Format::TarXz, Format::TarBz2, Format::TarZst];

impl Format {
    fn suffix(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::Tgz => "tgz",
            Format::Zip => "zip",
            Format::TarXz => "tar.xz",
            Format::TarBz2 => "tar.bz2",
            Format::TarZst => "tar.zst",
        }
    }

    /// Compresses one independent member/frame (concatenated members are valid streams in
    /// every one of these formats, so a large payload is built from one compressed chunk).
    fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Format::Tar | Format::Zip => data.to_vec(),
            Format::TarGz | Format::Tgz => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Format::TarXz => {
                let mut e = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(0)).unwrap();
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Format::TarBz2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Format::TarZst => ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest),
        }
    }
}

/// One entry of a hostile archive.
#[derive(Clone)]
enum Entry {
    File(String, Vec<u8>),
    Dir(String),
    Symlink(String, String),
    Hardlink(String, String),
    /// A FIFO whose header claims (and carries) this much data.
    Fifo(String, u64),
    /// A GNU long-name record of this many bytes (only its header is bounded-checked).
    LongName(u64),
    /// A PAX extended header of this many bytes.
    PaxRecord(u64),
    /// This many bytes of zeros in one file.
    Zeros(String, u64),
}

fn header(name: &[u8], kind: tar::EntryType, size: u64, link: &str) -> [u8; 512] {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    // Written raw so that hostile names reach the server unchanged.
    let n = name.len().min(100);
    h.as_gnu_mut().unwrap().name[..n].copy_from_slice(&name[..n]);
    if !link.is_empty() {
        h.set_link_name(link).unwrap();
    }
    h.set_cksum();
    *h.as_bytes()
}

/// Appends `size` bytes of `byte` (padded to 512) to the compressed archive, built from one
/// compressed 4 MiB chunk repeated (so a 256 MiB payload costs a few MiB of memory).
fn payload(out: &mut Vec<u8>, format: Format, byte: u8, size: u64) {
    const CHUNK: u64 = 4 << 20;
    let padded = size.div_ceil(512) * 512;
    let chunk = format.compress(&vec![byte; CHUNK as usize]);
    let mut left = padded;
    while left >= CHUNK {
        out.extend_from_slice(&chunk);
        left -= CHUNK;
    }
    if left > 0 {
        out.extend_from_slice(&format.compress(&vec![byte; left as usize]));
    }
}

/// A tar archive in `format`. In an uncompressed tar an oversized header record keeps only
/// its header and a little data (the server must refuse before reading it).
fn tar_archive(format: Format, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let block = |out: &mut Vec<u8>, bytes: &[u8]| out.extend_from_slice(&format.compress(bytes));
    for entry in entries {
        match entry {
            Entry::File(name, data) => {
                block(&mut out, &header(name.as_bytes(), tar::EntryType::Regular, data.len() as u64, ""));
                if !data.is_empty() {
                    let mut padded = data.clone();
                    padded.resize(data.len().div_ceil(512) * 512, 0);
                    block(&mut out, &padded);
                }
            }
            Entry::Dir(name) => block(&mut out, &header(name.as_bytes(), tar::EntryType::Directory, 0, "")),
            Entry::Symlink(name, target) => {
                block(&mut out, &header(name.as_bytes(), tar::EntryType::Symlink, 0, target))
            }
            Entry::Hardlink(name, target) => block(&mut out, &header(name.as_bytes(), tar::EntryType::Link, 0, target)),
            Entry::Fifo(name, size) => {
                block(&mut out, &header(name.as_bytes(), tar::EntryType::Fifo, *size, ""));
                payload(&mut out, format, 0, *size);
            }
            Entry::Zeros(name, size) => {
                block(&mut out, &header(name.as_bytes(), tar::EntryType::Regular, *size, ""));
                payload(&mut out, format, 0, *size);
            }
            Entry::LongName(size) | Entry::PaxRecord(size) => {
                let kind = if matches!(entry, Entry::LongName(_)) {
                    tar::EntryType::GNULongName
                } else {
                    tar::EntryType::XHeader
                };
                block(&mut out, &header(b"././@LongLink", kind, *size, ""));
                if format == Format::Tar {
                    // Uncompressed, the whole record would have to be uploaded: the header
                    // alone shows the bound is checked before anything is read.
                    out.extend_from_slice(&[b'a'; 4096]);
                    return out;
                }
                payload(&mut out, format, b'a', *size);
                block(&mut out, &header(b"victim", tar::EntryType::Regular, 0, ""));
            }
        }
    }
    block(&mut out, &[0u8; 1024]);
    out
}

fn zip_archive(entries: &[Entry]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for entry in entries {
        match entry {
            Entry::File(name, data) => {
                writer.start_file(name.as_str(), options).unwrap();
                writer.write_all(data).unwrap();
            }
            Entry::Dir(name) => writer.add_directory(name.as_str(), options).unwrap(),
            Entry::Symlink(name, target) => writer.add_symlink(name.as_str(), target.as_str(), options).unwrap(),
            Entry::Zeros(name, size) => {
                writer.start_file(name.as_str(), options.large_file(*size > u32::MAX as u64)).unwrap();
                let chunk = vec![0u8; 1 << 20];
                let mut left = *size;
                while left > 0 {
                    let n = left.min(chunk.len() as u64);
                    writer.write_all(&chunk[..n as usize]).unwrap();
                    left -= n;
                }
            }
            Entry::Hardlink(..) | Entry::Fifo(..) | Entry::LongName(_) | Entry::PaxRecord(_) => {
                unreachable!("not representable in zip")
            }
        }
    }
    writer.finish().unwrap().into_inner()
}

/// A hostile case: its entries, the outcome it must have and words its reason must hold.
struct Case {
    name: &'static str,
    entries: Vec<Entry>,
    status: &'static str,
    reason: &'static str,
    zip: bool,
}

const MIB: u64 = 1 << 20;

fn cases(marker: &str) -> Vec<Case> {
    let file = |n: &str, d: &[u8]| Entry::File(n.to_owned(), d.to_vec());
    vec![
        Case {
            name: "long-name-bomb",
            entries: vec![Entry::LongName(256 * MIB)],
            status: "failed",
            reason: "header record of 268435456 bytes",
            zip: false,
        },
        Case {
            name: "pax-bomb",
            entries: vec![Entry::PaxRecord(256 * MIB)],
            status: "failed",
            reason: "header record of 268435456 bytes",
            zip: false,
        },
        Case {
            name: "traversal",
            entries: vec![file(&format!("../../{marker}"), b"x")],
            status: "failed",
            reason: "outside the scan directory",
            zip: true,
        },
        Case {
            name: "absolute",
            entries: vec![file(&format!("/tmp/{marker}"), b"x")],
            status: "failed",
            reason: "outside the scan directory",
            zip: true,
        },
        Case {
            name: "symlink-escape",
            entries: vec![Entry::Symlink("etc".into(), "/etc".into()), file(&format!("etc/{marker}"), b"root:x:0:0")],
            status: "quarantined",
            reason: "absolute path /etc",
            zip: true,
        },
        Case {
            name: "relative-link-escape",
            entries: vec![Entry::Symlink("up".into(), "../../../tmp".into()), file("readme", b"hi")],
            status: "quarantined",
            reason: "points outside the archive",
            zip: true,
        },
        Case {
            name: "hardlink-escape",
            entries: vec![Entry::Hardlink("hard".into(), format!("../../{marker}")), file("readme", b"hi")],
            status: "quarantined",
            reason: "points outside the archive",
            zip: false,
        },
        Case {
            name: "hardlink-absolute",
            entries: vec![Entry::Hardlink("passwd".into(), "/etc/passwd".into()), file("readme", b"hi")],
            status: "quarantined",
            reason: "/etc/passwd",
            zip: false,
        },
        Case {
            // Incompressible bytes make the archive large enough that the ratio allows more
            // than the byte budget: the total-size limit is what refuses it.
            name: "too-large",
            entries: vec![Entry::File("noise".into(), noise(512 * 1024)), Entry::Zeros("zeros".into(), 48 * MIB)],
            status: "failed",
            reason: "archive expands to more than 33554432 bytes",
            zip: true,
        },
        Case {
            name: "bomb",
            entries: vec![Entry::Zeros("zeros".into(), 48 * MIB)],
            status: "failed",
            reason: "archive expands",
            zip: true,
        },
        Case {
            name: "many-dirs",
            entries: (0..1500).map(|i| Entry::Dir(format!("d{i}/"))).collect(),
            status: "failed",
            reason: "more than 1000 entries",
            zip: true,
        },
        Case {
            name: "fifo-data",
            entries: vec![Entry::Fifo("fifo".into(), 48 * MIB)],
            status: "failed",
            reason: "archive expands",
            zip: false,
        },
    ]
}

/// Incompressible bytes (xorshift).
fn noise(size: usize) -> Vec<u8> {
    crate::artifacts::payload(size, 77)
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn find_named(dir: &Path, name: &str, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().contains(name) {
            found.push(path.display().to_string());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            find_named(&path, name, found);
        }
    }
}

async fn submit(arca: &Arca, token: &str, name: &str, filename: &str, bytes: Vec<u8>) -> (Value, Duration) {
    let api = arca.api(Some(token));
    let options = arca_client::PushOptions {
        filename: Some(filename.to_owned()),
        resume: false,
        wait: None,
        ..Default::default()
    };
    let source = arca_client::Source::bytes(bytes);
    let (sha256, size) = source.digest(None).await.unwrap();
    let declared = arca_client::NewArtifact {
        name: name.to_owned(),
        version: "1.0.0".to_owned(),
        filename: filename.to_owned(),
        size,
        sha256,
        labels: Default::default(),
        description: String::new(),
    };
    let created = api.create_artifact(&declared).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    let id = created.artifact.id;
    api.upload(&id, &created.upload, &source, size, &options).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    let started = Instant::now();
    api.complete(&id).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    let done = wait_final(arca, token, &id).await;
    (done, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_archives_in_every_format_are_refused_and_contained() {
    let dir = tempfile::tempdir().unwrap();
    let deadline = 60;
    let arca = Arca::builder(dir.path(), Backend::Sqlite)
        .await
        .env("ARCA_SCAN_TIMEOUT", &deadline.to_string())
        .env("ARCA_SCAN_MAX_FILES", "1000")
        .env("ARCA_SCAN_MAX_EXTRACT_BYTES", &(32 * MIB).to_string())
        .env("ARCA_SCAN_CONCURRENCY", "2")
        .start()
        .await;
    let admin = arca.login("admin", ADMIN_PASSWORD).await;
    let marker = format!("arca-escape-{}", uuid::Uuid::new_v4().simple());
    let mut work = Vec::new();
    for format in FORMATS {
        for case in cases(&marker) {
            if format == Format::Zip && !case.zip {
                continue; // hard links, FIFOs and tar header records do not exist in zip
            }
            let bytes =
                if format == Format::Zip { zip_archive(&case.entries) } else { tar_archive(format, &case.entries) };
            let name = format!("{}-{}", case.name, format.suffix().replace('.', "-"));
            let filename = format!("{}.{}", case.name, format.suffix());
            work.push((name, filename, bytes, case.status, case.reason));
        }
    }
    // An archive format Arca cannot open is never approved unscanned.
    let mut seven_zip = b"7z\xbc\xaf\x27\x1c\x00\x04".to_vec();
    seven_zip.extend_from_slice(&[0u8; 64]);
    work.push(("unsupported-7z".into(), "tool.7z".into(), seven_zip, "quarantined", "7z archives cannot be opened"));
    let total = work.len();
    let outcomes: Vec<(String, Value, Duration, &str, &str)> = futures::stream::iter(work)
        .map(|(name, filename, bytes, status, reason)| {
            let (arca, admin) = (&arca, &admin);
            async move {
                let (done, took) = submit(arca, admin, &name, &filename, bytes).await;
                (name, done, took, status, reason)
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    assert_eq!(outcomes.len(), total);
    for (name, done, took, status, reason) in &outcomes {
        assert_ne!(done["status"], "approved", "{name} was approved: {done}");
        assert_eq!(done["status"], *status, "{name}: {done}");
        let why = format!("{} {}", done["status_reason"].as_str().unwrap_or(""), done["policy_reasons"]);
        assert!(why.contains(reason), "{name}: expected {reason:?} in {why}");
        assert!(
            *took < Duration::from_secs(deadline + 10),
            "{name} took {took:?}, beyond its deadline of {deadline} s"
        );
    }
    let peak = peak_rss_kib(arca.pid());
    assert!(peak < 512 * 1024, "the server's peak RSS was {} MiB", peak / 1024);
    // Nothing escaped, and every workspace (decrypted plaintext) is gone.
    let mut escaped = Vec::new();
    find_named(dir.path(), &marker, &mut escaped);
    for outside in [format!("/tmp/{marker}"), format!("/etc/{marker}")] {
        if Path::new(&outside).exists() {
            escaped.push(outside);
        }
    }
    assert!(escaped.is_empty(), "written outside the workspace: {escaped:?}");
    assert_eq!(std::fs::read_dir(arca.data_dir.join("scans")).unwrap().count(), 0, "workspaces left behind");
    eprintln!("{total} hostile archives refused; peak RSS {} MiB", peak / 1024);
}
