//! AFL++ entry point of the `wrap` target (see `encml_fuzz::targets::wrap`).
fn main() {
    encml_fuzz::targets::wrap::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::wrap::run(data));
}
