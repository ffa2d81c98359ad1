//! AFL++ entry point of the `json_fields` target (see `encml_fuzz::targets::json_fields`).
fn main() {
    encml_fuzz::targets::json_fields::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::json_fields::run(data));
}
