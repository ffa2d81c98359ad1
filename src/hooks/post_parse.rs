//! The post-parse-analysis hook (preloaded): resets a pending DP-only state, lets read
//! auditing fingerprint the statement, and looks at the session's transport once
//! (`privacy::dp_only_execution`, `audit::reads`, `security::transport`).

use crate::{audit, privacy, security};
use pgrx::prelude::*;

static mut PREV_POST_PARSE: pg_sys::post_parse_analyze_hook_type = None;

/// From `_PG_init` while preloading.
pub fn install() {
    // SAFETY: _PG_init runs once per process, single-threaded, before any hook of ours exists;
    // the previous hook is saved before ours replaces it, and only the hook reads it after.
    unsafe {
        PREV_POST_PARSE = pg_sys::post_parse_analyze_hook;
        pg_sys::post_parse_analyze_hook = Some(post_parse);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn post_parse(
    pstate: *mut pg_sys::ParseState,
    query: *mut pg_sys::Query,
    jstate: *mut pg_sys::JumbleState,
) {
    // SAFETY: the parser's arguments, valid for the call; the previous hook saved at install.
    unsafe {
        if let Some(prev) = PREV_POST_PARSE {
            pg_sys::ffi::pg_guard_ffi_boundary(|| prev(pstate, query, jstate));
        }
        privacy::dp_only_execution::reset_if_pending();
        audit::reads::after_parse(pstate, query);
        security::transport::after_parse();
    }
}
