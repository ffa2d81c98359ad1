//! AFL++ entry point of the `tensor` target (see `encml_fuzz::targets::tensor`).
fn main() {
    encml_fuzz::targets::tensor::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::tensor::run(data));
}
