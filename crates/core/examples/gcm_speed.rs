//! Throughput of the AES-256-GCM used by enc_bytea and tensors on this machine (no Postgres):
//! `cargo run --release -p encml-core --example gcm_speed [MiB]`.
use encml_core::aead::AeadKey;
use std::time::Instant;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let key = AeadKey::from_root(&[1; 32], [2; 16], 1);
    let mut buf = vec![0u8; encml_core::format::OVERHEAD + (mib << 20)];
    for _ in 0..3 {
        let t = Instant::now();
        key.seal_in_place(&[0; 12], b"", &mut buf);
        let s = t.elapsed().as_secs_f64();
        println!(
            "seal {mib} MiB: {:.1} ms, {:.0} MB/s",
            s * 1e3,
            (mib << 20) as f64 / s / 1e6
        );
    }
}
