//! Order-revealing encryption (`ore_int8`, `ore_float8`, `ore_timestamptz`): the CLWW scheme of
//! Chenette, Lewi, Weis and Wu, "Practical Order-Revealing Encryption with Limited Leakage"
//! (FSE 2016), over AES-256 as the PRF (the `aes` crate), plus HMAC-SHA256 (the `hmac` crate)
//! over the whole value so tampering is detected when decrypting.
//!
//! A 64-bit message m = b1..b64 (most significant bit first) encrypts to 64 trits
//! u_i = F(k, i, b1..b(i-1)) + b_i mod 3. Two ciphertexts compare by their first differing trit:
//! if u'_i = u_i + 1 mod 3 then m < m'. What a comparison (and anyone holding two ciphertexts)
//! learns beyond the order is the index of the first bit where the plaintexts differ.
//!
//! ```text
//! offset  size  field
//!      0    24  header (magic "EO", version 1, algorithm 3, key id, key version)
//!     24     1  domain: 1 = int8, 2 = float8, 3 = timestamptz
//!     25    16  CLWW ciphertext: 64 trits, 2 bits each, first trit in the top bits of byte 25
//!     41    16  HMAC-SHA256(mac key, bytes 0..41), truncated to 16 bytes
//! ```
//! Sub-keys: 64 bytes derived for purpose 'ore': the first 32 key the PRF, the last 32 the MAC.
//! Integers map to u64 by flipping the sign bit; floats by the IEEE total-order trick with -0.0
//! folded into +0.0 and every NaN into one NaN above +infinity (as Postgres orders float8).

use crate::error::{Error, Result};
use crate::format::{Header, Kind, HEADER_LEN};
use crate::kdf::{derive_subkey, Purpose};
use aes::cipher::{BlockEncrypt, KeyInit as _};
use aes::Aes256;
use hmac::{HmacReset, KeyInit as _, Mac};
use sha2::Sha256;
use std::cmp::Ordering;
use subtle::ConstantTimeEq;

pub const ORE_CT_LEN: usize = 16;
pub const MAC_LEN: usize = 16;
pub const ORE_VALUE_LEN: usize = HEADER_LEN + 1 + ORE_CT_LEN + MAC_LEN;
const CT_AT: usize = HEADER_LEN + 1;
const MAC_AT: usize = CT_AT + ORE_CT_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Domain {
    Int8 = 1,
    Float8 = 2,
    Timestamptz = 3,
}

impl Domain {
    pub fn name(self) -> &'static str {
        match self {
            Domain::Int8 => "ore_int8",
            Domain::Float8 => "ore_float8",
            Domain::Timestamptz => "ore_timestamptz",
        }
    }
}

/// Order-preserving map from i64 to u64.
pub fn encode_i64(x: i64) -> u64 {
    (x as u64) ^ (1 << 63)
}

pub fn decode_i64(u: u64) -> i64 {
    (u ^ (1 << 63)) as i64
}

