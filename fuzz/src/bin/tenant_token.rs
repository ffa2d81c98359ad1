//! AFL++ entry point of the `tenant_token` target (see `encml_fuzz::targets::tenant_token`).
fn main() {
    encml_fuzz::targets::tenant_token::init();
    afl::fuzz!(|data: &[u8]| encml_fuzz::targets::tenant_token::run(data));
}
