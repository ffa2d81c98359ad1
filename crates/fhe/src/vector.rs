//! Encrypted vectors: format, encryption with the compact public key, addition, decryption.
//!
//! Format (little-endian), versions 1 and 2:
//! `"EV" | version u8 | reserved u8 = 0 | key_id[16] | dim u32 | terms u64 | value_bits u8 |
//!  frac_bits u8 | message_bits u8 | chunk_log2 u8 | crc32 u32 |
//!  words: (ceil(dim/chunk)·2048 + dim) × u64`
//! — the words are tfhe-rs's `LweCompactCiphertextList` containers laid end to end: every
//! 2,048-word mask first (one per `chunk` values), then one body per value. Version 1
//! (`Scheme::Difference`, unproven updates): `chunk_log2` must be 0 and a chunk is 2,048 values.
//! Version 2 (`Scheme::Single`, proven updates, `proven`): a chunk is 2^chunk_log2 values
//! (6 to 11), the values one proof covers. `terms` counts the client vectors summed into it, so
//! the decrypting side can check the noise budget (and, in version 2, remove the bias of that
//! many encryptions). `crc32` (CRC-32/ISO-HDLC of every other byte) catches damage in storage or
//! transit; it is no integrity protection against an attacker: these ciphertexts are malleable
//! by design (that is what lets them add). Vectors of different versions or chunks do not add.

use crate::keys::{modulus, noise, KeyId, PublicKey, SecretKey};
use crate::params::{Encoding, LWE_DIMENSION};
use crate::FheError;
use tfhe::core_crypto::prelude::*;

const MAGIC: &[u8; 2] = b"EV";
pub const HEADER_LEN: usize = 40;
const CRC_AT: usize = 36;

/// How the updates of a vector were encrypted, which decides how its sums decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Version 1: each update is the difference of two encryptions (zero-mean noise); 2,048
    /// values per mask.
    Difference,
    /// Version 2: each update is one (proven) encryption, whose bias the key holder removes;
    /// `chunk` values per mask, a power of two from 64 to 2,048.
    Single { chunk: u32 },
}

impl Scheme {
    pub fn chunk(&self) -> usize {
        match self {
            Scheme::Difference => LWE_DIMENSION,
            Scheme::Single { chunk } => *chunk as usize,
        }
    }

    fn version(&self) -> u8 {
        match self {
            Scheme::Difference => 1,
            Scheme::Single { .. } => 2,
        }
    }

    fn chunk_log2_byte(&self) -> u8 {
        match self {
            Scheme::Difference => 0,
            Scheme::Single { chunk } => chunk.trailing_zeros() as u8,
        }
    }

