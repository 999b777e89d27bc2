//! Publisher signatures: a publisher attaches its own signature (DER ECDSA P-256 over the
//! artifact's bytes, e.g. `openssl dgst -sha256 -sign`) and PEM chain; Arca checks the chain
//! against the trust bundle (`ARCA_TRUST_BUNDLE`), the validity periods, the key usage and
//! EKU, and the signature over the artifact's digest. The result is `valid`, `invalid` or
//! `untrusted`, each with its reason; every attempt is audited.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::{Extension, Json};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

use crate::access::{Access, Principal};
use crate::app::AppState;
use crate::artifacts::{self, Status};
use crate::db::now_ms;
use crate::error::{ApiError, ApiJson};
use crate::http::RequestContext;
use crate::rbac::Permission;
use crate::routes::FunctionRouter;
use crate::with_pool;

/// Longest certificate path accepted.
const MAX_DEPTH: usize = 8;

/// DER certificates of the roots publishers' chains must lead to.
#[derive(Debug, Default, Clone)]
pub struct TrustBundle(pub Vec<Vec<u8>>);

impl TrustBundle {
    pub fn load(path: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let pem = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("ARCA_TRUST_BUNDLE: cannot read {}: {e}", path.display()))?;
        let certs = rustls_pemfile::certs(&mut pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("ARCA_TRUST_BUNDLE: {e}"))?;
        anyhow::ensure!(!certs.is_empty(), "ARCA_TRUST_BUNDLE: no certificate in {}", path.display());
        Ok(Self(certs.into_iter().map(|c| c.to_vec()).collect()))
    }
}

/// The outcome of a check, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Verdict {
    /// `valid`, `invalid` or `untrusted`.
    pub result: String,
    pub reason: String,
    /// Subject of the signing certificate, when it could be read.
    pub subject: Option<String>,
}

fn verdict(result: &str, reason: impl Into<String>, subject: Option<String>) -> Verdict {
    Verdict { result: result.to_owned(), reason: reason.into(), subject }
}

fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.issuer() == issuer.subject() && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca)
}

/// Checks a publisher's signature over an artifact whose SHA-256 is `digest`.
pub fn check(trust: &TrustBundle, digest: &[u8; 32], signature_der: &[u8], chain_pem: &str) -> Verdict {
    let ders: Vec<Vec<u8>> = match rustls_pemfile::certs(&mut chain_pem.as_bytes()).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => certs.into_iter().map(|c| c.to_vec()).collect(),
        _ => return verdict("invalid", "certificate_chain: not a PEM certificate chain", None),
    };
    let mut chain = Vec::new();
    for der in &ders {
        match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => chain.push(cert),
            Err(_) => return verdict("invalid", "certificate_chain: unparsable certificate", None),
        }
    }
    let anchors: Vec<X509Certificate<'_>> =
        trust.0.iter().filter_map(|der| x509_parser::parse_x509_certificate(der).ok().map(|(_, c)| c)).collect();
    let leaf = &chain[0];
    let subject = Some(leaf.subject().to_string());

    // 1. A path from the signing certificate to a trusted root.
    let mut path = vec![leaf];
    let mut trusted = anchors.iter().any(|a| a.as_raw() == leaf.as_raw());
    while !trusted && path.len() <= MAX_DEPTH {
        let current = path[path.len() - 1];
        if let Some(anchor) = anchors.iter().find(|a| signed_by(current, a)) {
            path.push(anchor);
            trusted = true;
        } else if let Some(next) = chain[1..].iter().find(|c| is_ca(c) && signed_by(current, c) && !path.contains(c)) {
            path.push(next);
        } else {
            break;
        }
    }
    if !trusted {
        return verdict("untrusted", format!("{} does not chain to a CA in the trust bundle", leaf.subject()), subject);
    }
    // 2. Every certificate on the path is valid now.
    if let Some(expired) = path.iter().find(|c| !c.validity().is_valid()) {
        let v = expired.validity();
        return verdict(
            "invalid",
            format!(
                "certificate {} is outside its validity period ({} to {})",
                expired.subject(),
                v.not_before,
                v.not_after
            ),
            subject,
        );
    }
    // 3. The signing certificate is for signing (and, when it says, for code signing).
    let mut digital_signature = false;
    let mut eku_ok = true;
    for ext in leaf.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => digital_signature = ku.digital_signature(),
            ParsedExtension::ExtendedKeyUsage(eku) => eku_ok = eku.any || eku.code_signing,
            _ => {}
        }
    }
    if !digital_signature {
        return verdict("invalid", "the signing certificate lacks the digitalSignature key usage", subject);
    }
    if !eku_ok {
        return verdict("invalid", "the signing certificate's extended key usage excludes code signing", subject);
    }
    // 4. The signature is over this artifact.
    match crate::signing::verify_detached(digest, signature_der, chain_pem) {
        Ok(()) => verdict("valid", "signature verified; chain to a trusted CA", subject),
        Err(e) => verdict("invalid", e, subject),
    }
}

