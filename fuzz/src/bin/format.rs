//! AFL++ entry point of the `format` target (see `encml_fuzz::targets::format`).
fn main() {
    encml_fuzz::targets::format::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::format::run(data));
}
