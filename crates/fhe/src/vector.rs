//! Encrypted vectors: format, encryption with the compact public key, addition, decryption.
//!
//! Format (little-endian), version 1:
//! `"EV" | version u8 = 1 | reserved u8 = 0 | key_id[16] | dim u32 | terms u64 | value_bits u8 |
//!  frac_bits u8 | message_bits u8 | reserved u8 = 0 | words: (ceil(dim/2048)·2048 + dim) × u64`
//! — the words are tfhe-rs's `LweCompactCiphertextList` container (one 2,048-word mask per 2,048
//! values, then one body per value). `terms` counts the client vectors summed into it, so the
//! decrypting side can check the noise budget.

use crate::keys::{modulus, noise, KeyId, PublicKey, SecretKey};
use crate::params::{Encoding, LWE_DIMENSION};
use crate::FheError;
use tfhe::core_crypto::prelude::*;

const MAGIC: &[u8; 2] = b"EV";
const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 36;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedVector {
    pub key_id: KeyId,
    pub dim: u32,
    pub terms: u64,
    pub encoding: Encoding,
    words: Vec<u64>,
}

fn word_count(dim: usize) -> usize {
    dim.div_ceil(LWE_DIMENSION) * LWE_DIMENSION + dim
}

impl EncryptedVector {
    /// Encrypts `values` under the public key.
    pub fn encrypt(pk: &PublicKey, values: &[f64], encoding: Encoding) -> Result<Self, FheError> {
        if values.is_empty() || values.len() > u32::MAX as usize {
            return Err(FheError::OutOfRange("a vector needs 1 to 2^32 - 1 values".into()));
        }
        encoding.check(1)?;
        let encoded = values
            .iter()
            .map(|x| encoding.encode(*x))
            .collect::<Result<Vec<u64>, _>>()?;
        let mut boxed = new_seeder();
        let seeder = boxed.as_mut();
        let mut gen = EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder);
        let mut list = LweCompactCiphertextList::new(
            0u64,
            LweDimension(LWE_DIMENSION).to_lwe_size(),
            LweCiphertextCount(values.len()),
            modulus(),
        );
        encrypt_lwe_compact_ciphertext_list_with_compact_public_key(
            &pk.key,
            &mut list,
            &PlaintextList::from_container(encoded),
            noise(),
            noise(),
            gen.noise_generator_mut(),
        );
        Ok(EncryptedVector {
            key_id: pk.key_id,
            dim: values.len() as u32,
            terms: 1,
            encoding,
            words: list.into_container(),
        })
    }

    /// Adds `other` (same key, dimension and encoding) into this one.
    pub fn add_assign(&mut self, other: &EncryptedVector) -> Result<(), FheError> {
        if self.key_id != other.key_id {
            return Err(FheError::Mismatch("the vectors are under different keys".into()));
        }
        if self.dim != other.dim {
            return Err(FheError::Mismatch(format!(
                "dimensions differ: {} and {}",
                self.dim, other.dim
            )));
        }
        if self.encoding != other.encoding {
            return Err(FheError::Mismatch("the vectors use different encodings".into()));
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a = a.wrapping_add(*b);
        }
        self.terms += other.terms;
        Ok(())
    }

    /// Adds the words of a serialized vector without building it (the aggregate's hot path).
    pub fn add_serialized(&mut self, bytes: &[u8]) -> Result<(), FheError> {
        let (key_id, dim, terms, encoding) = parse_header(bytes)?;
        if key_id != self.key_id || dim != self.dim || encoding != self.encoding {
            return Err(FheError::Mismatch(
                "the vectors differ in key, dimension or encoding".into(),
            ));
        }
        for (a, c) in self.words.iter_mut().zip(bytes[HEADER_LEN..].chunks_exact(8)) {
            *a = a.wrapping_add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        self.terms += terms;
        Ok(())
    }

    /// Decrypts (the secret key's holder only; it must only be given sums).
    pub fn decrypt(&self, sk: &SecretKey) -> Result<Vec<f64>, FheError> {
        if sk.key_id != self.key_id {
            return Err(FheError::Mismatch("the vector is not under this key".into()));
        }
        self.encoding.check(self.terms)?;
        let list = LweCompactCiphertextList::from_container(
            self.words.clone(),
            LweDimension(LWE_DIMENSION).to_lwe_size(),
            LweCiphertextCount(self.dim as usize),
            modulus(),
        );
        let expanded = list.expand_into_lwe_ciphertext_list();
        let mut out = PlaintextList::new(0u64, PlaintextCount(self.dim as usize));
        decrypt_lwe_ciphertext_list(&sk.key, &expanded, &mut out);
        Ok(out.iter().map(|p| self.encoding.decode(*p.0)).collect())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 8 * self.words.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(0);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.dim.to_le_bytes());
        out.extend_from_slice(&self.terms.to_le_bytes());
        out.extend_from_slice(&[
            self.encoding.value_bits,
            self.encoding.frac_bits,
            self.encoding.message_bits,
            0,
        ]);
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FheError> {
        let (key_id, dim, terms, encoding) = parse_header(bytes)?;
        let words = bytes[HEADER_LEN..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Ok(EncryptedVector {
            key_id,
            dim,
            terms,
            encoding,
            words,
        })
    }

    /// Bytes per value of the serialized form.
    pub fn bytes_per_value(&self) -> f64 {
        (HEADER_LEN + 8 * self.words.len()) as f64 / self.dim as f64
    }
}

/// Checks the header and the length; returns (key_id, dim, terms, encoding).
pub fn parse_header(bytes: &[u8]) -> Result<(KeyId, u32, u64, Encoding), FheError> {
    if bytes.len() < HEADER_LEN || &bytes[..2] != MAGIC {
        return Err(FheError::Malformed("not an encrypted vector".into()));
    }
    if bytes[2] != VERSION || bytes[3] != 0 || bytes[35] != 0 {
        return Err(FheError::Malformed(format!("unknown encrypted vector version {}", bytes[2])));
    }
    let key_id: KeyId = bytes[4..20].try_into().unwrap();
    let dim = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    let terms = u64::from_le_bytes(bytes[24..32].try_into().unwrap());
    let encoding = Encoding {
        value_bits: bytes[32],
        frac_bits: bytes[33],
        message_bits: bytes[34],
    };
    if dim == 0 || terms == 0 || bytes.len() != HEADER_LEN + 8 * word_count(dim as usize) {
        return Err(FheError::Malformed(format!(
            "an encrypted vector of {dim} values must be {} bytes, not {}",
            HEADER_LEN + 8 * word_count(dim as usize),
            bytes.len()
        )));
    }
    encoding.check(1)?;
    Ok((key_id, dim, terms, encoding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    fn random_values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
        // A small LCG: reproducible, good enough for test data.
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                ((u * 2.0 - 1.0) * scale * 256.0).round() / 256.0
            })
            .collect()
    }

    #[test]
    fn the_decrypted_sum_equals_the_plaintext_sum_exactly() {
        let (sk, pk) = generate();
        let enc = Encoding::for_sums(22, 8, 1000).unwrap();
        let dim = 3000; // two masks
        let mut total = vec![0f64; dim];
        let mut acc: Option<EncryptedVector> = None;
        for i in 0..40 {
            let v = random_values(dim, i, 8000.0);
            for (t, x) in total.iter_mut().zip(&v) {
                *t += x;
            }
            let ct = EncryptedVector::encrypt(&pk, &v, enc).unwrap();
            let bytes = ct.to_bytes();
            match &mut acc {
                None => acc = Some(EncryptedVector::from_bytes(&bytes).unwrap()),
                Some(a) => a.add_serialized(&bytes).unwrap(),
            }
        }
        let acc = acc.unwrap();
        assert_eq!(acc.terms, 40);
        assert_eq!(acc.decrypt(&sk).unwrap(), total);
    }

    #[test]
    fn size_per_value_stays_under_32_bytes() {
        let (_, pk) = generate();
        let enc = Encoding::for_sums(22, 8, 1000).unwrap();
        let ct = EncryptedVector::encrypt(&pk, &vec![1.0; 1000], enc).unwrap();
        assert!(ct.bytes_per_value() < 24.5, "{}", ct.bytes_per_value());
    }

    #[test]
    fn mismatches_and_damaged_bytes_are_errors() {
        let (sk, pk) = generate();
        let (_, other_pk) = generate();
        let enc = Encoding::for_sums(16, 4, 100).unwrap();
        let a = EncryptedVector::encrypt(&pk, &[1.0, 2.0], enc).unwrap();
        let mut b = EncryptedVector::encrypt(&pk, &[1.0, 2.0, 3.0], enc).unwrap();
        let c = EncryptedVector::encrypt(&other_pk, &[1.0, 2.0, 3.0], enc).unwrap();
        assert!(matches!(b.add_assign(&a), Err(FheError::Mismatch(_))));
        assert!(matches!(b.add_assign(&c), Err(FheError::Mismatch(_))));
        assert!(matches!(c.decrypt(&sk), Err(FheError::Mismatch(_))));
        let bytes = a.to_bytes();
        assert!(EncryptedVector::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(EncryptedVector::from_bytes(&bytes[..10]).is_err());
        let mut wrong_version = bytes.clone();
        wrong_version[2] = 9;
        assert!(EncryptedVector::from_bytes(&wrong_version).is_err());
        // A sum beyond the encoding's budget is refused rather than decoded wrong.
        let mut many = EncryptedVector::from_bytes(&bytes).unwrap();
        many.terms = 1 << 40;
        assert!(matches!(many.decrypt(&sk), Err(FheError::OutOfRange(_))));
    }

    #[test]
    fn keys_round_trip_through_their_formats() {
        let (sk, pk) = generate();
        let sk2 = SecretKey::from_bytes(&sk.to_bytes()).unwrap();
        let pk2 = PublicKey::from_bytes(&pk.to_bytes()).unwrap();
        let enc = Encoding::for_sums(16, 4, 10).unwrap();
        let ct = EncryptedVector::encrypt(&pk2, &[-3.25, 7.5], enc).unwrap();
        assert_eq!(ct.decrypt(&sk2).unwrap(), vec![-3.25, 7.5]);
        assert!(PublicKey::from_bytes(&sk.to_bytes()).is_err());
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use crate::keys::generate;

    #[test]
    #[ignore]
    fn time_1000_by_1000() {
        let (sk, pk) = generate();
        let enc = Encoding::for_sums(22, 8, 1000).unwrap();
        let v: Vec<f64> = (0..1000).map(|i| (i as f64) - 500.0).collect();
        // Distinct encryptions: the same ciphertext added to itself adds its noise linearly.
        let t = std::time::Instant::now();
        let cts: Vec<Vec<u8>> = (0..1000)
            .map(|_| EncryptedVector::encrypt(&pk, &v, enc).unwrap().to_bytes())
            .collect();
        eprintln!("encrypt 1000 vectors of 1000 values: {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let mut acc = EncryptedVector::from_bytes(&cts[0]).unwrap();
        for bytes in &cts[1..] {
            acc.add_serialized(bytes).unwrap();
        }
        eprintln!("sum 1000 vectors: {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let out = acc.decrypt(&sk).unwrap();
        eprintln!("decrypt: {:?}", t.elapsed());
        assert_eq!(out, v.iter().map(|x| x * 1000.0).collect::<Vec<_>>());
    }
}
