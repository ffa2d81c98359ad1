//! AFL++ entry point of the `dp_state` target (see `encml_fuzz::targets::dp_state`).
fn main() {
    encml_fuzz::targets::dp_state::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::dp_state::run(data));
}
