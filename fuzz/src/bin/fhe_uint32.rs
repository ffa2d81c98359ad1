//! AFL++ entry point of the `fhe_uint32` target (see `encml_fuzz::targets::fhe_uint32`).
fn main() {
    encml_fuzz::targets::fhe_uint32::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::fhe_uint32::run(data));
}
