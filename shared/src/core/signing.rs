//! Arca's signatures: an ECDSA P-256 key with an x509 chain (a local CA and a signing
//! certificate with digitalSignature + codeSigning, generated in the data dir unless
//! `ARCA_SIGNING_KEY`/`_CERT`/`_CHAIN` are given). Every approved artifact is signed over its
//! SHA-256 (ECDSA-with-SHA256 over the bytes, so `openssl dgst -sha256 -verify` checks it
//! against the file), and every download first verifies that signature with a currently
//! trusted signing certificate.
//!
//! Validity: Arca signs only while its certificate is valid, and records when it signed. A
//! signature stays valid after its certificate expires if it was made within the
//! certificate's validity period (as with timestamped code signatures); downloads check
//! exactly that. After a key rotation `arca admin resign` re-signs with the new key.
//!
//! Only the `sign` function holds the key ([`Signer`]); `download` holds only the
//! certificates it trusts ([`TrustedSigners`]).

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::DecodePrivateKey;
use serde::Serialize;
use utoipa::ToSchema;

use super::db::{now_ms, Db};
use super::fsutil::write_secret;
use crate::with_pool;

pub const ALGORITHM: &str = "ecdsa-p256-sha256";

/// Where the signing identity comes from.
#[derive(Debug, Clone)]
pub struct SigningConfig {
    /// PKCS#8 PEM key, signing certificate PEM, chain PEM (signing certificate first).
    pub files: Option<(PathBuf, PathBuf, PathBuf)>,
    /// The chain alone (`ARCA_SIGNING_CHAIN`): what functions that only verify load.
    pub chain: Option<PathBuf>,
    /// PEM bundle of further signing certificates whose signatures still verify (rotation).
    pub trusted: Option<PathBuf>,
    /// PEM bundle of the CAs publishers' signing certificates must chain to.
    pub trust_bundle: Option<PathBuf>,
}

/// The key Arca signs with, and its chain. Configured files are re-read when they change
/// (cert-manager renews the certificate, and with it the key, in place), so a rotation
/// takes effect at the next signature, not at the next restart.
pub struct Signer {
    config: SigningConfig,
    data_dir: PathBuf,
    current: std::sync::RwLock<Identity>,
}

/// One loaded signing identity.
struct Identity {
    key: SigningKey,
    chain_pem: String,
    /// The signing certificate's validity (Unix seconds).
    not_before: i64,
    not_after: i64,
    /// Modification times of the files it was loaded from (rotation check).
    stamp: Vec<Option<std::time::SystemTime>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("key", &"<redacted>").finish_non_exhaustive()
    }
}

/// The DER certificates of a PEM bundle (at least one).
pub fn pem_certs(pem: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let certs: Vec<Vec<u8>> = super::pem::certs(pem.as_bytes())
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

fn validity(cert_der: &[u8]) -> anyhow::Result<(i64, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).context("unparsable certificate")?;
    Ok((cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp()))
}

/// The files of the signing identity: configured, or in `<data-dir>/signing` (generated on
/// first start).
fn identity_files(config: &SigningConfig, data_dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    Ok(match &config.files {
        Some((key, _cert, chain)) => (key.clone(), chain.clone()),
        None => {
            let dir = data_dir.join("signing");
            if !dir.join("key.pem").exists() {
                generate(&dir)?;
            }
            (dir.join("key.pem"), dir.join("chain.pem"))
        }
    })
}

impl Signer {
    /// Loads the configured identity, or the one in `<data-dir>/signing`.
    pub fn load(config: &SigningConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let identity = Identity::load(config, data_dir)?;
        Ok(Self { config: config.clone(), data_dir: data_dir.to_owned(), current: std::sync::RwLock::new(identity) })
    }

