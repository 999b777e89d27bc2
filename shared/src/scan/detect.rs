//! What an artifact is, from its first bytes and its name: this decides how Trivy sees it.

use std::io::Read;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OCI layout or `docker save` tarball: `trivy image --input`.
    Image,
    /// CycloneDX or SPDX JSON: `trivy sbom`.
    Sbom,
    Tar,
    TarGz,
    Zip,
    /// Java archives are analysed whole by Trivy (not extracted).
    Jar,
    /// Anything else (e.g. a Go or Rust binary): scanned as a file in a directory.
    File,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Sbom => "sbom",
            Kind::Tar => "tar",
            Kind::TarGz => "tar.gz",
            Kind::Zip => "zip",
            Kind::Jar => "jar",
            Kind::File => "file",
        }
    }
}

/// Largest JSON document read to recognise an SBOM.
const SBOM_MAX: u64 = 64 * 1024 * 1024;

/// Detects the kind of the file at `path` (named `filename` by its publisher).
pub fn detect(path: &Path, filename: &str) -> std::io::Result<Kind> {
    let mut head = [0u8; 512];
    let n = read_up_to(&mut std::fs::File::open(path)?, &mut head)?;
    let head = &head[..n];
    let lower = filename.to_ascii_lowercase();
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Kind::TarGz);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        let java = [".jar", ".war", ".ear", ".par"].iter().any(|e| lower.ends_with(e));
        return Ok(if java { Kind::Jar } else { Kind::Zip });
    }
    if n >= 262 && &head[257..262] == b"ustar" {
        return Ok(if is_image_tar(path)? { Kind::Image } else { Kind::Tar });
    }
    let first = head.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') && std::fs::metadata(path)?.len() <= SBOM_MAX {
        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(path)?) {
            if doc.get("bomFormat").and_then(|v| v.as_str()) == Some("CycloneDX") || doc.get("spdxVersion").is_some() {
                return Ok(Kind::Sbom);
            }
        }
    }
    Ok(Kind::File)
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

/// A tar whose root holds `oci-layout` or a docker-save `manifest.json`.
fn is_image_tar(path: &Path) -> std::io::Result<bool> {
    let mut archive = tar::Archive::new(std::fs::File::open(path)?);
    for entry in archive.entries()? {
        let Ok(entry) = entry else { return Ok(false) };
        let name = String::from_utf8_lossy(&entry.path_bytes()).trim_start_matches("./").to_owned();
        if name == "oci-layout" || name == "manifest.json" {
            return Ok(true);
        }
    }
    Ok(false)
}
