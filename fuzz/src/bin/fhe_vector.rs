//! AFL++ entry point of the `fhe_vector` target (see `encml_fuzz::targets::fhe_vector`).
fn main() {
    encml_fuzz::targets::fhe_vector::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::fhe_vector::run(data));
}