pub fn router() -> FunctionRouter {
    FunctionRouter::new("sign")
        .route(Method::POST, "/api/artifacts/{id}/signatures", Access::Permission(Permission::ArtifactsWrite), attach)
        .route(Method::GET, "/api/artifacts/{id}/signatures", Access::Permission(Permission::ArtifactsRead), list)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPublisherSignature {
    /// Base64 of the DER ECDSA signature over the artifact's bytes.
    pub signature: String,
    /// PEM: the signing certificate first, then intermediates.
    pub certificate_chain: String,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct PublisherSignature {
    pub id: String,
    pub result: String,
    pub reason: String,
    pub subject: Option<String>,
    pub submitted_by: String,
    /// Unix milliseconds.
    pub verified_at: i64,
}

/// Attaches a publisher signature; the answer says whether it is valid, and why not.
#[utoipa::path(post, path = "/api/artifacts/{id}/signatures", tag = "signing", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")), request_body = NewPublisherSignature,
    responses((status = 201, body = PublisherSignature), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn attach(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<RequestContext>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<NewPublisherSignature>,
) -> Result<(StatusCode, Json<PublisherSignature>), ApiError> {
    let row = artifacts::find(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("no such artifact"))?;
    artifacts::require_owner(&row, &principal, "sign this artifact")?;
    if matches!(row.status(), Status::Deleted | Status::Failed) {
        return Err(ApiError::conflict("invalid_state", format!("artifact is {}", row.status().as_str())));
    }
    if request.certificate_chain.len() > 64 * 1024 || request.signature.len() > 1024 {
        return Err(ApiError::bad_request("invalid_field", "signature or certificate_chain too large"));
    }
    let der = STANDARD
        .decode(request.signature.trim())
        .map_err(|_| ApiError::bad_request("invalid_field", "signature: base64 of a DER signature"))?;
    let digest: [u8; 32] = hex::decode(&row.sha256)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| ApiError::internal("stored digest is not hex"))?;
    let verdict = check(&state.trust_bundle, &digest, &der, &request.certificate_chain);
    let stored = PublisherSignature {
        id: uuid::Uuid::new_v4().to_string(),
        result: verdict.result.clone(),
        reason: verdict.reason.clone(),
        subject: verdict.subject.clone(),
        submitted_by: principal.username.clone(),
        verified_at: now_ms(),
    };
    with_pool!(&state.db, |pool| sqlx::query(
        "INSERT INTO publisher_signatures (id, artifact_id, signature, certificate_chain, result, reason, subject, \
         submitted_by, verified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    .bind(&stored.id)
    .bind(&id)
    .bind(request.signature.trim())
    .bind(&request.certificate_chain)
    .bind(&stored.result)
    .bind(&stored.reason)
    .bind(&stored.subject)
    .bind(&stored.submitted_by)
    .bind(stored.verified_at)
    .execute(pool)
    .await
    .map(|_| ()))?;
    state
        .audit
        .record_durable(context.event(
            &principal,
            "artifacts.verify",
            &id,
            if verdict.result == "valid" { "success" } else { "failure" },
            serde_json::json!({ "gate": "publisher_signature", "result": verdict.result, "reason": verdict.reason }),
        ))
        .await;
    if verdict.result == "valid" && state.policy.require_publisher_signature {
        // It may be what kept the artifact in quarantine.
        crate::scan::service::reevaluate(&state, &id).await.map_err(ApiError::internal)?;
    }
    Ok((StatusCode::CREATED, Json(stored)))
}

/// The publisher signatures attached to an artifact, with their results.
#[utoipa::path(get, path = "/api/artifacts/{id}/signatures", tag = "signing", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = Vec<PublisherSignature>), (status = 401), (status = 403), (status = 404)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Vec<PublisherSignature>>, ApiError> {
    artifacts::find_visible(&state.db, &principal, &id).await?;
    let rows = with_pool!(&state.db, |pool| sqlx::query_as::<_, PublisherSignature>(
        "SELECT id, result, reason, subject, submitted_by, verified_at FROM publisher_signatures \
         WHERE artifact_id = $1 ORDER BY verified_at"
    )
    .bind(&id)
    .fetch_all(pool)
    .await)?;
    Ok(Json(rows))
}
