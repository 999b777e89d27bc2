//! What an artifact is, from its first bytes and its name: this decides how Trivy sees it.
//! Runs inside the unpacker's memory-capped child process (it reads hostile bytes).

use std::io::{BufReader, Read};
use std::path::Path;

use super::extract::{self, ExtractError};

/// How a tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Bzip2,
    Zstd,
}

impl Compression {
    /// The decompressed stream of `reader`.
    pub fn decoder<'a, R: Read + 'a>(self, reader: R) -> Result<Box<dyn Read + 'a>, ExtractError> {
        let reader = BufReader::with_capacity(64 * 1024, reader);
        Ok(match self {
            Compression::None => Box::new(reader),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
            Compression::Xz => Box::new(lzma_rust2::XzReader::new(reader, true)),
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(reader)),
            Compression::Zstd => Box::new(ZstdFrames::new(reader)?),
        })
    }

    fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Bzip2 => ".bz2",
            Compression::Zstd => ".zst",
        }
    }
}

/// A zstd stream of one or more concatenated frames (as `zstd` writes for `cat a.zst b.zst`).
struct ZstdFrames<R: std::io::BufRead> {
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: std::io::BufRead> ZstdFrames<R> {
    fn new(reader: R) -> Result<Self, ExtractError> {
        let frame =
            ruzstd::decoding::StreamingDecoder::new(reader).map_err(|e| ExtractError::Corrupt(format!("zstd: {e}")))?;
        Ok(Self { frame: Some(frame) })
    }
}

impl<R: std::io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(frame) = self.frame.as_mut() else { return Ok(0) };
            let n = frame.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // End of a frame: another one may follow.
            let Some(frame) = self.frame.take() else { return Ok(0) };
            let mut source = frame.into_inner();
            if source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            let next = ruzstd::decoding::StreamingDecoder::new(source)
                .map_err(|e| std::io::Error::other(format!("zstd: {e}")))?;
            self.frame = Some(next);
        }
    }
}

/// What an artifact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Kind {
    /// OCI layout or `docker save` tarball: `trivy image --input`.
    Image,
    /// CycloneDX or SPDX JSON: `trivy sbom`.
    Sbom,
    /// A tar archive, possibly compressed: extracted, then `trivy rootfs`.
    Tar(Compression),
    Zip,
    /// Java archives are analysed whole by Trivy (not extracted).
    Jar,
    /// One compressed file that is not a tar: decompressed, then scanned as a file.
    Compressed(Compression),
    /// Anything else (e.g. a Go or Rust binary): scanned as a file in a directory.
    File,
    /// An archive format Arca cannot open (7z, rar, cpio, …): never approved unscanned
    /// unless the policy allows it.
    Unsupported(UnsupportedFormat),
}

/// Archive and compression formats Arca recognises but cannot open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsupportedFormat {
    SevenZip,
    Rar,
    Cpio,
    Ar,
    Rpm,
    Lz4,
    Lzip,
    UnixCompress,
    Cab,
    Xar,
    Squashfs,
    Iso9660,
}

impl UnsupportedFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            UnsupportedFormat::SevenZip => "7z",
            UnsupportedFormat::Rar => "rar",
            UnsupportedFormat::Cpio => "cpio",
            UnsupportedFormat::Ar => "ar (deb)",
            UnsupportedFormat::Rpm => "rpm",
            UnsupportedFormat::Lz4 => "lz4",
            UnsupportedFormat::Lzip => "lzip",
            UnsupportedFormat::UnixCompress => "compress (.Z)",
            UnsupportedFormat::Cab => "cab",
            UnsupportedFormat::Xar => "xar",
            UnsupportedFormat::Squashfs => "squashfs",
            UnsupportedFormat::Iso9660 => "iso9660",
        }
    }
}

impl Kind {
    /// The name recorded with a scan (`tar.xz`, `zip`, `unsupported:7z`, …).
    pub fn name(self) -> String {
        match self {
            Kind::Image => "image".into(),
            Kind::Sbom => "sbom".into(),
            Kind::Tar(c) => format!("tar{}", c.suffix()),
            Kind::Zip => "zip".into(),
            Kind::Jar => "jar".into(),
            Kind::Compressed(c) => format!("file{}", c.suffix()),
            Kind::File => "file".into(),
            Kind::Unsupported(f) => format!("unsupported:{}", f.as_str()),
        }
    }
}

/// Largest JSON document looked at to recognise an SBOM.
const SBOM_MAX: u64 = 64 * 1024 * 1024;

