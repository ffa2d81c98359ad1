//! Key generation and key formats. The secret key stays with its owner (the party allowed to
//! decrypt sums); the compact public key goes to clients and to the database.
//!
//! Formats (little-endian): secret key version 2 `"EKS" 0x02 | key_id[16] | n u32 | n × u64`
//! (binary coefficients) `| n × u64` (the bias 2·μ of its public key, below); version 1 (`0x01`,
//! without the bias) is still read. Public key `"EKP" 0x01 | key_id[16] | n u32 | 2n × u64`
//! (tfhe-rs's compact public key container: the mask polynomial, then the body polynomial).
//!
//! The bias: a compact public-key encryption draws its randomness r from {0, 1}, mean 1/2, so
//! each body carries, besides zero-mean noise, the fixed term ½·Σ_i e_pk[i] at its position j
//! (e_pk the public key's own noise, rotated negacyclically): μ_j = ½·rev(e_pk ⊛ 1)_j. A sum of T
//! single encryptions carries T·μ_j, which the key holder, who knows e_pk = body − mask ⊛ s,
//! subtracts before decoding (`vector::Scheme::Single`). Unproven updates avoid it by
//! subtracting a second encryption of zero instead (`Scheme::Difference`); a proof covers one
//! encryption only, so proven updates are single encryptions.

use crate::params::{LWE_DIMENSION, NOISE_BOUND_LOG2};
use crate::FheError;
use tfhe::core_crypto::algorithms::slice_algorithms::slice_semi_reverse_negacyclic_convolution;
use tfhe::core_crypto::prelude::*;
use zeroize::Zeroize;

const SECRET_MAGIC_V1: &[u8; 4] = b"EKS\x01";
const SECRET_MAGIC: &[u8; 4] = b"EKS\x02";
const PUBLIC_MAGIC: &[u8; 4] = b"EKP\x01";

pub type KeyId = [u8; 16];

pub struct SecretKey {
    pub key_id: KeyId,
    pub(crate) key: LweSecretKeyOwned<u64>,
    /// 2·μ per body position (wrapping), or None for a version-1 key file.
    pub(crate) bias: Option<Vec<u64>>,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.key.as_mut().zeroize();
        if let Some(b) = &mut self.bias {
            b.zeroize();
        }
    }
}

/// 2·μ of `public` under `key` (see the module comment): rev(e_pk ⊛ 1), e_pk = body − mask ⊛ s.
fn bias_of(key: &LweSecretKeyOwned<u64>, public: &LweCompactPublicKeyOwned<u64>) -> Vec<u64> {
    let mut mask_times_s = vec![0u64; LWE_DIMENSION];
    slice_semi_reverse_negacyclic_convolution(
        &mut mask_times_s,
        public.get_mask().as_ref(),
        key.as_ref(),
    );
    let mut e_pk: Vec<u64> = public
        .get_body()
        .as_ref()
        .iter()
        .zip(&mask_times_s)
        .map(|(b, x)| b.wrapping_sub(*x))
        .collect();
    let mut sums = vec![0u64; LWE_DIMENSION];
    slice_semi_reverse_negacyclic_convolution(&mut sums, &e_pk, &vec![1u64; LWE_DIMENSION]);
    sums.reverse();
    e_pk.zeroize();
    mask_times_s.zeroize();
    sums
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
    let bias = Some(bias_of(&key, &public));
    (
        SecretKey { key_id, key, bias },
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
    /// The version-2 form (with the bias) if the key has it, else the version-1 form.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut words = zeroize::Zeroizing::new(self.key.as_ref().to_vec());
        let magic = match &self.bias {
            Some(bias) => {
                words.extend_from_slice(bias);
                SECRET_MAGIC
            }
            None => SECRET_MAGIC_V1,
        };
        zeroize::Zeroizing::new(words_to_bytes(magic, &self.key_id, LWE_DIMENSION, &words))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FheError> {
        let v1 = bytes.len() == 24 + 8 * LWE_DIMENSION;
        let (magic, count) = if v1 {
            (SECRET_MAGIC_V1, LWE_DIMENSION)
        } else {
            (SECRET_MAGIC, 2 * LWE_DIMENSION)
        };
        let (key_id, mut words) = bytes_to_words(magic, bytes, count, "secret key")?;
        let bias = (!v1).then(|| words.split_off(LWE_DIMENSION));
        if words.iter().any(|w| *w > 1) {
            words.zeroize();
            return Err(FheError::Malformed(
                "secret key coefficients must be 0 or 1".into(),
            ));
        }
        Ok(SecretKey {
            key_id,
            key: LweSecretKey::from_container(words),
            bias,
        })
    }

    /// Adds the bias of its public key to a version-1 key (which cannot decrypt proven updates
    /// without it).
    pub fn with_public_key(mut self, public: &PublicKey) -> Result<Self, FheError> {
        if public.key_id != self.key_id {
            return Err(FheError::Mismatch(
                "the public key is not this secret key's".into(),
            ));
        }
        self.bias = Some(bias_of(&self.key, &public.key));
        Ok(self)
    }

    /// T·μ_j for body position j of a chunk: what a sum of `terms` single encryptions carries
    /// there besides zero-mean noise.
    pub(crate) fn bias_for(&self, terms: u64, j: usize) -> Option<u64> {
        let twice = self.bias.as_ref()?[j];
        // (T·2μ_j)/2 in two's complement: μ_j is a half-integer; half a unit is far below a step.
        Some(((twice as i64 as i128 * terms as i128) >> 1) as i64 as u64)
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
