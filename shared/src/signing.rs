//! Arca's signatures: an ECDSA P-256 key with an x509 chain (a local CA and a signing
//! certificate with digitalSignature + codeSigning, generated in the data dir unless
//! `ARCA_SIGNING_KEY`/`_CERT`/`_CHAIN` are given). Every approved artifact is signed over its
//! SHA-256 (ECDSA-with-SHA256 over the bytes, so `openssl dgst -sha256 -verify` checks it
//! against the file), and every download first verifies that signature with a currently
//! trusted signing certificate.

use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::extract::{Path as UrlPath, State};
use axum::http::Method;
use axum::{Extension, Json};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::DecodePrivateKey;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::{Access, Principal};
use crate::app::AppState;
use crate::artifacts::{self, Status};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::fsutil::write_secret;
use crate::rbac::Permission;
use crate::routes::FunctionRouter;
use crate::with_pool;

pub const ALGORITHM: &str = "ecdsa-p256-sha256";

/// Where the signing identity comes from.
#[derive(Debug, Clone)]
pub struct SigningConfig {
    /// PKCS#8 PEM key, signing certificate PEM, chain PEM (signing certificate first).
    pub files: Option<(PathBuf, PathBuf, PathBuf)>,
    /// PEM bundle of further signing certificates whose signatures still verify (rotation).
    pub trusted: Option<PathBuf>,
    /// PEM bundle of the CAs publishers' signing certificates must chain to.
    pub trust_bundle: Option<PathBuf>,
}

/// The key Arca signs with, and the certificates whose signatures it accepts.
pub struct Signer {
    key: SigningKey,
    chain_pem: String,
    /// DER of every trusted signing certificate (the current one first).
    trusted: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("key", &"<redacted>").field("trusted", &self.trusted.len()).finish()
    }
}

fn pem_certs(pem: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("not a PEM certificate bundle")?
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    anyhow::ensure!(!certs.is_empty(), "no certificate in the PEM");
    Ok(certs)
}

fn public_key(cert_der: &[u8]) -> anyhow::Result<VerifyingKey> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).context("unparsable certificate")?;
    VerifyingKey::from_sec1_bytes(&cert.public_key().subject_public_key.data)
        .context("the certificate's key is not ECDSA P-256")
}

impl Signer {
    /// Loads the configured identity, or the one in `<data-dir>/signing` (generated on first start).
    pub fn load(config: &SigningConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let (key_path, chain_path) = match &config.files {
            Some((key, _cert, chain)) => (key.clone(), chain.clone()),
            None => {
                let dir = data_dir.join("signing");
                if !dir.join("key.pem").exists() {
                    generate(&dir)?;
                }
                (dir.join("key.pem"), dir.join("chain.pem"))
            }
        };
        let key_pem = std::fs::read_to_string(&key_path)
            .with_context(|| format!("signing key: cannot read {}", key_path.display()))?;
        let key = SigningKey::from_pkcs8_pem(&key_pem).context("signing key: not a PKCS#8 ECDSA P-256 key")?;
        let chain_pem = std::fs::read_to_string(&chain_path)
            .with_context(|| format!("signing chain: cannot read {}", chain_path.display()))?;
        let chain = pem_certs(&chain_pem).context("signing chain")?;
        if let Some((_, cert_path, _)) = &config.files {
            let cert = pem_certs(&std::fs::read_to_string(cert_path)?).context("signing certificate")?;
            anyhow::ensure!(cert[0] == chain[0], "ARCA_SIGNING_CHAIN must start with ARCA_SIGNING_CERT");
        }
        anyhow::ensure!(
            public_key(&chain[0])? == *key.verifying_key(),
            "the signing certificate does not belong to the signing key"
        );
        let mut trusted = vec![chain[0].clone()];
        if let Some(bundle) = &config.trusted {
            trusted.extend(pem_certs(&std::fs::read_to_string(bundle)?).context("ARCA_SIGNING_TRUSTED")?);
        }
        Ok(Self { key, chain_pem, trusted })
    }

    /// DER signature over an artifact whose SHA-256 is `digest`.
    pub fn sign(&self, digest: &[u8; 32]) -> anyhow::Result<Vec<u8>> {
        let signature: Signature = self.key.sign_prehash(digest).context("signing")?;
        Ok(signature.to_der().as_bytes().to_vec())
    }

