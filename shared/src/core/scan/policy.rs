//! Policy: what a scan may find for an artifact to be approved. Configured by environment
//! (or a JSON file), shown at `GET /api/policy`. Exceptions waive single findings.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::LinkProblem;
use super::report::Findings;

/// Severities in increasing order.
pub const SEVERITIES: [&str; 5] = ["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"];

fn rank(severity: &str) -> usize {
    SEVERITIES.iter().position(|s| *s == severity).unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Highest vulnerability severity allowed; anything above quarantines.
    pub max_severity: String,
    /// Any secret quarantines.
    pub block_secrets: bool,
    /// Licenses (SPDX ids, case-insensitive) that quarantine.
    pub license_deny: Vec<String>,
    /// A scan that cannot complete fails the artifact (true) or approves it (false).
    pub fail_closed: bool,
    /// Quarantine artifacts without a valid publisher signature.
    pub require_publisher_signature: bool,
    /// Quarantine archives holding links that are absolute, leave the archive, or have
    /// entries written through them.
    pub block_unsafe_links: bool,
    /// Quarantine archives in a format Arca cannot open (7z, rar, cpio, …) instead of
    /// scanning them as one opaque file.
    pub block_unsupported_archives: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_severity: "MEDIUM".to_owned(),
            block_secrets: true,
            license_deny: vec![
                "AGPL-3.0".into(),
                "AGPL-3.0-only".into(),
                "AGPL-3.0-or-later".into(),
                "SSPL-1.0".into(),
            ],
            fail_closed: true,
            require_publisher_signature: false,
            block_unsafe_links: true,
            block_unsupported_archives: true,
        }
    }
}

impl Policy {
    /// From `ARCA_POLICY_FILE` (JSON) if set, then `ARCA_POLICY_*` variables on top.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut policy = match std::env::var("ARCA_POLICY_FILE").ok().filter(|p| !p.is_empty()) {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("ARCA_POLICY_FILE: cannot read {path}: {e}"))?;
                serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("ARCA_POLICY_FILE: {e}"))?
            }
            None => Policy::default(),
        };
        if let Ok(v) = std::env::var("ARCA_POLICY_MAX_SEVERITY") {
            policy.max_severity = v.to_ascii_uppercase();
        }
        for (name, slot) in [
            ("ARCA_POLICY_BLOCK_SECRETS", &mut policy.block_secrets),
            ("ARCA_POLICY_FAIL_CLOSED", &mut policy.fail_closed),
            ("ARCA_POLICY_REQUIRE_PUBLISHER_SIGNATURE", &mut policy.require_publisher_signature),
            ("ARCA_POLICY_BLOCK_UNSAFE_LINKS", &mut policy.block_unsafe_links),
            ("ARCA_POLICY_BLOCK_UNSUPPORTED_ARCHIVES", &mut policy.block_unsupported_archives),
        ] {
            if let Ok(v) = std::env::var(name) {
                *slot = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => anyhow::bail!("{name}: must be true or false"),
                };
            }
        }
        if let Ok(v) = std::env::var("ARCA_POLICY_LICENSE_DENY") {
            policy.license_deny = v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        }
        if !SEVERITIES.contains(&policy.max_severity.as_str()) {
            anyhow::bail!("ARCA_POLICY_MAX_SEVERITY: one of {}", SEVERITIES.join(", "));
        }
        Ok(policy)
    }
}

/// Why an artifact is quarantined: the rule and the finding, machine-readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reason {
    /// `max_severity`, `secret`, `license_deny`, `unsafe_link`, `unsupported_archive`,
    /// `publisher_signature` or `scan_error`.
    pub rule: String,
    /// Vulnerability id, secret rule id or license name.
    pub finding: String,
    pub package: Option<String>,
    pub severity: Option<String>,
    pub detail: String,
}

/// A waiver of one vulnerability id or package, for one artifact or all.
#[derive(Debug, Clone)]
pub struct Waiver {
    pub artifact_id: Option<String>,
    pub vulnerability_id: Option<String>,
    pub package: Option<String>,
}

