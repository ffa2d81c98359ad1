//! What proofs cost (docs/benchmarks.md, "Proven updates"): for each dimension, the time to
//! encrypt an update without proofs (the baseline, same run) and with them, the update's size,
//! and the time to verify it on one core and on every core (the database verifies the chunks of
//! one update on a pool of its own). Decrypts each sum of the two to check they agree.
//!
//!   cargo run --release -p encml-fhe --features zk --example proven_cost -- [DIM ...]
//!
//! Defaults: 1000 10000 100000, 16 value bits, 8 fraction bits, 1,000 terms, 2,048 values per
//! proof. Prints one Markdown table row per dimension.

use encml_fhe::keys::generate;
use encml_fhe::params::Encoding;
use encml_fhe::proven::{encrypt_and_prove, verify, Crs};
use encml_fhe::vector::EncryptedVector;
use std::time::Instant;

const VALUE_BITS: u8 = 16;
const FRAC_BITS: u8 = 8;
const TERMS: u64 = 1000;
const CHUNK: usize = 2048;
const ROUND: i64 = 42;

fn seconds(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn main() {
    let dims: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a dimension"))
        .collect();
    let dims = if dims.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        dims
    };
    let encoding = Encoding::for_sums(VALUE_BITS, FRAC_BITS, TERMS).unwrap();
    let (sk, pk) = generate();
    let mut crs = None;
    let crs_s =
        seconds(|| crs = Some(Crs::generate(VALUE_BITS, encoding.message_bits, CHUNK).unwrap()));
    let crs = crs.unwrap();
    let crs_mb = crs.to_bytes().len() as f64 / 1e6;
    let one_core = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    println!(
        "CRS: {crs_mb:.1} MB, generated in {crs_s:.1} s; {} cores; {CHUNK} values per proof",
        rayon::current_num_threads()
    );
    println!(
        "| d | proofs | encrypt, unproven (s) | encrypt and prove (s) | x unproven | update, unproven (KB) | update, proven (KB) | of it proofs (KB) | verify, 1 core (s) | verify, all cores (s) | updates/min verified (all cores) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for d in dims {
        let values: Vec<f64> = (0..d).map(|i| ((i % 200) as f64 - 100.0) / 8.0).collect();
        let mut plain = None;
        let plain_s =
            seconds(|| plain = Some(EncryptedVector::encrypt(&pk, &values, encoding).unwrap()));
        let plain = plain.unwrap();
        let mut proven = None;
        let prove_s = seconds(|| {
            proven = Some(encrypt_and_prove(&pk, &crs, &values, FRAC_BITS, ROUND).unwrap())
        });
        let proven = proven.unwrap();
        let chunks = d.div_ceil(CHUNK);
        let proof_bytes = proven.len() - plain_words_bytes(d) - 36 - 4 * chunks;
        let mut accepted = None;
        let verify_1 =
            seconds(|| one_core.install(|| accepted = Some(verify(&proven, &pk, &crs, ROUND))));
        let accepted = accepted.unwrap().expect("the proofs verify");
        let verify_all = seconds(|| {
            verify(&proven, &pk, &crs, ROUND).expect("the proofs verify");
        });
        // Both decrypt to the same values: the proven path keeps decryption exact.
        assert_eq!(
            plain.decrypt(&sk).unwrap(),
            accepted.decrypt(&sk).unwrap(),
            "the proven update decrypts to the unproven one's values"
        );
        println!(
            "| {d} | {chunks} | {plain_s:.3} | {prove_s:.1} | {:.0} | {:.0} | {:.0} | {:.1} | {verify_1:.2} | {verify_all:.2} | {:.0} |",
            prove_s / plain_s,
            plain.to_bytes().len() as f64 / 1024.0,
            proven.len() as f64 / 1024.0,
            proof_bytes as f64 / 1024.0,
            60.0 / verify_all,
        );
    }
}

/// Bytes of a proven update's ciphertext words (one 2,048-word mask per chunk, one body per value).
fn plain_words_bytes(d: usize) -> usize {
    8 * (d.div_ceil(CHUNK) * 2048 + d)
}
