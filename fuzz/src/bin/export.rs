//! AFL++ entry point of the `export` target (see `encml_fuzz::targets::export`).
fn main() {
    encml_fuzz::targets::export::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::export::run(data));
}