    /// The identity to sign with now: reloaded first when its files changed (a reload that
    /// fails keeps the previous identity and says why).
    fn identity(&self) -> std::sync::RwLockReadGuard<'_, Identity> {
        let changed = {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            current.stamp != file_stamps(&self.config, &self.data_dir)
        };
        if changed {
            match Identity::load(&self.config, &self.data_dir) {
                Ok(identity) => {
                    tracing::info!("the signing key or certificate changed: signing with the new one");
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = identity;
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "the signing files changed but do not load: signing with the previous ones")
                }
            }
        }
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    /// DER signature over an artifact whose SHA-256 is `digest`, and the chain to store with
    /// it; refused outside the signing certificate's validity period.
    pub fn sign(&self, digest: &[u8; 32]) -> anyhow::Result<(Vec<u8>, String)> {
        let identity = self.identity();
        let now = chrono::Utc::now().timestamp();
        anyhow::ensure!(
            (identity.not_before..=identity.not_after).contains(&now),
            "the signing certificate is not valid now (valid from {} to {}): rotate the signing key",
            chrono::DateTime::from_timestamp(identity.not_before, 0).unwrap_or_default(),
            chrono::DateTime::from_timestamp(identity.not_after, 0).unwrap_or_default()
        );
        let signature: Signature = identity.key.sign_prehash(digest).context("signing")?;
        Ok((signature.to_der().as_bytes().to_vec(), identity.chain_pem.clone()))
    }

    /// The current chain (signing certificate first).
    pub fn chain_pem(&self) -> String {
        self.identity().chain_pem.clone()
    }
}

/// Modification times of a configured identity's files (empty for a generated one).
fn file_stamps(config: &SigningConfig, _data_dir: &Path) -> Vec<Option<std::time::SystemTime>> {
    let Some((key, cert, chain)) = &config.files else { return Vec::new() };
    [key, cert, chain].iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
}

impl Identity {
    fn load(config: &SigningConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let stamp = file_stamps(config, data_dir);
        let (key_path, chain_path) = identity_files(config, data_dir)?;
        let key_pem = std::fs::read_to_string(&key_path)
            .with_context(|| format!("ARCA_SIGNING_KEY: cannot read {}", key_path.display()))?;
        let key = SigningKey::from_pkcs8_pem(&key_pem).context("ARCA_SIGNING_KEY: not a PKCS#8 ECDSA P-256 key")?;
        let mut chain_pem = std::fs::read_to_string(&chain_path)
            .with_context(|| format!("ARCA_SIGNING_CHAIN: cannot read {}", chain_path.display()))?;
        let mut chain = pem_certs(&chain_pem).context("ARCA_SIGNING_CHAIN")?;
        if let Some((_, cert_path, _)) = &config.files {
            // ARCA_SIGNING_CHAIN is the whole chain (starting with ARCA_SIGNING_CERT), or the
            // CAs above it, as cert-manager writes them: tls.crt, then ca.crt.
            let cert_pem = std::fs::read_to_string(cert_path)
                .with_context(|| format!("ARCA_SIGNING_CERT: cannot read {}", cert_path.display()))?;
            let cert = pem_certs(&cert_pem).context("ARCA_SIGNING_CERT")?;
            if cert[0] != chain[0] {
                let above: Vec<Vec<u8>> = chain.into_iter().filter(|c| !cert.contains(c)).collect();
                chain_pem = format!("{}\n{}", cert_pem.trim_end(), chain_pem.trim_start());
                chain = cert.into_iter().chain(above).collect();
            }
            if let Some(issuer) = chain.get(1) {
                anyhow::ensure!(
                    issued_by(&chain[0], issuer),
                    "ARCA_SIGNING_CHAIN: the signing certificate is not issued by the next certificate of the chain"
                );
            }
        }
        anyhow::ensure!(
            public_key(&chain[0])? == *key.verifying_key(),
            "the signing certificate does not belong to the signing key"
        );
        let (not_before, not_after) = validity(&chain[0])?;
        Ok(Self { key, chain_pem, not_before, not_after, stamp })
    }
}

/// Does `issuer` (DER) carry the key that signed `cert` (DER), with a matching name?
fn issued_by(cert: &[u8], issuer: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, issuer))) =
        (x509_parser::parse_x509_certificate(cert), x509_parser::parse_x509_certificate(issuer))
    else {
        return false;
    };
    cert.issuer() == issuer.subject() && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Is this certificate (DER) a CA (basicConstraints CA:TRUE)?
