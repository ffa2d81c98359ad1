//! Order-revealing encryption: `ore::check`, `OreKey::verify`/`decrypt`, `ore::compare` and
//! `compare_ciphertexts`, and the order-preserving encodings of int8/float8.
//!
//! Checks: a value that decrypts re-encrypts to itself; `compare` is reflexive and
//! antisymmetric on values `check` accepts; on own ciphertexts it is the plaintext order;
//! `encode_i64`/`encode_f64` preserve order and round trip.

use crate::fixtures;
use encml_core::ore::{self, Domain, OreKey, ORE_VALUE_LEN};
use std::cmp::Ordering;

thread_local! {
    static KEY: OreKey = fixtures::ore();
}

const DOMAINS: [Domain; 3] = [Domain::Int8, Domain::Float8, Domain::Timestamptz];

pub fn init() {
    KEY.with(|_| ());
}

fn checked(v: &[u8]) -> bool {
    DOMAINS.iter().any(|&d| ore::check(v, d).is_ok())
}

pub fn run(data: &[u8]) {
    KEY.with(|k| {
        for d in DOMAINS {
            let c = ore::check(data, d);
            if c.is_ok() {
                assert_eq!(data.len(), ORE_VALUE_LEN);
                assert_eq!(data[24], d as u8);
            }
            let v = k.verify(d, data);
            if v.is_ok() {
                assert!(c.is_ok(), "verify accepted what check refuses");
            }
            if let Ok(m) = k.decrypt(d, data) {
                assert!(v.is_ok());
                assert_eq!(
                    &k.encrypt(d, m)[..],
                    data,
                    "decrypted value re-encrypts to itself"
                );
            }
        }

        // Two values from the input: the first 57 bytes (or half) and the rest.
        let cut = if data.len() >= 2 * ORE_VALUE_LEN {
            ORE_VALUE_LEN
        } else {
            data.len() / 2
        };
        let (a, b) = data.split_at(cut);
        assert_eq!(ore::compare(a, a), Ordering::Equal);
        let ab = ore::compare(a, b);
        if checked(a) && checked(b) {
            assert_eq!(ab, ore::compare(b, a).reverse(), "compare is antisymmetric");
        }
        let n = a.len().min(b.len());
        let _ = ore::compare_ciphertexts(&a[..n], &b[..n]);

        // Own ciphertexts compare as their plaintexts.
        if data.len() >= 16 {
            let x = u64::from_le_bytes(data[..8].try_into().unwrap());
            let y = u64::from_le_bytes(data[8..16].try_into().unwrap());
            let d = DOMAINS[data.get(16).copied().unwrap_or(0) as usize % 3];
            let (cx, cy) = (k.encrypt(d, x), k.encrypt(d, y));
            assert_eq!(
                ore::check(&cx, d).map(|h| h.key_version),
                Ok(fixtures::KEY_VERSION)
            );
            assert_eq!(
                ore::compare(&cx, &cy),
                x.cmp(&y),
                "ORE order of {x} and {y}"
            );
            assert_eq!(k.decrypt(d, &cx), Ok(x));

            let (i, j) = (x as i64, y as i64);
            assert_eq!(ore::encode_i64(i).cmp(&ore::encode_i64(j)), i.cmp(&j));
            assert_eq!(ore::decode_i64(ore::encode_i64(i)), i);

            let (f, g) = (f64::from_bits(x), f64::from_bits(y));
            let (ef, eg) = (ore::encode_f64(f), ore::encode_f64(g));
            if let Some(o) = f.partial_cmp(&g) {
                assert_eq!(ef.cmp(&eg), o, "float order of {f:e} and {g:e}");
            }
            let back = ore::decode_f64(ef);
            if f.is_nan() {
                assert!(back.is_nan());
            } else {
                assert_eq!(back, f, "float {f:e} round trips");
            }
            assert_eq!(ore::encode_f64(back), ef);
        }
    });
}