/// Detects the kind of the file at `path` (named `filename` by its publisher).
pub fn detect(path: &Path, filename: &str) -> Result<Kind, ExtractError> {
    let mut head = [0u8; 1024];
    let n = read_up_to(&mut std::fs::File::open(path)?, &mut head)?;
    let head = &head[..n];
    let lower = filename.to_ascii_lowercase();
    if let Some(compression) = compression_of(head) {
        // Compressed: a tar inside, or a single compressed file.
        let mut inner = [0u8; 512];
        let decoded = read_up_to(&mut compression.decoder(std::fs::File::open(path)?)?, &mut inner);
        return Ok(match decoded {
            Ok(512) if is_tar_header(&inner) => Kind::Tar(compression),
            _ => Kind::Compressed(compression),
        });
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        let java = [".jar", ".war", ".ear", ".par"].iter().any(|e| lower.ends_with(e));
        return Ok(if java { Kind::Jar } else { Kind::Zip });
    }
    if let Some(format) = unsupported_format(path, head)? {
        return Ok(Kind::Unsupported(format));
    }
    if n >= 512 && is_tar_header(&head[..512]) {
        return Ok(if is_image_tar(path)? { Kind::Image } else { Kind::Tar(Compression::None) });
    }
    let first = head.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') && std::fs::metadata(path)?.len() <= SBOM_MAX && is_sbom(path) {
        return Ok(Kind::Sbom);
    }
    Ok(Kind::File)
}

fn compression_of(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Compression::Xz)
    } else if head.starts_with(b"BZh") && head.get(3).is_some_and(|b| (b'1'..=b'9').contains(b)) {
        Some(Compression::Bzip2)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else {
        None
    }
}

fn unsupported_format(path: &Path, head: &[u8]) -> std::io::Result<Option<UnsupportedFormat>> {
    use UnsupportedFormat::*;
    let magic: &[(&[u8], UnsupportedFormat)] = &[
        (b"7z\xbc\xaf\x27\x1c", SevenZip),
        (b"Rar!\x1a\x07", Rar),
        (b"070701", Cpio),
        (b"070702", Cpio),
        (b"070707", Cpio),
        (b"\xc7\x71", Cpio),
        (b"!<arch>\n", Ar),
        (b"\xed\xab\xee\xdb", Rpm),
        (b"\x04\x22\x4d\x18", Lz4),
        (b"LZIP", Lzip),
        (b"\x1f\x9d", UnixCompress),
        (b"MSCF", Cab),
        (b"xar!", Xar),
        (b"hsqs", Squashfs),
    ];
    if let Some((_, format)) = magic.iter().find(|(m, _)| head.starts_with(m)) {
        return Ok(Some(*format));
    }
    // ISO 9660: "CD001" at 32769.
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() > 32774 {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(32769))?;
        let mut id = [0u8; 5];
        if read_up_to(&mut file, &mut id)? == 5 && &id == b"CD001" {
            return Ok(Some(Iso9660));
        }
    }
    Ok(None)
}

/// A ustar/GNU header, or an old (v7) header whose checksum holds.
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    let Some(stored) = parse_octal(&block[148..156]) else { return false };
    let sum: u64 =
        block[..148].iter().chain(&block[156..512]).map(|b| u64::from(*b)).sum::<u64>() + 8 * u64::from(b' ');
    block[0] != 0 && stored == sum && parse_octal(&block[124..136]).is_some()
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?.trim_matches(|c: char| c == ' ' || c == '\0');
    if text.is_empty() {
        return None;
    }
    u64::from_str_radix(text, 8).ok()
}

fn read_up_to(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A tar whose root holds `oci-layout` or a docker-save `manifest.json` (walked with the
/// same bounds on header records as extraction).
fn is_image_tar(path: &Path) -> Result<bool, ExtractError> {
    let mut found = false;
    extract::walk_tar(std::fs::File::open(path)?, |entry| {
        let name = entry.name.trim_start_matches("./");
        if name == "oci-layout" || name == "manifest.json" {
            found = true;
        }
        Ok(!found)
    })?;
    Ok(found)
}

/// CycloneDX or SPDX JSON, recognised without building the document in memory.
fn is_sbom(path: &Path) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "bomFormat")]
        bom_format: Option<String>,
        #[serde(rename = "spdxVersion")]
        spdx_version: Option<serde::de::IgnoredAny>,
    }
    let Ok(file) = std::fs::File::open(path) else { return false };
    match serde_json::from_reader::<_, Probe>(BufReader::new(file)) {
        Ok(probe) => probe.bom_format.as_deref() == Some("CycloneDX") || probe.spdx_version.is_some(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_headers_are_tar() {
        let mut header = tar::Header::new_old();
        header.set_path("bin/tool").unwrap();
        header.set_size(3);
        header.set_cksum();
        assert!(is_tar_header(header.as_bytes()));
        let mut broken = *header.as_bytes();
        broken[0] ^= 1;
        assert!(!is_tar_header(&broken));
        assert!(!is_tar_header(&[0u8; 512]));
    }
}
