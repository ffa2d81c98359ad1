//! Fuzz targets for the parsers of untrusted bytes in encml-core, encml-dp and encml-fhe.
//!
//! Each module of [`targets`] has `init()` (builds the fixed keys once, before AFL++'s fork
//! server starts) and `run(data)`, which feeds `data` to one family of parsers and checks what
//! they promise: an error for bad input, never a panic, and the properties noted in each module
//! (round trips with the encoders, canonical forms, consistency between related functions). A
//! panic in `run` is a finding. The same `run` serves the AFL++ binaries (src/bin, built by
//! `cargo afl build --features afl`) and the plain corpus replay (`cargo test`, tests/replay.rs).
//!
//! The keys are fixed (`fixtures`), so the seed corpus (examples/gen_corpus.rs) made with them
//! reaches the authenticated paths.

pub mod fixtures;
pub mod targets;

/// Splits `data` at the first `sep` (the rest excludes it); all of `data` and an empty rest if
/// there is none.
pub fn split_at_byte(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The first `N` bytes as an array (zero-padded when shorter) and the rest.
pub fn take<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    let mut out = [0u8; N];
    let n = data.len().min(N);
    out[..n].copy_from_slice(&data[..n]);
    (out, &data[n..])
}