fn is_ca(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der).is_ok_and(|(_, c)| c.is_ca())
}

/// May this certificate (DER) sign artifacts: not a CA, and code signing among its
/// extended key usages when it lists any?
fn signs_code(der: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return false };
    let eku = match cert.extended_key_usage() {
        Ok(Some(eku)) => eku.value.code_signing || eku.value.any,
        Ok(None) => true,
        Err(_) => false,
    };
    !cert.is_ca() && eku
}

/// The signing certificates whose signatures Arca accepts: the current one and older ones
/// kept after a rotation (`ARCA_SIGNING_TRUSTED`), or every signing certificate that a
/// trusted CA issued (when `ARCA_SIGNING_CHAIN` starts with a CA certificate, as
/// cert-manager's `ca.crt` does: renewals need no configuration). Public material only.
#[derive(Debug)]
pub struct TrustedSigners {
    /// DER of every trusted signing certificate (the current one first).
    certs: Vec<Vec<u8>>,
    /// DER of CA certificates whose code-signing certificates are trusted.
    cas: Vec<Vec<u8>>,
}

impl TrustedSigners {
    /// The chain's signing certificate (`ARCA_SIGNING_CHAIN`, or the data dir's) and
    /// `ARCA_SIGNING_TRUSTED`.
    pub fn load(config: &SigningConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let chain_path = match &config.files {
            Some((_, _, chain)) => chain.clone(),
            None => identity_files(config, data_dir)?.1,
        };
        Self::from_files(&chain_path, config.trusted.as_deref())
    }

    /// From the chain file alone (functions that verify but do not sign).
    pub fn from_files(chain: &Path, trusted: Option<&Path>) -> anyhow::Result<Self> {
        let chain_pem = std::fs::read_to_string(chain)
            .with_context(|| format!("ARCA_SIGNING_CHAIN: cannot read {}", chain.display()))?;
        let first = pem_certs(&chain_pem).context("ARCA_SIGNING_CHAIN")?.remove(0);
        let (mut certs, cas) = if is_ca(&first) { (Vec::new(), vec![first]) } else { (vec![first], Vec::new()) };
        if let Some(bundle) = trusted {
            certs.extend(pem_certs(&std::fs::read_to_string(bundle)?).context("ARCA_SIGNING_TRUSTED")?);
        }
        Ok(Self { certs, cas })
    }

    /// Is the signing certificate (first of a stored chain) trusted?
    fn trusts(&self, chain: &[Vec<u8>]) -> bool {
        let signer = &chain[0];
        self.certs.contains(signer) || (signs_code(signer) && self.cas.iter().any(|ca| issued_by(signer, ca)))
    }

