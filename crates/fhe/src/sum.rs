//! The running sum of an aggregation: an encrypted vector plus the fingerprints of what was
//! added, so that the same ciphertext is never counted twice. A repeated ciphertext would skew
//! the sum and add its noise linearly instead of as a square root, which can make the sum
//! decrypt wrong; distinct encryptions of the same values are fine.
//!
//! Serialized state (for parallel aggregation), version 1: `"ES" | 1 | 0 | count u32 |
//! count × fingerprint[16] | encrypted vector (vector format)`.

use crate::vector::{EncryptedVector, Fingerprint, Serialized};
use crate::FheError;
use std::collections::HashSet;

#[derive(Default)]
pub struct Sum {
    total: Option<EncryptedVector>,
    seen: HashSet<Fingerprint>,
}

const MAGIC: &[u8; 2] = b"ES";
const VERSION: u8 = 1;

impl Sum {
    /// Adds one serialized encrypted vector (a client update or an earlier sum).
    pub fn add_serialized(&mut self, bytes: &[u8]) -> Result<(), FheError> {
        let v = Serialized::parse(bytes)?;
        let fp = v.fingerprint();
        if self.seen.contains(&fp) {
            return Err(FheError::Duplicate);
        }
        match &mut self.total {
            None => self.total = Some(EncryptedVector::from_serialized(&v)),
            Some(t) => t.add_serialized(&v)?,
        }
        self.seen.insert(fp);
        Ok(())
    }

    /// Merges another partial sum (parallel aggregation).
    pub fn merge(&mut self, other: Sum) -> Result<(), FheError> {
        if other.seen.iter().any(|fp| self.seen.contains(fp)) {
            return Err(FheError::Duplicate);
        }
        match (&mut self.total, other.total) {
            (_, None) => {}
            (None, Some(t)) => self.total = Some(t),
            (Some(a), Some(b)) => a.add_assign(&b)?,
        }
        self.seen.extend(other.seen);
        Ok(())
    }

    pub fn total(&self) -> Option<&EncryptedVector> {
        self.total.as_ref()
    }

    /// How many vectors were added (each counted once, sums by their own fingerprint).
    pub fn inputs(&self) -> usize {
        self.seen.len()
    }

    pub fn serialize(&self) -> Vec<u8> {
        let vector = self
            .total
            .as_ref()
            .map(|t| t.to_bytes())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(8 + 16 * self.seen.len() + vector.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, 0]);
        out.extend_from_slice(&(self.seen.len() as u32).to_le_bytes());
        for fp in &self.seen {
            out.extend_from_slice(fp);
        }
        out.extend_from_slice(&vector);
        out
    }

    pub fn deserialize(bytes: &[u8]) -> Result<Self, FheError> {
        let bad = || FheError::Malformed("not an aggregation state".into());
        if bytes.len() < 8 || &bytes[..2] != MAGIC || bytes[2] != VERSION || bytes[3] != 0 {
            return Err(bad());
        }
        let count = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        let end = count
            .checked_mul(16)
            .and_then(|n| n.checked_add(8))
            .ok_or_else(bad)?;
        if bytes.len() < end {
            return Err(bad());
        }
        let seen: HashSet<Fingerprint> = bytes[8..end]
            .chunks_exact(16)
            .map(|c| c.try_into().unwrap())
            .collect();
        let total = if bytes.len() == end {
            None
        } else {
            Some(EncryptedVector::from_bytes(&bytes[end..])?)
        };
        if seen.len() != count || (count == 0) != total.is_none() {
            return Err(bad());
        }
        Ok(Sum { total, seen })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;
    use crate::params::Encoding;

    #[test]
    fn repeated_ciphertexts_are_refused_in_one_state_and_across_merged_states() {
        let (sk, pk) = generate();
        let enc = Encoding::for_sums(16, 4, 100).unwrap();
        let a = EncryptedVector::encrypt(&pk, &[1.0, -2.0], enc)
            .unwrap()
            .to_bytes();
        let b = EncryptedVector::encrypt(&pk, &[1.0, -2.0], enc)
            .unwrap()
            .to_bytes();
        let mut s = Sum::default();
        s.add_serialized(&a).unwrap();
        assert_eq!(s.add_serialized(&a), Err(FheError::Duplicate));
        s.add_serialized(&b).unwrap(); // same values, another encryption: fine
        let mut other = Sum::default();
        other.add_serialized(&a).unwrap();
        assert_eq!(
            Sum::deserialize(&s.serialize()).unwrap().merge(other),
            Err(FheError::Duplicate)
        );
        let s = Sum::deserialize(&s.serialize()).unwrap();
        assert_eq!(s.inputs(), 2);
        assert_eq!(s.total().unwrap().decrypt(&sk).unwrap(), vec![2.0, -4.0]);
    }

    #[test]
    fn merged_partial_sums_equal_one_sum() {
        let (sk, pk) = generate();
        let enc = Encoding::for_sums(16, 4, 100).unwrap();
        let cts: Vec<Vec<u8>> = (0..6)
            .map(|i| {
                EncryptedVector::encrypt(&pk, &[i as f64, 0.5], enc)
                    .unwrap()
                    .to_bytes()
            })
            .collect();
        let (mut left, mut right) = (Sum::default(), Sum::default());
        for (i, c) in cts.iter().enumerate() {
            if i % 2 == 0 {
                left.add_serialized(c)
            } else {
                right.add_serialized(c)
            }
            .unwrap();
        }
        let mut merged = Sum::deserialize(&left.serialize()).unwrap();
        merged
            .merge(Sum::deserialize(&right.serialize()).unwrap())
            .unwrap();
        merged.merge(Sum::default()).unwrap();
        assert_eq!(merged.total().unwrap().terms, 6);
        assert_eq!(
            merged.total().unwrap().decrypt(&sk).unwrap(),
            vec![15.0, 3.0]
        );
        assert!(Sum::deserialize(&Sum::default().serialize())
            .unwrap()
            .total()
            .is_none());
        assert!(Sum::deserialize(b"ES\x01\x00\x05\x00\x00\x00").is_err());
    }
}