    /// Whether `chunk` values per proof is a chunk size version 2 allows.
    pub fn valid_chunk(chunk: usize) -> bool {
        chunk.is_power_of_two() && (64..=LWE_DIMENSION).contains(&chunk)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedVector {
    pub key_id: KeyId,
    pub dim: u32,
    pub terms: u64,
    pub encoding: Encoding,
    pub scheme: Scheme,
    words: Vec<u64>,
}

/// Words of a vector of `dim` values with `chunk` values per mask.
pub fn word_count(dim: usize, chunk: usize) -> usize {
    dim.div_ceil(chunk) * LWE_DIMENSION + dim
}

/// The values chunk `c` of a vector of `dim` values covers (`chunk` per mask): (start, len).
fn chunk_span(dim: usize, chunk: usize, c: usize) -> (usize, usize) {
    let start = c * chunk;
    (start, chunk.min(dim - start))
}

/// Chunk `c` of a vector's words (every mask first, then the bodies) as the ciphertext list
/// tfhe-rs made it: its mask and its bodies.
pub(crate) fn chunk_list(
    words: &[u64],
    dim: usize,
    chunk: usize,
    c: usize,
) -> LweCompactCiphertextListOwned<u64> {
    let masks = dim.div_ceil(chunk) * LWE_DIMENSION;
    let (start, len) = chunk_span(dim, chunk, c);
    let mut container = Vec::with_capacity(LWE_DIMENSION + len);
    container.extend_from_slice(&words[c * LWE_DIMENSION..(c + 1) * LWE_DIMENSION]);
    container.extend_from_slice(&words[masks + start..masks + start + len]);
    LweCompactCiphertextList::from_container(
        container,
        LweDimension(LWE_DIMENSION).to_lwe_size(),
        LweCiphertextCount(len),
        modulus(),
    )
}

/// Puts the ciphertext list of chunk `c` (tfhe-rs's container: mask, then bodies) into a
/// vector's words; the inverse of `chunk_list`.
pub(crate) fn put_chunk(words: &mut [u64], dim: usize, chunk: usize, c: usize, list: &[u64]) {
    let masks = dim.div_ceil(chunk) * LWE_DIMENSION;
    let (start, len) = chunk_span(dim, chunk, c);
    words[c * LWE_DIMENSION..(c + 1) * LWE_DIMENSION].copy_from_slice(&list[..LWE_DIMENSION]);
    words[masks + start..masks + start + len].copy_from_slice(&list[LWE_DIMENSION..]);
}

/// One compact public-key encryption of the plaintext words `plain` (already scaled by Δ).
fn compact_encryption(
    pk: &PublicKey,
    plain: Vec<u64>,
    gen: &mut EncryptionRandomGenerator<DefaultRandomGenerator>,
) -> LweCompactCiphertextListOwned<u64> {
    let mut list = LweCompactCiphertextList::new(
        0u64,
        LweDimension(LWE_DIMENSION).to_lwe_size(),
        LweCiphertextCount(plain.len()),
        modulus(),
    );
    encrypt_lwe_compact_ciphertext_list_with_compact_public_key(
        &pk.key,
        &mut list,
        &PlaintextList::from_container(plain),
        noise(),
        noise(),
        gen.noise_generator_mut(),
    );
    list
}

impl EncryptedVector {
    /// Encrypts `values` under the public key.
    pub fn encrypt(pk: &PublicKey, values: &[f64], encoding: Encoding) -> Result<Self, FheError> {
        if values.is_empty() || values.len() > u32::MAX as usize {
            return Err(FheError::OutOfRange(
                "a vector needs 1 to 2^32 - 1 values".into(),
            ));
        }
        encoding.check(1)?;
        let encoded = values
            .iter()
            .map(|x| encoding.encode(*x))
            .collect::<Result<Vec<u64>, _>>()?;
        let mut boxed = new_seeder();
        let seeder = boxed.as_mut();
        let mut gen =
            EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder);
        let mut encrypt =
            |plain: Vec<u64>| compact_encryption(pk, plain, &mut gen).into_container();
        // tfhe-rs draws the public-key randomness r from {0, 1}: its mean 1/2 leaves a noise
        // term fixed by the key (half the r-weighted sum of the key's own noise), the same in
        // every encryption, so sums of N updates grew by N instead of sqrt(N) (measured: 2^29.4
        // instead of 2^26.7 at N = 1,000). The difference with a second encryption of zero has
        // r1 - r2 in {-1, 0, 1}, mean 0: the noise is fresh and zero-mean, and sums grow as
        // sqrt(N). Same size; twice the encryption work.
        let mut words = encrypt(encoded);
        let zero = encrypt(vec![0u64; values.len()]);
        for (w, z) in words.iter_mut().zip(&zero) {
            *w = w.wrapping_sub(*z);
        }
        Ok(EncryptedVector {
            key_id: pk.key_id,
            dim: values.len() as u32,
            terms: 1,
            encoding,
            scheme: Scheme::Difference,
            words,
        })
    }

    /// Encrypts integers already in fixed point (x·2^frac_bits; any that fit the message bits,
    /// not only the value bits) as one single encryption (`Scheme::Single`, `chunk` values per
    /// mask), to be added to a sum of proven updates: the noise `fhe_close_round` adds to a
    /// differentially private round sum. The sum's `terms` then count it, so the key holder
    /// removes one more encryption's bias.
    pub fn encrypt_single_fixed_point(
        pk: &PublicKey,
        ints: &[i64],
        encoding: Encoding,
        chunk: u32,
    ) -> Result<Self, FheError> {
        if ints.is_empty() || ints.len() > u32::MAX as usize {
            return Err(FheError::OutOfRange(
                "a vector needs 1 to 2^32 - 1 values".into(),
            ));
        }
        if !Scheme::valid_chunk(chunk as usize) {
            return Err(FheError::OutOfRange(format!(
                "{chunk} values per mask is not a power of two from 64 to {LWE_DIMENSION}"
            )));
        }
        encoding.check(1)?;
        let limit = 1i64 << (encoding.message_bits - 1);
        if let Some(z) = ints.iter().find(|z| !(-limit..limit).contains(*z)) {
            return Err(FheError::OutOfRange(format!(
                "{z} does not fit {} message bits",
                encoding.message_bits
            )));
        }
        let dim = ints.len();
        let chunk_len = chunk as usize;
        let mut words = vec![0u64; word_count(dim, chunk_len)];
        let mut boxed = new_seeder();
        let seeder = boxed.as_mut();
        let mut gen =
            EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder);
        for (c, part) in ints.chunks(chunk_len).enumerate() {
            let plain: Vec<u64> = part
                .iter()
                .map(|z| (*z as u64).wrapping_mul(encoding.delta()))
                .collect();
            let list = compact_encryption(pk, plain, &mut gen);
            put_chunk(&mut words, dim, chunk_len, c, list.as_ref());
        }
        Ok(EncryptedVector::single(
            pk.key_id, dim as u32, encoding, chunk, words,
        ))
    }

