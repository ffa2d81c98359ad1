//! AFL++ entry point of the `ore` target (see `encml_fuzz::targets::ore`).
fn main() {
    encml_fuzz::targets::ore::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::ore::run(data));
}
