//! Policy decisions over stored findings: what an artifact's latest scan means now, given
//! the exceptions in force, a manual release and publisher signatures. Used when a scan
//! completes, when exceptions change, and when a publisher signature arrives.

use super::artifacts::{self, ArtifactRow};
use super::db::Db;
use super::lifecycle::{self, Change, Status};
use super::scan::policy::{self, Policy, Reason};
use super::scan::report::Findings;
use super::scans;

/// The outcome of the policy for an artifact's findings.
pub struct Decision {
    pub reasons: Vec<Reason>,
    /// Passed: to be signed, then approved.
    pub passed: bool,
}

/// Applies the policy (with the exceptions in force and the publisher-signature state).
pub async fn decide(db: &Db, policy: &Policy, artifact_id: &str, findings: &Findings) -> Result<Decision, sqlx::Error> {
    let waivers = scans::active_waivers(db).await?;
    let context = policy::Context { publisher_signed: scans::publisher_signed(db, artifact_id).await? };
    let reasons = policy::evaluate(policy, artifact_id, findings, &waivers, context);
    Ok(Decision { passed: reasons.is_empty(), reasons })
}

/// The status an artifact in `status` moves to after a decision: passing goes to signing
/// (approval follows the signature), failing to quarantine; an approved artifact that still
/// passes stays approved.
pub fn next_status(status: Status, passed: bool) -> Status {
    match (status, passed) {
        (Status::Approved, true) => Status::Approved,
        (_, true) => Status::Signing,
        (_, false) => Status::Quarantined,
    }
}

/// Applies the policy again to an artifact's latest findings (exceptions changed, a
/// publisher signature arrived). Nothing happens unless the artifact is approved or
/// quarantined and its latest scan succeeded.
pub async fn reevaluate(ctx: &impl lifecycle::Context, policy: &Policy, artifact_id: &str) -> anyhow::Result<()> {
    let db = ctx.db();
    let Some(row) = artifacts::find(db, artifact_id).await? else { return Ok(()) };
    let status = row.status();
    if !matches!(status, Status::Approved | Status::Quarantined) {
        return Ok(());
    }
    let Some(scan) = scans::latest(db, artifact_id, false).await? else { return Ok(()) };
    if scan.status != "succeeded" {
        return Ok(()); // the scan error decided; a rescan may change it
    }
    let findings: Findings = serde_json::from_str(&scan.findings)?;
    let decision = decide(db, policy, artifact_id, &findings).await?;
    let released = row.released_scan_id.as_deref() == Some(scan.id.as_str());
    let to = next_status(status, decision.passed || released);
    if to == status {
        return Ok(());
    }
    apply_decision(ctx, &row, status, to, &decision.reasons, "policy re-evaluation").await?;
    tracing::info!(artifact = %artifact_id, outcome = to.as_str(), "policy re-evaluated");
    Ok(())
}

/// Moves an artifact after a decision, with its reasons.
pub async fn apply_decision(
    ctx: &impl lifecycle::Context,
    row: &ArtifactRow,
    from: Status,
    to: Status,
    reasons: &[Reason],
    cause: &str,
) -> anyhow::Result<bool> {
    let summary = policy::summarise(reasons);
    let mut change = Change::new(&row.id, from, to)
        .data(serde_json::json!({ "reasons": reasons, "cause": cause, "sha256": row.sha256 }));
    change.reason = (!summary.is_empty()).then_some(summary);
    change.policy_reasons = Some(serde_json::to_string(reasons)?);
    Ok(lifecycle::apply(ctx, change).await?)
}
