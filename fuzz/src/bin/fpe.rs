//! AFL++ entry point of the `fpe` target (see `encml_fuzz::targets::fpe`).
fn main() {
    encml_fuzz::targets::fpe::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::fpe::run(data));
}
