//! Rough speed of the enc_bytea hot path outside Postgres: `cargo run --release --example seal_speed`.
use encml_core::aead::AeadKey;
use encml_core::nonce::ProcessRng;
fn main() {
    let k = AeadKey::from_root(&[1u8; 32], [2u8; 16], 1);
    let pt = [7u8; 64];
    let mut buf = vec![0u8; 64 + 52];
    let mut rng = ProcessRng::new();
    let n = 2_000_000;
    let t = std::time::Instant::now();
    let mut acc = 0u8;
    for _ in 0..n {
        let mut nonce = [0u8; 12];
        rng.fill(1, &mut nonce).unwrap();
        buf[36..100].copy_from_slice(&pt);
        k.seal_in_place(&nonce, b"", &mut buf);
        acc ^= buf[100];
    }
    let el = t.elapsed();
    println!(
        "{:.1} ns per 64-byte seal with nonce ({acc})",
        el.as_nanos() as f64 / n as f64
    );
}
