//! Trivy's JSON report (SchemaVersion 2) turned into Arca's findings. Every field of the
//! report is optional; secrets keep where they were found, never what matched.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    /// Required: a report without it (`{}`, another tool's JSON) is not a clean scan.
    schema_version: u32,
    #[serde(default)]
    results: Vec<ReportResult>,
}

/// The report format this parser knows.
const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReportResult {
    #[serde(default)]
    target: String,
    #[serde(default)]
    vulnerabilities: Vec<ReportVulnerability>,
    #[serde(default)]
    secrets: Vec<ReportSecret>,
    #[serde(default)]
    licenses: Vec<ReportLicense>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReportVulnerability {
    #[serde(rename = "VulnerabilityID", default)]
    vulnerability_id: String,
    #[serde(default)]
    pkg_name: String,
    #[serde(default)]
    installed_version: String,
    #[serde(default)]
    fixed_version: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    title: String,
    #[serde(rename = "PrimaryURL", default)]
    primary_url: String,
    #[serde(rename = "CVSS", default)]
    cvss: std::collections::BTreeMap<String, ReportCvss>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReportCvss {
    #[serde(default)]
    v3_score: Option<f64>,
    #[serde(default)]
    v2_score: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReportSecret {
    #[serde(rename = "RuleID", default)]
    rule_id: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    start_line: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReportLicense {
    #[serde(default)]
    severity: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    pkg_name: String,
    #[serde(default)]
    file_path: String,
    #[serde(default)]
    name: String,
}

/// A vulnerable package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Vulnerability {
    pub id: String,
    pub package: String,
    pub installed: String,
    pub fixed: String,
    pub severity: String,
    pub title: String,
    pub cvss_score: Option<f64>,
    pub url: String,
    /// Where Trivy found the package (file or image layer target).
    pub target: String,
}

/// A secret: where it is and what kind, never the matched text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Secret {
    pub rule: String,
    pub category: String,
    pub severity: String,
    pub title: String,
    pub file: String,
    pub line: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct License {
    pub name: String,
    pub package: String,
    pub file: String,
    pub severity: String,
    pub category: String,
}

/// Everything a scan found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Findings {
    pub vulnerabilities: Vec<Vulnerability>,
    pub secrets: Vec<Secret>,
    pub licenses: Vec<License>,
    /// What unpacking the artifact found (unsafe links, a format Arca cannot open).
    #[serde(default)]
    pub archive: ArchiveReport,
}

/// Findings of Arca's own about the artifact's container format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArchiveReport {
    /// How the artifact was read (`tar.gz`, `zip`, `file`, `unsupported:7z`, …).
    #[serde(default)]
    pub kind: String,
    /// Links a consumer who unpacks the archive would be exposed to (at most 100 listed).
    #[serde(default)]
    pub unsafe_links: Vec<crate::core::scan::extract::LinkFinding>,
    #[serde(default)]
    pub unsafe_link_count: u64,
    /// An archive format Arca recognised but cannot open, so its contents were not scanned.
    #[serde(default)]
    pub unsupported_format: Option<String>,
}

impl From<&crate::core::scan::unpack::Unpacked> for ArchiveReport {
    fn from(unpacked: &crate::core::scan::unpack::Unpacked) -> Self {
        Self {
            kind: unpacked.kind.name(),
            unsafe_links: unpacked.extracted.unsafe_links.clone(),
            unsafe_link_count: unpacked.extracted.unsafe_link_count,
            unsupported_format: match unpacked.kind {
                crate::core::scan::detect::Kind::Unsupported(format) => Some(format.as_str().to_owned()),
                _ => None,
            },
        }
    }
}

/// Counts by severity, for the artifact summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
    pub unknown: u32,
    pub secrets: u32,
    pub licenses: u32,
}