    /// A vector of one update from its words (a verified proven update, `proven`).
    pub(crate) fn single(
        key_id: KeyId,
        dim: u32,
        encoding: Encoding,
        chunk: u32,
        words: Vec<u64>,
    ) -> Self {
        debug_assert_eq!(words.len(), word_count(dim as usize, chunk as usize));
        EncryptedVector {
            key_id,
            dim,
            terms: 1,
            encoding,
            scheme: Scheme::Single { chunk },
            words,
        }
    }

    /// Why a vector with these header fields cannot be added to this one, if it cannot.
    fn check_compatible(
        &self,
        key_id: &KeyId,
        dim: u32,
        encoding: &Encoding,
        scheme: &Scheme,
    ) -> Result<(), FheError> {
        if &self.scheme != scheme {
            return Err(FheError::Mismatch(format!(
                "the vectors are encrypted differently ({:?} and {scheme:?}): proven and unproven updates, or proofs over different chunks, do not add",
                self.scheme
            )));
        }
        if &self.key_id != key_id {
            return Err(FheError::Mismatch(
                "the vectors are under different key sets".into(),
            ));
        }
        if self.dim != dim {
            return Err(FheError::Mismatch(format!(
                "dimensions differ: {} and {dim}",
                self.dim
            )));
        }
        if &self.encoding != encoding {
            return Err(FheError::Mismatch(format!(
                "encodings differ: {}/{}/{} and {}/{}/{} (value/fractional/message bits)",
                self.encoding.value_bits,
                self.encoding.frac_bits,
                self.encoding.message_bits,
                encoding.value_bits,
                encoding.frac_bits,
                encoding.message_bits
            )));
        }
        Ok(())
    }

