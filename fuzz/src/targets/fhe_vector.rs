//! Homomorphic aggregation (encml-fhe): the encrypted vector `vector::parse_header` /
//! `Serialized::parse` / `EncryptedVector::from_bytes`, the aggregate state
//! `sum::Sum::deserialize` / `add_serialized`, and the key formats `keys::SecretKey::from_bytes`
//! / `PublicKey::from_bytes`.
//!
//! The input is tried as is and with its CRC-32 fixed (the checksum would stop almost every
//! mutation before the rest of the parser). Checks: an accepted vector re-serializes to its
//! bytes and decrypts (under a secret key of its key id) to `dim` values; a sum state
//! re-serializes to one of the same fingerprints and total; adding a vector twice is refused;
//! keys re-serialize to their bytes.

use encml_fhe::keys::{PublicKey, SecretKey};
use encml_fhe::params::LWE_DIMENSION;
use encml_fhe::sum::Sum;
use encml_fhe::vector::{parse_header, EncryptedVector, Scheme, Serialized, HEADER_LEN};
use encml_fhe::FheError;

const CRC_AT: usize = 36;

pub fn init() {}

/// `bytes` with the vector checksum that `parse_header` expects.
pub fn fix_crc(bytes: &mut [u8]) {
    if bytes.len() < HEADER_LEN {
        return;
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..CRC_AT]);
    h.update(&bytes[HEADER_LEN..]);
    let crc = h.finalize();
    bytes[CRC_AT..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
}

/// A secret key (all-zero coefficients but `seed`'s) under `key_id`, in the key file format.
fn secret_key(key_id: &[u8; 16], seed: &[u8]) -> SecretKey {
    let mut b = Vec::with_capacity(24 + 8 * LWE_DIMENSION);
    b.extend_from_slice(b"EKS\x01");
    b.extend_from_slice(key_id);
    b.extend_from_slice(&(LWE_DIMENSION as u32).to_le_bytes());
    for i in 0..LWE_DIMENSION {
        let bit = seed.get(i / 8).map(|x| (x >> (i % 8)) & 1).unwrap_or(0);
        b.extend_from_slice(&(bit as u64).to_le_bytes());
    }
    SecretKey::from_bytes(&b).expect("binary key of the right size")
}

pub fn run(data: &[u8]) {
    vector(data);
    let mut fixed = data.to_vec();
    fix_crc(&mut fixed);
    if fixed != data {
        vector(&fixed);
    }

    sum(data);
    // The sum's vector after the fingerprints, with its checksum fixed.
    if data.len() >= 8 {
        let count = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize;
        if let Some(end) = count.checked_mul(16).and_then(|n| n.checked_add(8)) {
            if end < data.len() {
                let mut fixed = data.to_vec();
                fix_crc(&mut fixed[end..]);
                sum(&fixed);
            }
        }
    }

    keys(data);
}

fn vector(data: &[u8]) {
    let header = parse_header(data);
    let Ok(s) = Serialized::parse(data) else {
        assert!(header.is_err());
        return;
    };
    let (key_id, dim, terms, encoding, scheme) = header.expect("parse succeeded");
    assert_eq!(
        (s.key_id, s.dim, s.terms, s.encoding, s.scheme),
        (key_id, dim, terms, encoding, scheme)
    );
    let v = EncryptedVector::from_bytes(data).expect("a parsed vector converts");
    assert_eq!(v.to_bytes(), data, "a vector re-serializes to its bytes");
    assert_eq!(s.fingerprint(), data[HEADER_LEN..HEADER_LEN + 16]);

    let sk = secret_key(&key_id, &data[HEADER_LEN..]);
    match v.decrypt(&sk) {
        Ok(values) => assert_eq!(values.len(), dim as usize),
        Err(FheError::OutOfRange(_)) => {} // too many terms for the encoding's noise budget
        // A version-2 vector with a version-1 key (no bias of a public key).
        Err(FheError::Mismatch(_)) if matches!(scheme, Scheme::Single { .. }) => {}
        Err(e) => panic!("decrypting a parsed vector: {e:?}"),
    }
    let other = secret_key(&[!key_id[0]; 16], &[]);
    assert!(v.decrypt(&other).is_err());

    // Adding it to itself: a copy is refused, an addition of the vector object works.
    let mut total = Sum::default();
    total
        .add_serialized(data)
        .expect("a parsed vector adds to an empty sum");
    assert_eq!(total.add_serialized(data), Err(FheError::Duplicate));
    let mut w = v.clone();
    w.add_assign(&v).expect("same key, dim and encoding");
    assert_eq!(w.terms, v.terms.saturating_add(v.terms));
    let state = total.serialize();
    let back = Sum::deserialize(&state).expect("own state deserializes");
    assert_eq!(back.inputs(), 1);
    assert_eq!(back.total().map(|t| t.to_bytes()), Some(v.to_bytes()));
}

fn sum(data: &[u8]) {
    let Ok(s) = Sum::deserialize(data) else {
        return;
    };
    let bytes = s.serialize();
    assert_eq!(bytes.len(), data.len());
    let t = Sum::deserialize(&bytes).expect("a serialized sum deserializes");
    assert_eq!(t.inputs(), s.inputs());
    assert_eq!(t.total(), s.total());
    // Merging a state into itself double counts: refused when it has inputs.
    let mut m = Sum::deserialize(data).unwrap();
    let r = m.merge(t);
    assert_eq!(r.is_err(), s.inputs() > 0);
}

fn keys(data: &[u8]) {
    if let Ok(k) = SecretKey::from_bytes(data) {
        assert_eq!(&k.to_bytes()[..], data);
    }
    if let Ok(k) = PublicKey::from_bytes(data) {
        assert_eq!(k.to_bytes(), data);
    }
}