/// Order-preserving map from f64 to u64 matching Postgres's float8 order: -0.0 = +0.0, and NaN
/// equal to itself and above every other value.
pub fn encode_f64(x: f64) -> u64 {
    let x = if x == 0.0 {
        0.0
    } else if x.is_nan() {
        f64::NAN
    } else {
        x
    };
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

pub fn decode_f64(u: u64) -> f64 {
    if u >> 63 == 1 {
        f64::from_bits(u & !(1 << 63))
    } else {
        f64::from_bits(!u)
    }
}

/// The PRF and MAC keys of one data-key version.
pub struct OreKey {
    prf: Aes256,
    /// Zeroed when dropped (hmac and sha2 with "zeroize").
    mac: HmacReset<Sha256>,
    key_id: [u8; 16],
    key_version: u32,
}

fn trit(ct: &[u8], i: usize) -> u8 {
    (ct[i / 4] >> (6 - 2 * (i % 4))) & 0b11
}

impl OreKey {
    pub fn from_root(root: &[u8; 32], key_id: [u8; 16], key_version: u32) -> Self {
        let sub = derive_subkey::<64>(root, &key_id, key_version, Purpose::Ore);
        OreKey {
            prf: Aes256::new_from_slice(&sub[..32]).expect("32-byte AES key"),
            mac: HmacReset::<Sha256>::new_from_slice(&sub[32..])
                .expect("HMAC takes any key length"),
            key_id,
            key_version,
        }
    }

    /// PRF input for bit `i` (0-based, most significant first) after the prefix of `m`.
    fn prf_block(i: usize, m: u64) -> aes::Block {
        let prefix = if i == 0 { 0 } else { m >> (64 - i) };
        let mut block = aes::Block::default();
        block[0] = i as u8;
        block[8..].copy_from_slice(&prefix.to_be_bytes());
        block
    }

    fn prf_trit(block: &aes::Block) -> u8 {
        (u64::from_be_bytes(block[..8].try_into().expect("8 bytes")) % 3) as u8
    }

    fn tag(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(bytes);
        let full = mac.finalize_reset().into_bytes();
        let mut tag = [0u8; MAC_LEN];
        tag.copy_from_slice(&full[..MAC_LEN]);
        tag
    }

    /// The structure and the MAC (compared in constant time by `subtle`).
    fn check_mac(&self, domain: Domain, value: &[u8]) -> Result<()> {
        let header = check(value, domain)?;
        if header.key_id != self.key_id || header.key_version != self.key_version {
            return Err(Error::AuthenticationFailed);
        }
        let tag = self.tag(&value[..MAC_AT]);
        if bool::from(tag.ct_eq(&value[MAC_AT..])) {
            Ok(())
        } else {
            Err(Error::AuthenticationFailed)
        }
    }

    /// Checks that `value` is this key version's encryption of some message: its structure,
    /// its MAC, and that every trit is the PRF's trit for the preceding bits plus 0 or 1 (what
    /// `decrypt` checks). The MAC alone is not enough: whoever holds the key (any role may
    /// create and export an ORE key of its own) can MAC any trits, including a cycle
    /// (0) < (1) < (2) < (0) that breaks a btree index. Values that pass are exactly the
    /// encryptions `encrypt` makes, whose order is the plaintexts' total order, so every input
    /// path calls this.
    pub fn verify(&self, domain: Domain, value: &[u8]) -> Result<()> {
        self.decrypt(domain, value).map(|_| ())
    }

    pub fn encrypt(&self, domain: Domain, m: u64) -> [u8; ORE_VALUE_LEN] {
        let mut blocks = [aes::Block::default(); 64];
        for (i, b) in blocks.iter_mut().enumerate() {
            *b = Self::prf_block(i, m);
        }
        self.prf.encrypt_blocks(&mut blocks);
        let mut out = [0u8; ORE_VALUE_LEN];
        out[..HEADER_LEN].copy_from_slice(
            &Header::of(Kind::OrderRevealing, self.key_id, self.key_version).encode(),
        );
        out[HEADER_LEN] = domain as u8;
        for (i, b) in blocks.iter().enumerate() {
            let bit = ((m >> (63 - i)) & 1) as u8;
            let u = (Self::prf_trit(b) + bit) % 3;
            out[CT_AT + i / 4] |= u << (6 - 2 * (i % 4));
        }
        let tag = self.tag(&out[..MAC_AT]);
        out[MAC_AT..].copy_from_slice(&tag);
        out
    }

    /// Verifies the MAC, then recovers the message bit by bit.
    pub fn decrypt(&self, domain: Domain, value: &[u8]) -> Result<u64> {
        self.check_mac(domain, value)?;
        let ct = &value[CT_AT..MAC_AT];
        // Bit i needs the PRF of bits 0..i, so the 64 PRF calls are sequential. They are made
        // LOOKAHEAD bits at a time: the PRF blocks of the next LOOKAHEAD positions for every
        // value the bits between could take (2^LOOKAHEAD - 1 blocks), encrypted in one pipelined
        // call, then walked along the bits as they come out. Every input value checks this
        // (types/ore.rs), so it is worth the 4x fewer round trips through the AES latency.
        const LOOKAHEAD: usize = 4;
        let mut blocks = [aes::Block::default(); (1 << LOOKAHEAD) - 1];
        let mut m = 0u64;
        let mut i = 0;
        while i < 64 {
            let known = if i == 0 { 0 } else { m >> (64 - i) };
            for j in 0..LOOKAHEAD {
                for guess in 0..(1u64 << j) {
                    let b = &mut blocks[(1 << j) - 1 + guess as usize];
                    *b = aes::Block::default();
                    b[0] = (i + j) as u8;
                    b[8..].copy_from_slice(&((known << j) | guess).to_be_bytes());
                }
            }
            self.prf.encrypt_blocks(&mut blocks);
            let mut bits = 0usize;
            for j in 0..LOOKAHEAD {
                let block = &blocks[(1 << j) - 1 + bits];
                let bit = (trit(ct, i + j) + 3 - Self::prf_trit(block)) % 3;
                if bit > 1 {
                    return Err(Error::AuthenticationFailed);
                }
                bits = (bits << 1) | bit as usize;
                m |= (bit as u64) << (63 - (i + j));
            }
            i += LOOKAHEAD;
        }
        Ok(m)
    }
}

/// Structural check of an ORE value of `domain` (no key needed): the header, the length, the
/// domain and trits in 0..=2. Only `OreKey::verify` proves the value authentic.
pub fn check(value: &[u8], domain: Domain) -> Result<Header> {
    let header = Header::decode_as(value, Kind::OrderRevealing)?;
    if value.len() != ORE_VALUE_LEN {
        return Err(Error::Malformed("an ORE value is 57 bytes"));
    }
    if value[HEADER_LEN] != domain as u8 {
        return Err(Error::Malformed("an ORE value of another type"));
    }
    // A trit is 0, 1 or 2; the bit pattern 11 (3) never occurs in a real ciphertext.
    if value[CT_AT..MAC_AT]
        .iter()
        .any(|b| (b & (b >> 1) & 0b0101_0101) != 0)
    {
        return Err(Error::Malformed("an ORE trit out of range"));
    }
    Ok(header)
}

/// Compares two CLWW ciphertexts (no key needed).
pub fn compare_ciphertexts(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let diff = x ^ y;
        if diff != 0 {
            // The first differing trit is the highest differing 2-bit group of this byte.
            let shift = 6 - 2 * (diff.leading_zeros() as usize / 2);
            let (u, v) = ((x >> shift) & 0b11, (y >> shift) & 0b11);
            return if v == (u + 1) % 3 {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
    }
    Ordering::Equal
}

/// The total order of ORE values that btree indexes use: by key id, then key version, then the
/// order of the plaintexts. Values under different keys or versions never compare by value, and
/// a range bound under one key and version selects exactly the values under that key and
/// version. Malformed input (never stored: the types check their input) sorts by its bytes.
pub fn compare(a: &[u8], b: &[u8]) -> Ordering {
    if a.len() != ORE_VALUE_LEN || b.len() != ORE_VALUE_LEN {
        return a.cmp(b);
    }
    a[4..24]
        .cmp(&b[4..24])
        .then_with(|| compare_ciphertexts(&a[CT_AT..MAC_AT], &b[CT_AT..MAC_AT]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    fn key(root: u8, version: u32) -> OreKey {
        OreKey::from_root(&[root; 32], [7u8; 16], version)
    }

    fn cmp_enc(k: &OreKey, d: Domain, a: u64, b: u64) -> Ordering {
        compare(&k.encrypt(d, a), &k.encrypt(d, b))
    }

    #[test]
    fn integer_order_is_preserved_for_random_and_edge_pairs() {
        let k = key(1, 1);
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        let edges = [
            i64::MIN,
            i64::MIN + 1,
            -2,
            -1,
            0,
            1,
            2,
            i64::MAX - 1,
            i64::MAX,
        ];
        let mut values: Vec<i64> = edges.to_vec();
        for _ in 0..2000 {
            values.push(rng.next_u64() as i64);
            values.push((rng.next_u64() % 1000) as i64 - 500);
        }
        for (j, &a) in values.iter().enumerate() {
            let b = values[(j * 7 + 3) % values.len()];
            assert_eq!(
                cmp_enc(&k, Domain::Int8, encode_i64(a), encode_i64(b)),
                a.cmp(&b),
                "{a} vs {b}"
            );
        }
        for &a in &edges {
            for &b in &edges {
                assert_eq!(
                    cmp_enc(&k, Domain::Int8, encode_i64(a), encode_i64(b)),
                    a.cmp(&b)
                );
            }
        }
    }

    fn pg_float_cmp(a: f64, b: f64) -> Ordering {
        match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => a.partial_cmp(&b).expect("not NaN"),
        }
    }

    #[test]
    fn float_order_matches_postgres_including_zeroes_infinities_and_nan() {
        let k = key(1, 1);
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mut values = vec![
            f64::NEG_INFINITY,
            f64::MIN,
            -1.5,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            1e-300,
            1.0,
            1.5,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        for _ in 0..2000 {
            values.push(f64::from_bits(rng.next_u64()));
            values.push((rng.next_u64() % 2000) as f64 / 7.0 - 140.0);
        }
        for (j, &a) in values.iter().enumerate() {
            for &b in [values[(j * 13 + 1) % values.len()], values[j % 14]].iter() {
                assert_eq!(
                    cmp_enc(&k, Domain::Float8, encode_f64(a), encode_f64(b)),
                    pg_float_cmp(a, b),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn decrypt_round_trips_and_detects_tampering() {
        let k = key(3, 2);
        for x in [i64::MIN, -1, 0, 1, 1_700_000_000_000_000, i64::MAX] {
            let v = k.encrypt(Domain::Timestamptz, encode_i64(x));
            assert_eq!(decode_i64(k.decrypt(Domain::Timestamptz, &v).unwrap()), x);
        }
        for x in [-0.0f64, 0.0, -2.5, f64::INFINITY, f64::NEG_INFINITY, 3.25] {
            let v = k.encrypt(Domain::Float8, encode_f64(x));
            let back = decode_f64(k.decrypt(Domain::Float8, &v).unwrap());
            assert_eq!(back, if x == 0.0 { 0.0 } else { x });
        }
        assert!(decode_f64(
            k.decrypt(
                Domain::Float8,
                &k.encrypt(Domain::Float8, encode_f64(f64::NAN))
            )
            .unwrap()
        )
        .is_nan());
        let v = k.encrypt(Domain::Int8, encode_i64(12345));
        for i in 0..v.len() {
            let mut t = v;
            t[i] ^= 0x04;
            assert!(k.decrypt(Domain::Int8, &t).is_err(), "flip at {i}");
        }
        assert!(k.decrypt(Domain::Float8, &v).is_err(), "domain is checked");
        assert!(key(3, 1).decrypt(Domain::Int8, &v).is_err());
        assert!(key(4, 2).decrypt(Domain::Int8, &v).is_err());
        assert!(k.decrypt(Domain::Int8, &v[..40]).is_err());
    }

    #[test]
    fn verify_accepts_only_values_the_key_made_and_check_refuses_trits_of_three() {
        let k = key(5, 1);
        let v = k.encrypt(Domain::Int8, encode_i64(-77));
        assert!(k.verify(Domain::Int8, &v).is_ok());
        // Every other first trit: a trit of 3 fails the structure check, the two valid ones
        // (one of which forms a comparison cycle with the real value) fail the MAC.
        for t in 0..4u8 {
            let mut f = v;
            f[CT_AT] = (f[CT_AT] & 0x3f) | (t << 6);
            if f == v {
                continue;
            }
            assert!(k.verify(Domain::Int8, &f).is_err(), "trit {t}");
            assert_eq!(check(&f, Domain::Int8).is_err(), t == 3, "trit {t}");
        }
        // The key holder MACs a forged first trit itself: the MAC verifies, the value is still
        // refused. Either the trit is not the PRF's plus 0 or 1, or it flips the first bit and
        // the later trits no longer follow the PRF of the new prefix. Three values with first
        // trits 0, 1, 2 would compare in a cycle; at most the real one passes.
        for t in 0..3u8 {
            let mut f = v;
            f[CT_AT] = (f[CT_AT] & 0x3f) | (t << 6);
            if f == v {
                continue;
            }
            let tag = k.tag(&f[..MAC_AT]);
            f[MAC_AT..].copy_from_slice(&tag);
            assert!(k.check_mac(Domain::Int8, &f).is_ok());
            assert!(k.verify(Domain::Int8, &f).is_err(), "trit {t}");
        }
        // Every value encrypt makes passes.
        for x in [i64::MIN, -1, 0, 1, i64::MAX] {
            assert!(k
                .verify(Domain::Int8, &k.encrypt(Domain::Int8, encode_i64(x)))
                .is_ok());
        }
        assert!(key(5, 2).verify(Domain::Int8, &v).is_err());
        assert!(key(6, 1).verify(Domain::Int8, &v).is_err());
        assert!(k.verify(Domain::Float8, &v).is_err());
    }

    #[test]
    fn lookahead_decryption_equals_the_bit_by_bit_definition() {
        let k = key(8, 3);
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        for _ in 0..500 {
            let m = rng.next_u64();
            let v = k.encrypt(Domain::Int8, m);
            // The definition (docs/formats.md): one PRF call per bit, in order.
            let ct = &v[CT_AT..MAC_AT];
            let mut naive = 0u64;
            for i in 0..64 {
                let mut block = OreKey::prf_block(i, naive);
                k.prf.encrypt_block(&mut block);
                let bit = (trit(ct, i) + 3 - OreKey::prf_trit(&block)) % 3;
                naive |= (bit as u64) << (63 - i);
            }
            assert_eq!(naive, m);
            assert_eq!(k.decrypt(Domain::Int8, &v).unwrap(), m);
        }
    }

    #[test]
    fn deterministic_and_keyed() {
        let a = key(1, 1).encrypt(Domain::Int8, 99);
        assert_eq!(a, key(1, 1).encrypt(Domain::Int8, 99));
        assert_ne!(
            a[CT_AT..MAC_AT],
            key(2, 1).encrypt(Domain::Int8, 99)[CT_AT..MAC_AT]
        );
    }

    #[test]
    fn different_keys_and_versions_order_by_key_then_version() {
        let (k1, k2) = (
            OreKey::from_root(&[1; 32], [1u8; 16], 1),
            OreKey::from_root(&[1; 32], [2u8; 16], 1),
        );
        let k1v2 = OreKey::from_root(&[1; 32], [1u8; 16], 2);
        // Every value of key 1 sorts before every value of key 2, whatever the plaintexts.
        assert_eq!(
            compare(
                &k1.encrypt(Domain::Int8, u64::MAX),
                &k2.encrypt(Domain::Int8, 0)
            ),
            Ordering::Less
        );
        assert_eq!(
            compare(
                &k1.encrypt(Domain::Int8, u64::MAX),
                &k1v2.encrypt(Domain::Int8, 0)
            ),
            Ordering::Less
        );
        assert_eq!(
            compare(
                &k1v2.encrypt(Domain::Int8, 5),
                &k1v2.encrypt(Domain::Int8, 5)
            ),
            Ordering::Equal
        );
    }

    #[test]
    fn leakage_is_the_first_differing_bit_only() {
        // Sanity check of the construction: trits before the first differing bit are equal, the
        // trit at it differs.
        let k = key(9, 1);
        let (a, b) = (0b1011u64 << 60, 0b1001u64 << 60);
        let (x, y) = (k.encrypt(Domain::Int8, a), k.encrypt(Domain::Int8, b));
        for i in 0..2 {
            assert_eq!(trit(&x[CT_AT..], i), trit(&y[CT_AT..], i));
        }
        assert_ne!(trit(&x[CT_AT..], 2), trit(&y[CT_AT..], 2));
    }
}