    /// Adds `other` (same key, dimension and encoding) into this one.
    pub fn add_assign(&mut self, other: &EncryptedVector) -> Result<(), FheError> {
        self.check_compatible(&other.key_id, other.dim, &other.encoding, &other.scheme)?;
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a = a.wrapping_add(*b);
        }
        self.terms = self.terms.saturating_add(other.terms);
        Ok(())
    }

    /// Adds the words of a checked serialized vector without building it (the aggregate's hot
    /// path).
    pub fn add_serialized(&mut self, v: &Serialized<'_>) -> Result<(), FheError> {
        self.check_compatible(&v.key_id, v.dim, &v.encoding, &v.scheme)?;
        for (a, c) in self
            .words
            .iter_mut()
            .zip(v.bytes[HEADER_LEN..].chunks_exact(8))
        {
            *a = a.wrapping_add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        self.terms = self.terms.saturating_add(v.terms);
        Ok(())
    }

    /// Decrypts (the secret key's holder only; it must only be given sums).
    pub fn decrypt(&self, sk: &SecretKey) -> Result<Vec<f64>, FheError> {
        if sk.key_id != self.key_id {
            return Err(FheError::Mismatch(
                "the vector is not under this key".into(),
            ));
        }
        self.encoding.check(self.terms)?;
        Ok(self
            .plaintext_words(sk)?
            .into_iter()
            .map(|w| self.encoding.decode(w))
            .collect())
    }

    /// The decrypted plaintext words (message plus noise), the bias of single encryptions
    /// removed.
    fn plaintext_words(&self, sk: &SecretKey) -> Result<Vec<u64>, FheError> {
        let single = matches!(self.scheme, Scheme::Single { .. });
        if single && sk.bias.is_none() {
            return Err(FheError::Mismatch(
                "a sum of proven updates needs the secret key file keygen writes since 0.2.0 (it holds the public key's bias), or the public key beside a version-1 file".into(),
            ));
        }
        let dim = self.dim as usize;
        let chunk = self.scheme.chunk();
        let mut values = Vec::with_capacity(dim);
        for c in 0..dim.div_ceil(chunk) {
            let list = chunk_list(&self.words, dim, chunk, c);
            let len = list.lwe_ciphertext_count().0;
            let expanded = list.expand_into_lwe_ciphertext_list();
            let mut out = PlaintextList::new(0u64, PlaintextCount(len));
            decrypt_lwe_ciphertext_list(&sk.key, &expanded, &mut out);
            for (j, p) in out.iter().enumerate() {
                values.push(if single {
                    p.0.wrapping_sub(sk.bias_for(self.terms, j).unwrap_or(0))
                } else {
                    *p.0
                });
            }
        }
        Ok(values)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 8 * self.words.len());
        out.extend_from_slice(MAGIC);
        out.push(self.scheme.version());
        out.push(0);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.dim.to_le_bytes());
        out.extend_from_slice(&self.terms.to_le_bytes());
        out.extend_from_slice(&[
            self.encoding.value_bits,
            self.encoding.frac_bits,
            self.encoding.message_bits,
            self.scheme.chunk_log2_byte(),
        ]);
        out.extend_from_slice(&[0; 4]);
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let crc = checksum(&out);
        out[CRC_AT..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FheError> {
        Ok(Self::from_serialized(&Serialized::parse(bytes)?))
    }

    pub fn from_serialized(v: &Serialized<'_>) -> Self {
        let words = v.bytes[HEADER_LEN..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        EncryptedVector {
            key_id: v.key_id,
            dim: v.dim,
            terms: v.terms,
            encoding: v.encoding,
            scheme: v.scheme,
            words,
        }
    }

    /// Bytes per value of the serialized form.
    pub fn bytes_per_value(&self) -> f64 {
        (HEADER_LEN + 8 * self.words.len()) as f64 / self.dim as f64
    }
}

/// CRC-32 of a serialized vector, its own field excluded.
fn checksum(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..CRC_AT]);
    h.update(&bytes[HEADER_LEN..]);
    h.finalize()
}

/// What identifies one ciphertext: its first two mask words. The mask of a compact public-key
/// encryption is fresh randomness, so two encryptions share it with probability 2^-128; a copy
/// (or a copy with altered bodies) shares it.
pub type Fingerprint = [u8; 16];

/// A serialized vector whose header, length and checksum were checked.
pub struct Serialized<'a> {
    bytes: &'a [u8],
    pub key_id: KeyId,
    pub dim: u32,
    pub terms: u64,
    pub encoding: Encoding,
    pub scheme: Scheme,
}

