//! AFL++ entry point of the `master_keys` target (see `encml_fuzz::targets::master_keys`).
fn main() {
    encml_fuzz::targets::master_keys::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::master_keys::run(data));
}
