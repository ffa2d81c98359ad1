//! AFL++ entry point of the `stream` target (see `encml_fuzz::targets::stream`).
fn main() {
    encml_fuzz::targets::stream::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::stream::run(data));
}
