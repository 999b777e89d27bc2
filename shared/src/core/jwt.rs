//! Access tokens: ES256 JWTs. Only the `auth` function holds the signing key ([`Issuer`]);
//! every function verifies with the public key alone ([`Verifier`]), pinning the algorithm,
//! the key id, the issuer and the audience.

use std::path::Path;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fsutil::write_secret;
use super::rbac::Role;

pub const ISSUER: &str = "arca";
pub const AUDIENCE: &str = "arca-api";
/// Default lifetime of an access token.
pub const ACCESS_TTL_SECS: i64 = 15 * 60;

/// Claims of an Arca access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    /// Sign-in session (refresh-token family): revoking it ends this token too.
    pub sid: String,
    pub roles: Vec<Role>,
}

/// Verifies access tokens with the public key only.
#[derive(Clone)]
pub struct Verifier {
    decoding: DecodingKey,
    pub kid: String,
    /// Public JWK (`kty`, `crv`, `x`, `y`, `kid`, `alg`, `use`).
    pub jwk: serde_json::Value,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Issues access tokens (the `auth` function, and `arca serve`).
pub struct Issuer {
    encoding: EncodingKey,
    pub verifier: Verifier,
    ttl_secs: i64,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("kid", &self.verifier.kid).finish_non_exhaustive()
    }
}

fn verifier_from_raw(raw: &[u8]) -> anyhow::Result<Verifier> {
    anyhow::ensure!(raw.len() == 65 && raw[0] == 4, "not an uncompressed P-256 public key");
    let (x, y) = (URL_SAFE_NO_PAD.encode(&raw[1..33]), URL_SAFE_NO_PAD.encode(&raw[33..]));
    let kid = hex::encode(&Sha256::digest(raw)[..8]);
    let decoding = DecodingKey::from_ec_components(&x, &y).context("public key")?;
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig",
    });
    Ok(Verifier { decoding, kid, jwk })
}

impl Issuer {
    /// Loads the private key from `path`, or (no path) `<data-dir>/keys/jwt-es256.pem`,
    /// generated on first start (`arca serve` only).
    pub fn load_or_generate(path: Option<&Path>, data_dir: &Path, ttl_secs: i64) -> anyhow::Result<Self> {
        let pem = match path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("ARCA_JWT_KEY: cannot read {}", path.display()))?,
            None => {
                let dir = data_dir.join("keys");
                std::fs::create_dir_all(&dir).with_context(|| format!("keys: cannot create {}", dir.display()))?;
                let path = dir.join("jwt-es256.pem");
                match std::fs::read_to_string(&path) {
                    Ok(pem) => pem,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let key =
                            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("keys: generation")?;
                        let pem = key.serialize_pem();
                        write_secret(&path, pem.as_bytes())
                            .with_context(|| format!("keys: cannot write {}", path.display()))?;
                        pem
                    }
                    Err(e) => return Err(e).with_context(|| format!("keys: cannot read {}", path.display())),
                }
            }
        };
        Self::from_pem(&pem, ttl_secs)
    }

    /// From a PKCS#8 PEM P-256 private key.
    pub fn from_pem(pem: &str, ttl_secs: i64) -> anyhow::Result<Self> {
        let pair = rcgen::KeyPair::from_pem(pem).context("ARCA_JWT_KEY: not a PEM P-256 private key")?;
        let verifier = verifier_from_raw(pair.public_key_raw()).context("ARCA_JWT_KEY")?;
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).context("ARCA_JWT_KEY: not an EC key")?;
        Ok(Self { encoding, verifier, ttl_secs })
    }

    /// The public key in PEM (what the other functions get as `ARCA_JWT_PUBLIC_KEY`).
    pub fn public_pem(pem: &str) -> anyhow::Result<String> {
        Ok(rcgen::KeyPair::from_pem(pem)?.public_key_pem())
    }

    /// Issues an access token for a user.
    pub fn issue(&self, user_id: &str, roles: &[Role], sid: &str) -> anyhow::Result<(String, Claims)> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user_id.to_owned(),
            exp: now + self.ttl_secs,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            sid: sid.to_owned(),
            roles: roles.to_vec(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.verifier.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding).context("jwt: signing")?;
        Ok((token, claims))
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }
}

impl Verifier {
    /// From a PEM public key (`ARCA_JWT_PUBLIC_KEY`).
    pub fn from_public_pem(pem: &str) -> anyhow::Result<Self> {
        use p256::pkcs8::DecodePublicKey;
        let key =
            p256::PublicKey::from_public_key_pem(pem).context("ARCA_JWT_PUBLIC_KEY: not a PEM P-256 public key")?;
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        verifier_from_raw(key.to_encoded_point(false).as_bytes()).context("ARCA_JWT_PUBLIC_KEY")
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("ARCA_JWT_PUBLIC_KEY: cannot read {}", path.display()))?;
        Self::from_public_pem(&pem)
    }

    /// Verifies a token: ES256 only, known `kid`, issuer, audience, expiry and not-before.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let header = jsonwebtoken::decode_header(token)?;
        if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(jsonwebtoken::errors::ErrorKind::InvalidToken.into());
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub", "jti"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_alone_verifies() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let issuer = Issuer::from_pem(&key.serialize_pem(), 60).unwrap();
        let verifier = Verifier::from_public_pem(&Issuer::public_pem(&key.serialize_pem()).unwrap()).unwrap();
        let (token, _) = issuer.issue("u1", &[Role::Admin], "s1").unwrap();
        assert_eq!(verifier.verify(&token).unwrap().sub, "u1");
        assert_eq!(verifier.kid, issuer.verifier.kid);
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let other = Verifier::from_public_pem(&other.public_key_pem()).unwrap();
        assert!(other.verify(&token).is_err());
    }
}