    /// Checks a stored signature: its certificate is trusted now and the signature is over `digest`.
    pub fn verify(&self, digest: &[u8; 32], signature_der: &[u8], chain_pem: &str) -> Result<(), String> {
        let chain = pem_certs(chain_pem).map_err(|e| format!("certificate chain: {e}"))?;
        if !self.trusted.contains(&chain[0]) {
            return Err("signed with a certificate that is not trusted".into());
        }
        verify_detached(digest, signature_der, chain_pem)
    }
}

/// Checks that `signature_der` is the signing certificate's (first in `chain_pem`) ECDSA
/// signature over an artifact whose SHA-256 is `digest`. Trust in the certificate is the
/// caller's decision.
pub fn verify_detached(digest: &[u8; 32], signature_der: &[u8], chain_pem: &str) -> Result<(), String> {
    let chain = pem_certs(chain_pem).map_err(|e| format!("certificate chain: {e}"))?;
    let key = public_key(&chain[0]).map_err(|e| e.to_string())?;
    let signature = Signature::from_der(signature_der).map_err(|_| "the signature is not DER ECDSA".to_owned())?;
    key.verify_prehash(digest, &signature).map_err(|_| "the signature does not match the artifact's digest".into())
}

/// A local CA and a signing certificate under it; the CA key is not kept.
fn generate(dir: &Path) -> anyhow::Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
        PKCS_ECDSA_P256_SHA256,
    };
    std::fs::create_dir_all(dir)?;
    crate::fsutil::restrict_dir(dir)?;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "Arca local signing CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let today = {
        use chrono::Datelike;
        let t = chrono::Utc::now().date_naive();
        (t.year(), u8::try_from(t.month()).unwrap_or(1), u8::try_from(t.day().min(28)).unwrap_or(1))
    };
    let years = |n: i32| rcgen::date_time_ymd(today.0 + n, today.1, today.2);
    (ca.not_before, ca.not_after) = (years(0), years(10));
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.distinguished_name.push(DnType::CommonName, "Arca artifact signing");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    (leaf.not_before, leaf.not_after) = (years(0), years(2));
    let leaf_cert = leaf.signed_by(&key, &ca_cert, &ca_key)?;
    write_secret(&dir.join("key.pem"), key.serialize_pem().as_bytes())?;
    std::fs::write(dir.join("cert.pem"), leaf_cert.pem())?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(dir.join("chain.pem"), format!("{}{}", leaf_cert.pem(), ca_cert.pem()))?;
    tracing::info!(dir = %dir.display(), "generated a local signing CA and certificate");
    Ok(())
}

fn digest_bytes(sha256_hex: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(sha256_hex).context("digest is not hex")?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("digest is not 32 bytes"))
}

