//! Publisher signatures: a publisher attaches its own signature (DER ECDSA P-256 over the
//! artifact's bytes, e.g. `openssl dgst -sha256 -sign`) and PEM chain; Arca checks the chain
//! against the trust bundle (`ARCA_TRUST_BUNDLE`), the validity periods, the key usage and
//! EKU, and the signature over the artifact's digest. The result is `valid`, `invalid` or
//! `untrusted`, each with its reason; every attempt is audited.

use serde::Serialize;
use utoipa::ToSchema;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

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
        let certs = super::pem::certs(pem.as_bytes()).map_err(|e| anyhow::anyhow!("ARCA_TRUST_BUNDLE: {e}"))?;
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
    let ders: Vec<Vec<u8>> = match super::pem::certs(chain_pem.as_bytes()) {
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
    match super::signing::verify_detached(digest, signature_der, chain_pem) {
        Ok(()) => verdict("valid", "signature verified; chain to a trusted CA", subject),
        Err(e) => verdict("invalid", e, subject),
    }
}
