//! Baseline for `make bench`: tfhe-rs's own `Sum` over N FheUint32 ciphertexts in plain Rust,
//! timed here, with the key set and the same ciphertexts written out for the SQL side
//! (benches/fhe_uint32.sh) to time `encml.fhe_sum` on.
//!
//!   cargo run --release -p encml-fhe --features uint32 --example uint32_sum -- OUT_DIR [N] [RUNS]

use encml_fhe::uint32::generate;
use std::io::Write;
use std::time::Instant;
use tfhe::safe_serialization::safe_deserialize;
use tfhe::{CompressedServerKey, FheUint32};

const LIMIT: u64 = 1 << 30;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = std::path::Path::new(args.get(1).expect("OUT_DIR"));
    let n: u32 = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(64);
    let runs: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(3);
    std::fs::create_dir_all(out).unwrap();
    let (ck, material) = generate();
    // tfhe-rs directly: its own types and Sum, our files' bodies after the 20-byte header.
    let server: CompressedServerKey = safe_deserialize(&material[20..], LIMIT).unwrap();
    tfhe::set_server_key(server.decompress());
    let values: Vec<u32> = (0..n).map(|i| i * 7919 % 100_000).collect();
    let cts: Vec<Vec<u8>> = values.iter().map(|v| ck.encrypt(*v)).collect();
    let fhe: Vec<FheUint32> = cts
        .iter()
        .map(|c| safe_deserialize(&c[20..], LIMIT).unwrap())
        .collect();
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let total: FheUint32 = fhe.iter().sum();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let clear: u32 = tfhe::prelude::FheDecrypt::decrypt(&total, ck.tfhe_key());
        assert_eq!(clear, values.iter().sum::<u32>());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    std::fs::write(out.join("server.key"), &material).unwrap();
    std::fs::write(out.join("client.key"), &*ck.to_bytes()).unwrap();
    let mut f = std::fs::File::create(out.join("values.tsv")).unwrap();
    for (v, c) in values.iter().zip(&cts) {
        writeln!(
            f,
            "{v}\t\\\\x{}",
            c.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
        .unwrap();
    }
    println!("{:.1}", times[times.len() / 2]);
}
