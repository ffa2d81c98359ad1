//! Key generation and key formats. The secret key stays with its owner (the party allowed to
//! decrypt sums); the compact public key goes to clients and to the database.
//!
//! Formats (little-endian): secret key `"EKS" 0x01 | key_id[16] | n u32 | n × u64` (binary
//! coefficients); public key `"EKP" 0x01 | key_id[16] | n u32 | 2n × u64` (tfhe-rs's compact
//! public key container: the mask polynomial, then the body polynomial).

use crate::params::{LWE_DIMENSION, NOISE_BOUND_LOG2};
use crate::FheError;
use tfhe::core_crypto::prelude::*;
use zeroize::Zeroize;

const SECRET_MAGIC: &[u8; 4] = b"EKS\x01";
const PUBLIC_MAGIC: &[u8; 4] = b"EKP\x01";

pub type KeyId = [u8; 16];

pub struct SecretKey {
    pub key_id: KeyId,
    pub(crate) key: LweSecretKeyOwned<u64>,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.key.as_mut().zeroize();
    }
}

pub struct PublicKey {
    pub key_id: KeyId,
    pub(crate) key: LweCompactPublicKeyOwned<u64>,
}

pub(crate) fn modulus() -> CiphertextModulus<u64> {
    CiphertextModulus::new_native()
}

pub(crate) fn noise() -> TUniform<u64> {
    TUniform::new(NOISE_BOUND_LOG2)
}

/// A fresh key pair, from the operating system's entropy (via tfhe-rs's seeder).
pub fn generate() -> (SecretKey, PublicKey) {
    let mut boxed = new_seeder();
    let seeder = boxed.as_mut();
    let mut secret_gen = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());
    let mut enc_gen =
        EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder);
    let key = allocate_and_generate_new_binary_lwe_secret_key(
        LweDimension(LWE_DIMENSION),
        &mut secret_gen,
    );
    let public =
        allocate_and_generate_new_lwe_compact_public_key(&key, noise(), modulus(), &mut enc_gen);
    let mut key_id = [0u8; 16];
    key_id.copy_from_slice(&seeder.seed().0.to_le_bytes());
    (
        SecretKey { key_id, key },
        PublicKey {
            key_id,
            key: public,
        },
    )
}

fn words_to_bytes(magic: &[u8; 4], key_id: &KeyId, n: usize, words: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + 8 * words.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(key_id);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

fn bytes_to_words(
    magic: &[u8; 4],
    bytes: &[u8],
    words: usize,
    what: &str,
) -> Result<(KeyId, Vec<u64>), FheError> {
    if bytes.len() != 24 + 8 * words || &bytes[..4] != magic {
        return Err(FheError::Malformed(format!(
            "not a {what} of this parameter set"
        )));
    }
    let n = u32::from_le_bytes(bytes[20..24].try_into().unwrap()) as usize;
    if n != LWE_DIMENSION {
        return Err(FheError::Malformed(format!(
            "{what} of dimension {n}, expected {LWE_DIMENSION}"
        )));
    }
    let key_id: KeyId = bytes[4..20].try_into().unwrap();
    let words = bytes[24..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Ok((key_id, words))
}

impl SecretKey {
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(words_to_bytes(
            SECRET_MAGIC,
            &self.key_id,
            LWE_DIMENSION,
            self.key.as_ref(),
        ))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FheError> {
        let (key_id, mut words) = bytes_to_words(SECRET_MAGIC, bytes, LWE_DIMENSION, "secret key")?;
        if words.iter().any(|w| *w > 1) {
            words.zeroize();
            return Err(FheError::Malformed(
                "secret key coefficients must be 0 or 1".into(),
            ));
        }
        Ok(SecretKey {
            key_id,
            key: LweSecretKey::from_container(words),
        })
    }
}

impl PublicKey {
    pub fn to_bytes(&self) -> Vec<u8> {
        words_to_bytes(PUBLIC_MAGIC, &self.key_id, LWE_DIMENSION, self.key.as_ref())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FheError> {
        let (key_id, words) = bytes_to_words(PUBLIC_MAGIC, bytes, 2 * LWE_DIMENSION, "public key")?;
        Ok(PublicKey {
            key_id,
            key: LweCompactPublicKey::from_container(words, modulus()),
        })
    }
}