impl Findings {
    /// Parses a Trivy JSON report.
    pub fn parse(json: &[u8]) -> Result<Self, serde_json::Error> {
        let report: Report = serde_json::from_slice(json)?;
        if report.schema_version != SCHEMA_VERSION {
            return Err(serde::de::Error::custom(format!(
                "Trivy report SchemaVersion {} (expected {SCHEMA_VERSION})",
                report.schema_version
            )));
        }
        let mut findings = Findings::default();
        for result in report.results {
            for v in result.vulnerabilities {
                let cvss_score = ["nvd", "ghsa", "redhat"]
                    .iter()
                    .filter_map(|source| result_score(v.cvss.get(*source)))
                    .next()
                    .or_else(|| v.cvss.values().find_map(|c| result_score(Some(c))));
                findings.vulnerabilities.push(Vulnerability {
                    id: v.vulnerability_id,
                    package: v.pkg_name,
                    installed: v.installed_version,
                    fixed: v.fixed_version,
                    severity: normalise(&v.severity),
                    title: v.title,
                    cvss_score,
                    url: v.primary_url,
                    target: result.target.clone(),
                });
            }
            for s in result.secrets {
                findings.secrets.push(Secret {
                    rule: s.rule_id,
                    category: s.category,
                    severity: normalise(&s.severity),
                    title: s.title,
                    file: result.target.clone(),
                    line: s.start_line,
                });
            }
            for l in result.licenses {
                findings.licenses.push(License {
                    name: l.name,
                    package: l.pkg_name,
                    file: if l.file_path.is_empty() { result.target.clone() } else { l.file_path },
                    severity: normalise(&l.severity),
                    category: l.category,
                });
            }
        }
        Ok(findings)
    }

    pub fn summary(&self) -> Summary {
        let mut s =
            Summary { secrets: count(self.secrets.len()), licenses: count(self.licenses.len()), ..Summary::default() };
        for v in &self.vulnerabilities {
            match v.severity.as_str() {
                "CRITICAL" => s.critical += 1,
                "HIGH" => s.high += 1,
                "MEDIUM" => s.medium += 1,
                "LOW" => s.low += 1,
                _ => s.unknown += 1,
            }
        }
        s
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn result_score(cvss: Option<&ReportCvss>) -> Option<f64> {
    cvss.and_then(|c| c.v3_score.or(c.v2_score))
}

fn normalise(severity: &str) -> String {
    match severity.to_ascii_uppercase().as_str() {
        s @ ("CRITICAL" | "HIGH" | "MEDIUM" | "LOW") => s.to_owned(),
        _ => "UNKNOWN".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report that is not Trivy's SchemaVersion 2 is an error, never "no findings": the
    /// scan fails closed.
    #[test]
    fn anything_but_a_version_2_report_is_refused() {
        for json in [&b"{}"[..], b"{\"Results\":[]}", b"{\"SchemaVersion\":1}", b"not json", b"", b"[]"] {
            assert!(Findings::parse(json).is_err(), "{}", String::from_utf8_lossy(json));
        }
        let clean = Findings::parse(br#"{"SchemaVersion":2}"#).unwrap();
        assert!(clean.vulnerabilities.is_empty() && clean.secrets.is_empty());
    }

    #[test]
    fn parses_a_report_and_drops_secret_matches() {
        let json = br#"{"SchemaVersion":2,"Results":[
          {"Target":"app","Vulnerabilities":[{"VulnerabilityID":"CVE-2022-32149","PkgName":"golang.org/x/text",
            "InstalledVersion":"v0.3.7","FixedVersion":"0.3.8","Severity":"HIGH","Title":"t","PrimaryURL":"u",
            "CVSS":{"nvd":{"V3Score":7.5}}}]},
          {"Target":"creds.txt","Class":"secret","Secrets":[{"RuleID":"aws-access-key-id","Category":"AWS",
            "Severity":"CRITICAL","Title":"AWS Access Key ID","StartLine":2,"Match":"AKIA****************",
            "Code":{"Lines":[{"Content":"secret"}]}}]},
          {"Target":"x","Licenses":[{"Severity":"HIGH","Category":"restricted","PkgName":"p","Name":"AGPL-3.0"}]},
          {"Target":"empty"}]}"#;
        let f = Findings::parse(json).unwrap();
        assert_eq!(f.vulnerabilities[0].id, "CVE-2022-32149");
        assert_eq!(f.vulnerabilities[0].cvss_score, Some(7.5));
        assert_eq!(f.secrets[0].file, "creds.txt");
        assert_eq!(f.secrets[0].line, Some(2));
        assert!(!serde_json::to_string(&f).unwrap().contains("AKIA"));
        assert_eq!(f.licenses[0].name, "AGPL-3.0");
        let s = f.summary();
        assert_eq!((s.high, s.secrets, s.licenses), (1, 1, 1));
    }
}
