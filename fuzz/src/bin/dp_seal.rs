//! AFL++ entry point of the `dp_seal` target (see `encml_fuzz::targets::dp_seal`).
fn main() {
    encml_fuzz::targets::dp_seal::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::dp_seal::run(data));
}