    /// Checks a stored signature: its certificate is trusted, it was made within the
    /// certificate's validity period, and it is over `digest`.
    pub fn verify(
        &self,
        digest: &[u8; 32],
        signature_der: &[u8],
        chain_pem: &str,
        signed_at_ms: i64,
    ) -> Result<(), String> {
        let chain = pem_certs(chain_pem).map_err(|e| format!("certificate chain: {e}"))?;
        if !self.trusts(&chain) {
            return Err("signed with a certificate that is not trusted".into());
        }
        let (not_before, not_after) = validity(&chain[0]).map_err(|e| e.to_string())?;
        let signed_at = signed_at_ms / 1000;
        if !(not_before..=not_after).contains(&signed_at) {
            return Err("signed outside the signing certificate's validity period".into());
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
    super::fsutil::restrict_dir(dir)?;
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

pub fn digest_bytes(sha256_hex: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(sha256_hex).context("digest is not hex")?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("digest is not 32 bytes"))
}

/// Signs an artifact and stores the signature with its chain and the time (idempotent: a
/// later call replaces it, e.g. after a key rotation).
pub async fn sign_artifact(db: &Db, signer: &Signer, artifact_id: &str, sha256_hex: &str) -> anyhow::Result<()> {
    let (signature, chain_pem) = signer.sign(&digest_bytes(sha256_hex)?)?;
    let signature = STANDARD.encode(signature);
    let digest = format!("sha256:{sha256_hex}");
    with_pool!(db, |pool| sqlx::query(
        "INSERT INTO signatures (artifact_id, algorithm, signature, certificate_chain, digest, signed_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (artifact_id) DO UPDATE SET algorithm = excluded.algorithm, \
         signature = excluded.signature, certificate_chain = excluded.certificate_chain, digest = excluded.digest, \
         signed_at = excluded.signed_at"
    )
    .bind(artifact_id)
    .bind(ALGORITHM)
    .bind(&signature)
    .bind(chain_pem)
    .bind(&digest)
    .bind(now_ms())
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Who signed: the signing certificate, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct SignerInfo {
    pub subject: String,
    pub issuer: String,
    /// Unix milliseconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Hex serial number.
    pub serial: String,
}

/// The signing certificate (first of `chain_pem`) described.
pub fn signer_info(chain_pem: &str) -> Option<SignerInfo> {
    let der = pem_certs(chain_pem).ok()?.remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(SignerInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp() * 1000,
        not_after: cert.validity().not_after.timestamp() * 1000,
        serial: cert.raw_serial_as_string(),
    })
}

/// Arca's signature of an artifact, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSignature {
    pub algorithm: String,
    /// Base64 of the DER ECDSA signature.
    pub signature: String,
    pub certificate_chain: String,
    /// `sha256:<hex>` of the artifact.
    pub digest: String,
    /// Unix milliseconds.
    pub signed_at: i64,
}

pub async fn stored(db: &Db, artifact_id: &str) -> Result<Option<StoredSignature>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_as::<_, StoredSignature>(
        "SELECT algorithm, signature, certificate_chain, digest, signed_at FROM signatures WHERE artifact_id = $1"
    )
    .bind(artifact_id)
    .fetch_optional(pool)
    .await)
}

/// The download gate: the stored signature must verify, with a trusted certificate, over
/// the artifact's recorded digest. Returns the signature (for the response header).
pub async fn verify_stored(
    db: &Db,
    trusted: &TrustedSigners,
    artifact_id: &str,
    sha256_hex: &str,
) -> Result<String, String> {
    let signature = stored(db, artifact_id)
        .await
        .map_err(|e| format!("signature lookup failed: {e}"))?
        .ok_or_else(|| "the artifact has no Arca signature".to_owned())?;
    check_stored(trusted, &signature, sha256_hex)?;
    Ok(signature.signature)
}