impl<'a> Serialized<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FheError> {
        let (key_id, dim, terms, encoding, scheme) = parse_header(bytes)?;
        Ok(Serialized {
            bytes,
            key_id,
            dim,
            terms,
            encoding,
            scheme,
        })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        // dim >= 1, so there is at least one 2,048-word mask.
        self.bytes[HEADER_LEN..HEADER_LEN + 16].try_into().unwrap()
    }
}

/// The parts of a checked header.
pub type Header = (KeyId, u32, u64, Encoding, Scheme);

/// Checks the header, the length and the checksum; returns (key_id, dim, terms, encoding,
/// scheme).
pub fn parse_header(bytes: &[u8]) -> Result<Header, FheError> {
    if bytes.len() < HEADER_LEN || &bytes[..2] != MAGIC {
        return Err(FheError::Malformed("not an encrypted vector".into()));
    }
    let scheme = match (bytes[2], bytes[35]) {
        (1, 0) => Scheme::Difference,
        (2, log2) if log2 < 32 && Scheme::valid_chunk(1usize << log2) => {
            Scheme::Single { chunk: 1 << log2 }
        }
        (1 | 2, _) => return Err(FheError::Malformed(
            "the chunk size of an encrypted vector must be 0 in version 1 and 6 to 11 in version 2"
                .into(),
        )),
        (v, _) => {
            return Err(FheError::Malformed(format!(
                "unknown encrypted vector version {v}"
            )))
        }
    };
    if bytes[3] != 0 {
        return Err(FheError::Malformed(
            "reserved header bytes of an encrypted vector must be zero".into(),
        ));
    }
    let key_id: KeyId = bytes[4..20].try_into().unwrap();
    let dim = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    let terms = u64::from_le_bytes(bytes[24..32].try_into().unwrap());
    let encoding = Encoding {
        value_bits: bytes[32],
        frac_bits: bytes[33],
        message_bits: bytes[34],
    };
    if dim == 0 {
        return Err(FheError::Malformed(
            "an encrypted vector holds at least one value".into(),
        ));
    }
    if terms == 0 {
        return Err(FheError::Malformed(
            "an encrypted vector sums at least one update (terms = 0)".into(),
        ));
    }
    let expected = HEADER_LEN + 8 * word_count(dim as usize, scheme.chunk());
    if bytes.len() != expected {
        return Err(FheError::Malformed(format!(
            "an encrypted vector of {dim} values must be {expected} bytes, not {}",
            bytes.len()
        )));
    }
    encoding.check(1)?;
    if u32::from_le_bytes(bytes[CRC_AT..HEADER_LEN].try_into().unwrap()) != checksum(bytes) {
        return Err(FheError::Malformed(
            "checksum mismatch: the value was damaged".into(),
        ));
    }
    // More terms than the encoding sums without error: such a vector cannot decrypt right.
    encoding.check(terms)?;
    Ok((key_id, dim, terms, encoding, scheme))
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
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
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
                Some(a) => a
                    .add_serialized(&Serialized::parse(&bytes).unwrap())
                    .unwrap(),
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
        for at in [4, 30, HEADER_LEN, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1;
            assert!(
                matches!(
                    EncryptedVector::from_bytes(&damaged),
                    Err(FheError::Malformed(_))
                ),
                "flip at {at}"
            );
        }
        // A sum beyond the encoding's budget is refused rather than decoded wrong.
        let mut many = EncryptedVector::from_bytes(&bytes).unwrap();
        many.terms = 1 << 40;
        assert!(matches!(many.decrypt(&sk), Err(FheError::OutOfRange(_))));
        // ... and so is a serialized one claiming that many terms, whatever its checksum.
        assert!(matches!(
            EncryptedVector::from_bytes(&many.to_bytes()),
            Err(FheError::OutOfRange(_))
        ));
        many.terms = 100;
        assert!(EncryptedVector::from_bytes(&many.to_bytes()).is_ok());
        // The headroom bounds terms too (for_sums(16, 4, 100): 7 bits, 128 values), well below
        // where the noise would (attacker round 2 passed 6,000,000 terms with 10 bits).
        many.terms = 128;
        assert!(EncryptedVector::from_bytes(&many.to_bytes()).is_ok());
        many.terms = 129;
        assert!(matches!(
            EncryptedVector::from_bytes(&many.to_bytes()),
            Err(FheError::OutOfRange(_))
        ));
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
            acc.add_serialized(&Serialized::parse(bytes).unwrap())
                .unwrap();
        }
        eprintln!("sum 1000 vectors: {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let out = acc.decrypt(&sk).unwrap();
        eprintln!("decrypt: {:?}", t.elapsed());
        assert_eq!(out, v.iter().map(|x| x * 1000.0).collect::<Vec<_>>());
    }
}

