//! The table of docs/fhe.md "Differentially private round sums": the noise's standard deviation
//! (in values) for FHE round sums at epsilon 1, delta 10^-6, frac_bits 8, by value bits and
//! dimension, with the tail bound that the round's message bits must leave room for.
//!
//!   cargo run --release -p encml-dp --example round_sum_sigma

use encml_dp::mechanism::Loss;
use encml_dp::vector_noise::{tail_bound, vector_sigma};

fn main() {
    let loss = Loss {
        epsilon: 1.0,
        delta: Some(1e-6),
    };
    let frac_bits = 8;
    println!("| value_bits (B in values) | d = 1,000 | d = 10,000 | d = 100,000 |");
    println!("|---|---|---|---|");
    for value_bits in [8u32, 12, 16] {
        let bound = (1u64 << (value_bits - 1)) as f64;
        let cells: Vec<String> = [1_000usize, 10_000, 100_000]
            .iter()
            .map(|d| {
                let sigma = vector_sigma(bound * (*d as f64).sqrt(), loss).unwrap();
                format!(
                    "{:.0} (tail 2^{:.1})",
                    sigma / (1u64 << frac_bits) as f64,
                    tail_bound(sigma, *d).log2()
                )
            })
            .collect();
        println!(
            "| {value_bits} ({}) | {} |",
            bound / (1u64 << frac_bits) as f64,
            cells.join(" | ")
        );
    }
    let ratio = vector_sigma(1.0, loss).unwrap();
    println!("sigma / sensitivity at epsilon 1, delta 1e-6: {ratio:.3}");
}