/// Checks a stored signature against the trusted certificates and the recorded digest.
pub fn check_stored(trusted: &TrustedSigners, signature: &StoredSignature, sha256_hex: &str) -> Result<(), String> {
    if signature.digest != format!("sha256:{sha256_hex}") {
        return Err("the signature is for another digest".into());
    }
    let digest = digest_bytes(sha256_hex).map_err(|e| e.to_string())?;
    let der = STANDARD.decode(&signature.signature).map_err(|_| "the signature is not base64".to_owned())?;
    trusted.verify(&digest, &der, &signature.certificate_chain, signature.signed_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let config = SigningConfig { files: None, chain: None, trusted: None, trust_bundle: None };
        let signer = Signer::load(&config, dir.path()).unwrap();
        let trusted = TrustedSigners::load(&config, dir.path()).unwrap();
        let digest = [7u8; 32];
        let now = now_ms();
        let (sig, chain) = signer.sign(&digest).unwrap();
        assert!(trusted.verify(&digest, &sig, &chain, now).is_ok());
        assert!(trusted.verify(&[8u8; 32], &sig, &chain, now).unwrap_err().contains("does not match"));
        // A signature dated outside the certificate's validity does not verify.
        let later = now + 5 * 365 * 86_400_000;
        assert!(trusted.verify(&digest, &sig, &chain, later).unwrap_err().contains("validity"));
        let other_dir = tempfile::tempdir().unwrap();
        let other = Signer::load(&config, other_dir.path()).unwrap();
        let (foreign, foreign_chain) = other.sign(&digest).unwrap();
        assert!(trusted.verify(&digest, &foreign, &foreign_chain, now).unwrap_err().contains("not trusted"));
        let info = signer_info(&chain).unwrap();
        assert!(info.subject.contains("Arca artifact signing") && info.issuer.contains("signing CA"));
    }

    /// cert-manager's layout: `tls.key`, `tls.crt` (the leaf), `ca.crt` (the CA).
    fn cert_manager_secret(dir: &Path, ca: &rcgen::Certificate, ca_key: &rcgen::KeyPair, leaf_is_ca: bool) {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "Arca artifact signing");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        if leaf_is_ca {
            leaf.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let cert = leaf.signed_by(&key, ca, ca_key).unwrap();
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    }

    #[test]
    fn cert_manager_secrets_sign_and_rotate_under_a_trusted_ca() {
        use rcgen::{CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "arca-ca");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca = params.clone().self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        cert_manager_secret(dir.path(), &ca, &ca_key, false);
        let files = (dir.path().join("tls.key"), dir.path().join("tls.crt"), dir.path().join("ca.crt"));
        let config = SigningConfig { files: Some(files), chain: None, trusted: None, trust_bundle: None };
        let signer = Signer::load(&config, dir.path()).unwrap();
        // download: ARCA_SIGNING_CHAIN is ca.crt alone
        let trusted = TrustedSigners::from_files(&dir.path().join("ca.crt"), None).unwrap();
        let digest = [1u8; 32];
        let (sig, chain) = signer.sign(&digest).unwrap();
        assert_eq!(pem_certs(&chain).unwrap().len(), 2, "the stored chain is the leaf and the CA");
        trusted.verify(&digest, &sig, &chain, now_ms()).unwrap();

        // cert-manager renews in place (a new key too): the next signature uses it, and the
        // CA still vouches for it; the old signature stays valid.
        std::thread::sleep(std::time::Duration::from_millis(20));
        cert_manager_secret(dir.path(), &ca, &ca_key, false);
        let (sig2, chain2) = signer.sign(&digest).unwrap();
        assert_ne!(chain, chain2, "the renewed certificate signs");
        assert_eq!(verify_detached(&digest, &sig2, &chain2), Ok(()));
        trusted.verify(&digest, &sig2, &chain2, now_ms()).unwrap();
        trusted.verify(&digest, &sig, &chain, now_ms()).unwrap();

        // A certificate of another CA, and a CA certificate as the signer, are not trusted.
        let other_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let other_ca = params.self_signed(&other_key).unwrap();
        let other = tempfile::tempdir().unwrap();
        cert_manager_secret(other.path(), &other_ca, &other_key, false);
        let files = (other.path().join("tls.key"), other.path().join("tls.crt"), other.path().join("ca.crt"));
        let foreign = Signer::load(
            &SigningConfig { files: Some(files), chain: None, trusted: None, trust_bundle: None },
            other.path(),
        )
        .unwrap();
        let (sig3, chain3) = foreign.sign(&digest).unwrap();
        assert!(trusted.verify(&digest, &sig3, &chain3, now_ms()).unwrap_err().contains("not trusted"));
        let ca_leaf = tempfile::tempdir().unwrap();
        cert_manager_secret(ca_leaf.path(), &ca, &ca_key, true);
        let files = (ca_leaf.path().join("tls.key"), ca_leaf.path().join("tls.crt"), ca_leaf.path().join("ca.crt"));
        let ca_signer = Signer::load(
            &SigningConfig { files: Some(files), chain: None, trusted: None, trust_bundle: None },
            ca_leaf.path(),
        )
        .unwrap();
        let (sig4, chain4) = ca_signer.sign(&digest).unwrap();
        assert!(trusted.verify(&digest, &sig4, &chain4, now_ms()).unwrap_err().contains("not trusted"));

        // A key that does not match its certificate is refused at start.
        std::fs::copy(other.path().join("tls.key"), dir.path().join("tls.key")).unwrap();
        let files = (dir.path().join("tls.key"), dir.path().join("tls.crt"), dir.path().join("ca.crt"));
        let err = Signer::load(
            &SigningConfig { files: Some(files), chain: None, trusted: None, trust_bundle: None },
            dir.path(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("does not belong"), "{err:#}");
    }
}