/// Measures the noise the analysis in `params` assumes (run with --nocapture to see it): fresh
/// encryptions, sums of many (the growth must be sqrt(N): a noise term fixed by the key would
/// grow by N), and secret-key LWE encryption under the same key for the trade-off in docs/fhe.md.
#[cfg(test)]
mod noise {
    use super::*;
    use crate::keys::generate;
    use crate::params::fresh_noise_log2;

    /// log2 of the standard deviation of the raw noise of `v`, decrypted as plaintext 0.
    fn noise_log2(sk: &SecretKey, v: &EncryptedVector) -> f64 {
        let dim = v.dim as usize;
        let list = LweCompactCiphertextList::from_container(
            v.words.clone(),
            LweDimension(LWE_DIMENSION).to_lwe_size(),
            LweCiphertextCount(dim),
            modulus(),
        );
        let mut out = PlaintextList::new(0u64, PlaintextCount(dim));
        decrypt_lwe_ciphertext_list(&sk.key, &list.expand_into_lwe_ciphertext_list(), &mut out);
        let var = out
            .iter()
            .map(|p| (*p.0 as i64 as f64).powi(2))
            .sum::<f64>()
            / dim as f64;
        0.5 * var.log2()
    }

    /// One compact public-key encryption per chunk, as a proven update's (without the proof).
    fn encrypt_single(pk: &crate::keys::PublicKey, dim: usize, chunk: usize) -> EncryptedVector {
        let mut boxed = new_seeder();
        let seeder = boxed.as_mut();
        let mut gen =
            EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder);
        let mut words = vec![0u64; word_count(dim, chunk)];
        for (c, start) in (0..dim).step_by(chunk).enumerate() {
            let len = chunk.min(dim - start);
            let mut list = LweCompactCiphertextList::new(
                0u64,
                LweDimension(LWE_DIMENSION).to_lwe_size(),
                LweCiphertextCount(len),
                modulus(),
            );
            encrypt_lwe_compact_ciphertext_list_with_compact_public_key(
                &pk.key,
                &mut list,
                &PlaintextList::new(0u64, PlaintextCount(len)),
                noise(),
                noise(),
                gen.noise_generator_mut(),
            );
            put_chunk(&mut words, dim, chunk, c, list.as_ref());
        }
        let enc = Encoding::for_sums(8, 0, 1000).unwrap();
        EncryptedVector::single(pk.key_id, dim as u32, enc, chunk as u32, words)
    }

    fn rms_log2(words: &[u64]) -> f64 {
        let var = words
            .iter()
            .map(|w| (*w as i64 as f64).powi(2))
            .sum::<f64>()
            / words.len() as f64;
        0.5 * var.log2()
    }

    /// Sums of single encryptions (proven updates) carry the key's bias T·μ_j; with it removed
    /// the noise is zero-mean and grows as sqrt(T), below the difference scheme's that the
    /// headroom table assumes (so the table stays true). At 64 and 2,048 values per mask.
    #[test]
    fn the_bias_of_single_encryptions_is_removed_exactly() {
        let (sk, pk) = generate();
        let n = 300;
        for (dim, chunk) in [(200, 64), (2048, 2048)] {
            let mut sum = encrypt_single(&pk, dim, chunk);
            for _ in 1..n {
                sum.add_assign(&encrypt_single(&pk, dim, chunk)).unwrap();
            }
            let corrected = rms_log2(&sum.plaintext_words(&sk).unwrap());
            // Read as a difference sum, whose words are not corrected.
            let mut uncorrected = sum.clone();
            uncorrected.scheme = Scheme::Difference;
            let raw = if chunk == LWE_DIMENSION {
                rms_log2(&uncorrected.plaintext_words(&sk).unwrap())
            } else {
                f64::NAN
            };
            // σ²(3n/4 + 1) per encryption: r's variance 1/4 on n terms of e_pk, e1 on n/2, e2.
            let b = crate::params::NOISE_BOUND_LOG2 as f64;
            let var = ((2f64).powf(2.0 * b + 1.0) + 1.0) / 6.0;
            let model =
                0.5 * (var * (0.75 * LWE_DIMENSION as f64 + 1.0)).log2() + 0.5 * (n as f64).log2();
            eprintln!("single encryptions, chunk {chunk}: sum of {n} corrected 2^{corrected:.2} (model 2^{model:.2}), uncorrected 2^{raw:.2}");
            // One key's sum: measured 2^25.39 to 2^26.14 over ten keys (model 2^25.61), and
            // 2^26.39 for one key in a later run (the spread is the key's own: its secret and
            // public noise): the model is checked to within a factor 2 (one bit), the bound
            // that decryption relies on by the next line, against this key's fresh noise.
            assert!((corrected - model).abs() < 1.0, "{corrected} vs {model}");
            assert!(corrected < fresh_noise_log2() + 0.5 * (n as f64).log2() + 0.25);
            if chunk == LWE_DIMENSION {
                assert!(raw > corrected + 1.0, "the bias is there to remove: {raw}");
            }
        }
    }

    #[test]
    fn noise_matches_the_analysis_and_sums_grow_as_sqrt_n() {
        let (sk, pk) = generate();
        let enc = Encoding::for_sums(8, 0, 1000).unwrap();
        let zeros = vec![0.0; 4096];
        let fresh = EncryptedVector::encrypt(&pk, &zeros, enc).unwrap();
        let measured = noise_log2(&sk, &fresh);
        eprintln!(
            "fresh encryption noise: measured 2^{measured:.2}, analysis 2^{:.2}",
            fresh_noise_log2()
        );
        assert!((measured - fresh_noise_log2()).abs() < 0.5, "{measured}");
        let n = 200;
        let mut sum = fresh;
        for _ in 1..n {
            sum.add_assign(&EncryptedVector::encrypt(&pk, &zeros, enc).unwrap())
                .unwrap();
        }
        let measured = noise_log2(&sk, &sum);
        let model = fresh_noise_log2() + 0.5 * (n as f64).log2();
        eprintln!("noise of a sum of {n}: measured 2^{measured:.2}, analysis 2^{model:.2}");
        assert!((measured - model).abs() < 0.5, "{measured} vs {model}");

        let mut boxed = new_seeder();
        let seeder = boxed.as_mut();
        let mut gen =
            EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder);
        let dim = 4096;
        let mut list = LweCiphertextList::new(
            0u64,
            LweDimension(LWE_DIMENSION).to_lwe_size(),
            LweCiphertextCount(dim),
            modulus(),
        );
        encrypt_lwe_ciphertext_list(
            &sk.key,
            &mut list,
            &PlaintextList::new(0u64, PlaintextCount(dim)),
            noise(),
            &mut gen,
        );
        let mut out = PlaintextList::new(0u64, PlaintextCount(dim));
        decrypt_lwe_ciphertext_list(&sk.key, &list, &mut out);
        let var = out
            .iter()
            .map(|p| (*p.0 as i64 as f64).powi(2))
            .sum::<f64>()
            / dim as f64;
        eprintln!(
            "secret-key encryption noise: measured 2^{:.2}",
            0.5 * var.log2()
        );
    }
}