impl Waiver {
    fn covers(&self, artifact_id: &str, vulnerability_id: &str, package: &str) -> bool {
        self.artifact_id.as_deref().is_none_or(|a| a == artifact_id)
            && (self.vulnerability_id.as_deref() == Some(vulnerability_id) || self.package.as_deref() == Some(package))
    }
}

/// What the policy looks at besides the findings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// A publisher signature attached to the artifact verified `valid`.
    pub publisher_signed: bool,
}

/// The reasons to quarantine; empty means approve.
pub fn evaluate(
    policy: &Policy,
    artifact_id: &str,
    findings: &Findings,
    waivers: &[Waiver],
    context: Context,
) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if policy.require_publisher_signature && !context.publisher_signed {
        reasons.push(Reason {
            rule: "publisher_signature".into(),
            finding: "missing".into(),
            package: None,
            severity: None,
            detail: "no valid publisher signature is attached".into(),
        });
    }
    if policy.block_unsupported_archives {
        if let Some(format) = &findings.archive.unsupported_format {
            reasons.push(Reason {
                rule: "unsupported_archive".into(),
                finding: format.clone(),
                package: None,
                severity: None,
                detail: format!("{format} archives cannot be opened by Arca, so their contents were not scanned"),
            });
        }
    }
    if policy.block_unsafe_links {
        for link in &findings.archive.unsafe_links {
            let why = match link.problem {
                LinkProblem::Absolute => {
                    format!("{} {} points to the absolute path {}", link.kind, link.path, link.target)
                }
                LinkProblem::OutsideRoot => {
                    format!("{} {} points outside the archive ({})", link.kind, link.path, link.target)
                }
                LinkProblem::WrittenThrough => format!("{} is written through the link {}", link.path, link.target),
            };
            reasons.push(Reason {
                rule: "unsafe_link".into(),
                finding: link.path.clone(),
                package: None,
                severity: None,
                detail: why,
            });
        }
        let unlisted = findings.archive.unsafe_link_count.saturating_sub(findings.archive.unsafe_links.len() as u64);
        if unlisted > 0 {
            reasons.push(Reason {
                rule: "unsafe_link".into(),
                finding: "more".into(),
                package: None,
                severity: None,
                detail: format!("{unlisted} further unsafe links"),
            });
        }
    }
    let max = rank(&policy.max_severity);
    for v in &findings.vulnerabilities {
        if rank(&v.severity) > max && !waivers.iter().any(|w| w.covers(artifact_id, &v.id, &v.package)) {
            reasons.push(Reason {
                rule: "max_severity".into(),
                finding: v.id.clone(),
                package: Some(format!("{}@{}", v.package, v.installed)),
                severity: Some(v.severity.clone()),
                detail: format!(
                    "{} {} in {} {} is above the allowed {}{}",
                    v.severity,
                    v.id,
                    v.package,
                    v.installed,
                    policy.max_severity,
                    if v.fixed.is_empty() { String::new() } else { format!(" (fixed in {})", v.fixed) }
                ),
            });
        }
    }
    if policy.block_secrets {
        for s in &findings.secrets {
            reasons.push(Reason {
                rule: "secret".into(),
                finding: s.rule.clone(),
                package: None,
                severity: Some(s.severity.clone()),
                detail: format!(
                    "{} found in {}{}",
                    s.title,
                    s.file,
                    s.line.map(|l| format!(" line {l}")).unwrap_or_default()
                ),
            });
        }
    }
    for l in &findings.licenses {
        if policy.license_deny.iter().any(|d| d.eq_ignore_ascii_case(&l.name)) {
            reasons.push(Reason {
                rule: "license_deny".into(),
                finding: l.name.clone(),
                package: Some(l.package.clone()).filter(|p| !p.is_empty()),
                severity: Some(l.severity.clone()),
                detail: format!(
                    "license {} ({}) is denied",
                    l.name,
                    if l.package.is_empty() { &l.file } else { &l.package }
                ),
            });
        }
    }
    reasons
}

