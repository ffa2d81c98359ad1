//! The client-authentication hook (installed while preloading): every login attempt is counted
//! for the brute-force lockout (`security::auth`) before the previous hook runs, and acted on
//! after it.

use crate::security::auth;
use pgrx::pg_sys::libpq::{self, be::Port};
use pgrx::prelude::*;

static mut PREV_AUTH: libpq::ClientAuthentication_hook_type = None;

/// From `_PG_init` while the postmaster loads shared_preload_libraries.
pub fn install() {
    // SAFETY: called once, from _PG_init in the postmaster, single-threaded and before any
    // backend can run the hook; PREV_AUTH is written only here and read only by the hook.
    unsafe {
        PREV_AUTH = libpq::ClientAuthentication_hook;
        libpq::ClientAuthentication_hook = Some(client_authentication);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn client_authentication(port: *mut Port, status: i32) {
    // SAFETY: Postgres passes the connection's Port (or NULL) and the authentication status.
    let seen = unsafe { auth::observe(port, status) };
    // SAFETY: PREV_AUTH is written once, by install() in the postmaster before any backend
    // exists, and only read afterwards by this single-threaded backend.
    if let Some(prev) = unsafe { PREV_AUTH } {
        // SAFETY: the hook that was installed before ours, called with the arguments Postgres
        // gave us, inside pg_guard_ffi_boundary so that its ERROR or FATAL becomes a Rust panic
        // instead of a longjmp over this frame.
        unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| prev(port, status)) };
    }
    if let Some(seen) = seen {
        auth::act(seen);
    }
}