/// Signs an artifact (on approval) and stores the signature with its chain.
pub async fn sign_artifact(state: &AppState, artifact_id: &str, sha256_hex: &str) -> anyhow::Result<()> {
    let signature = STANDARD.encode(state.signer.sign(&digest_bytes(sha256_hex)?)?);
    let digest = format!("sha256:{sha256_hex}");
    with_pool!(&state.db, |pool| sqlx::query(
        "INSERT INTO signatures (artifact_id, algorithm, signature, certificate_chain, digest, signed_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (artifact_id) DO UPDATE SET algorithm = excluded.algorithm, \
         signature = excluded.signature, certificate_chain = excluded.certificate_chain, digest = excluded.digest, \
         signed_at = excluded.signed_at"
    )
    .bind(artifact_id)
    .bind(ALGORITHM)
    .bind(&signature)
    .bind(&state.signer.chain_pem)
    .bind(&digest)
    .bind(now_ms())
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Arca's signature of an artifact, as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ArtifactSignature {
    pub algorithm: String,
    /// Base64 of the DER ECDSA signature.
    pub signature: String,
    /// PEM: the signing certificate, then its issuers.
    pub certificate_chain: String,
    /// `sha256:<hex>` of the artifact.
    pub digest: String,
    /// Unix milliseconds.
    pub signed_at: i64,
}

async fn stored(state: &AppState, artifact_id: &str) -> Result<Option<ArtifactSignature>, sqlx::Error> {
    with_pool!(&state.db, |pool| sqlx::query_as::<_, ArtifactSignature>(
        "SELECT algorithm, signature, certificate_chain, digest, signed_at FROM signatures WHERE artifact_id = $1"
    )
    .bind(artifact_id)
    .fetch_optional(pool)
    .await)
}

/// The download gate: the stored signature must verify, with a trusted certificate, over
/// the artifact's recorded digest. Returns the signature (for the response header).
pub async fn verify_artifact(state: &AppState, artifact_id: &str, sha256_hex: &str) -> Result<String, String> {
    let signature = stored(state, artifact_id)
        .await
        .map_err(|e| format!("signature lookup failed: {e}"))?
        .ok_or_else(|| "the artifact has no Arca signature".to_owned())?;
    if signature.digest != format!("sha256:{sha256_hex}") {
        return Err("the signature is for another digest".into());
    }
    let digest = digest_bytes(sha256_hex).map_err(|e| e.to_string())?;
    let der = STANDARD.decode(&signature.signature).map_err(|_| "the signature is not base64".to_owned())?;
    state.signer.verify(&digest, &der, &signature.certificate_chain)?;
    Ok(signature.signature)
}

pub fn router() -> FunctionRouter {
    FunctionRouter::new("sign")
        .route(
            Method::GET,
            "/api/artifacts/{id}/signature",
            Access::Permission(Permission::ArtifactsRead),
            get_signature,
        )
        .route(Method::POST, "/api/admin/resign", Access::Permission(Permission::ArtifactsManage), resign)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Resigned {
    pub resigned: u64,
}

/// Re-signs every approved artifact with the current signing key (after a rotation).
#[utoipa::path(post, path = "/api/admin/resign", tag = "signing", security(("bearer" = [])),
    responses((status = 200, body = Resigned), (status = 401), (status = 403)))]
pub async fn resign(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<crate::http::RequestContext>,
) -> Result<Json<Resigned>, ApiError> {
    let approved: Vec<(String, String)> =
        with_pool!(&state.db, |pool| sqlx::query_as("SELECT id, sha256 FROM artifacts WHERE status = $1")
            .bind(Status::Approved.as_str())
            .fetch_all(pool)
            .await)?;
    for (id, sha256) in &approved {
        sign_artifact(&state, id, sha256).await.map_err(ApiError::internal)?;
    }
    let resigned = approved.len() as u64;
    state
        .audit
        .record_durable(context.event(
            &principal,
            "artifacts.resign",
            "*",
            "success",
            serde_json::json!({ "resigned": resigned }),
        ))
        .await;
    Ok(Json(Resigned { resigned }))
}

/// Arca's signature of an approved artifact, with everything needed to verify it offline.
#[utoipa::path(get, path = "/api/artifacts/{id}/signature", tag = "signing", security(("bearer" = [])),
    params(("id" = String, Path, description = "artifact id")),
    responses((status = 200, body = ArtifactSignature), (status = 401), (status = 403), (status = 404)))]
pub async fn get_signature(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<ArtifactSignature>, ApiError> {
    artifacts::find_visible(&state.db, &principal, &id).await?;
    Ok(Json(stored(&state, &id).await?.ok_or_else(|| ApiError::not_found("the artifact is not signed"))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let signer =
            Signer::load(&SigningConfig { files: None, trusted: None, trust_bundle: None }, dir.path()).unwrap();
        let digest = [7u8; 32];
        let sig = signer.sign(&digest).unwrap();
        assert!(signer.verify(&digest, &sig, &signer.chain_pem).is_ok());
        assert!(signer.verify(&[8u8; 32], &sig, &signer.chain_pem).unwrap_err().contains("does not match"));
        let other_dir = tempfile::tempdir().unwrap();
        let other =
            Signer::load(&SigningConfig { files: None, trusted: None, trust_bundle: None }, other_dir.path()).unwrap();
        let foreign = other.sign(&digest).unwrap();
        assert!(signer.verify(&digest, &foreign, &other.chain_pem).unwrap_err().contains("not trusted"));
        // The same identity is loaded again from the data dir.
        let again =
            Signer::load(&SigningConfig { files: None, trusted: None, trust_bundle: None }, dir.path()).unwrap();
        assert!(again.verify(&digest, &sig, &signer.chain_pem).is_ok());
    }
}