/// One line for `status_reason`.
pub fn summarise(reasons: &[Reason]) -> String {
    match reasons {
        [] => String::new(),
        [only] => format!("policy: {}", only.detail),
        [first, rest @ ..] => format!("policy: {} (and {} more)", first.detail, rest.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::scan::report::{Secret, Vulnerability};

    fn vuln(id: &str, severity: &str) -> Vulnerability {
        Vulnerability {
            id: id.into(),
            package: "golang.org/x/text".into(),
            installed: "v0.3.7".into(),
            fixed: "0.3.8".into(),
            severity: severity.into(),
            title: String::new(),
            cvss_score: None,
            url: String::new(),
            target: "app".into(),
        }
    }

    #[test]
    fn blocks_above_max_unless_waived() {
        let policy = Policy::default();
        let findings = Findings {
            vulnerabilities: vec![vuln("CVE-1", "HIGH"), vuln("CVE-2", "MEDIUM")],
            secrets: vec![],
            licenses: vec![],
            ..Findings::default()
        };
        let reasons = evaluate(&policy, "a", &findings, &[], Context::default());
        assert_eq!(reasons.len(), 1);
        assert_eq!((reasons[0].rule.as_str(), reasons[0].finding.as_str()), ("max_severity", "CVE-1"));
        let for_other = Waiver { artifact_id: Some("b".into()), vulnerability_id: Some("CVE-1".into()), package: None };
        assert_eq!(evaluate(&policy, "a", &findings, &[for_other], Context::default()).len(), 1);
        let global = Waiver { artifact_id: None, vulnerability_id: None, package: Some("golang.org/x/text".into()) };
        assert!(evaluate(&policy, "a", &findings, &[global], Context::default()).is_empty());
    }

    #[test]
    fn secrets_and_licenses() {
        let findings = Findings {
            vulnerabilities: vec![],
            secrets: vec![Secret {
                rule: "aws-access-key-id".into(),
                category: "AWS".into(),
                severity: "CRITICAL".into(),
                title: "AWS Access Key ID".into(),
                file: "creds".into(),
                line: Some(1),
            }],
            licenses: vec![crate::core::scan::report::License {
                name: "agpl-3.0".into(),
                package: "p".into(),
                file: String::new(),
                severity: "HIGH".into(),
                category: "restricted".into(),
            }],
            ..Findings::default()
        };
        let rules: Vec<String> =
            evaluate(&Policy::default(), "a", &findings, &[], Context::default()).into_iter().map(|r| r.rule).collect();
        assert_eq!(rules, ["secret", "license_deny"]);
        let lax = Policy { block_secrets: false, license_deny: vec![], ..Policy::default() };
        assert!(evaluate(&lax, "a", &findings, &[], Context::default()).is_empty());
    }

    #[test]
    fn unsafe_links_and_unsupported_formats() {
        use crate::core::scan::extract::LinkFinding;
        use crate::core::scan::report::ArchiveReport;
        let findings = Findings {
            archive: ArchiveReport {
                kind: "tar".into(),
                unsafe_links: vec![LinkFinding {
                    path: "etc".into(),
                    target: "/etc".into(),
                    problem: LinkProblem::Absolute,
                    kind: "symlink".into(),
                }],
                unsafe_link_count: 3,
                unsupported_format: Some("7z".into()),
            },
            ..Findings::default()
        };
        let reasons = evaluate(&Policy::default(), "a", &findings, &[], Context::default());
        let rules: Vec<&str> = reasons.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(rules, ["unsupported_archive", "unsafe_link", "unsafe_link"]);
        assert!(reasons[1].detail.contains("absolute path /etc"), "{}", reasons[1].detail);
        assert!(reasons[2].detail.contains("2 further"), "{}", reasons[2].detail);
        let lax = Policy { block_unsafe_links: false, block_unsupported_archives: false, ..Policy::default() };
        assert!(evaluate(&lax, "a", &findings, &[], Context::default()).is_empty());
    }
}
