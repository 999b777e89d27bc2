//! Access tokens: ES256 JWTs. The signing key lives in the data dir (0600); verification
//! pins the algorithm, issuer and audience and needs only the public key.

use std::path::Path;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsutil::write_secret;
use crate::users::Role;

pub const ISSUER: &str = "arca";
pub const AUDIENCE: &str = "arca-api";
/// Lifetime of an access token.
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

/// The process's signing key and the public half it publishes.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub kid: String,
    /// Public JWK (`kty`, `crv`, `x`, `y`, `kid`, `alg`, `use`).
    pub jwk: serde_json::Value,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Loads `<data-dir>/keys/jwt-es256.pem`, generating it on first start.
    pub fn load_or_generate(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("keys");
        std::fs::create_dir_all(&dir).with_context(|| format!("keys: cannot create {}", dir.display()))?;
        let path = dir.join("jwt-es256.pem");
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("keys: generation")?;
                let pem = key.serialize_pem();
                write_secret(&path, pem.as_bytes())
                    .with_context(|| format!("keys: cannot write {}", path.display()))?;
                pem
            }
            Err(e) => return Err(e).with_context(|| format!("keys: cannot read {}", path.display())),
        };
        Self::from_pem(&pem)
    }

    /// From a PKCS#8 PEM P-256 private key.
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let pair = rcgen::KeyPair::from_pem(pem).context("keys: JWT signing key is not a PEM P-256 key")?;
        let raw = pair.public_key_raw(); // 0x04 || X || Y
        anyhow::ensure!(raw.len() == 65 && raw[0] == 4, "keys: JWT signing key is not a P-256 key");
        let (x, y) = (URL_SAFE_NO_PAD.encode(&raw[1..33]), URL_SAFE_NO_PAD.encode(&raw[33..]));
        let kid = hex::encode(&Sha256::digest(raw)[..8]);
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).context("keys: JWT signing key")?;
        let decoding = DecodingKey::from_ec_components(&x, &y).context("keys: JWT public key")?;
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig",
        });
        Ok(Self { encoding, decoding, kid, jwk })
    }

    /// Issues an access token for a user.
    pub fn issue(&self, user_id: &str, roles: &[Role], sid: &str) -> anyhow::Result<(String, Claims)> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user_id.to_owned(),
            exp: now + ACCESS_TTL_SECS,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            sid: sid.to_owned(),
            roles: roles.to_vec(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding).context("jwt: signing")?;
        Ok((token, claims))
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
