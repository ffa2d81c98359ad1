//! The object-access hook (installed while preloading): the audit log sees BRIN summarization
//! calls, which read a table's rows outside any utility statement (`audit::maintenance`).

use crate::audit;
use pgrx::prelude::*;

static mut PREV_OBJECT_ACCESS: pg_sys::object_access_hook_type = None;

/// From `_PG_init` while preloading.
pub fn install() {
    // SAFETY: _PG_init runs once per process, single-threaded, before any query of this
    // process; PREV_OBJECT_ACCESS is written only here.
    unsafe {
        PREV_OBJECT_ACCESS = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(object_access);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn object_access(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: std::ffi::c_int,
    arg: *mut std::ffi::c_void,
) {
    // SAFETY: the previous hook, saved at install, called with the arguments Postgres gave us
    // inside pg_guard_ffi_boundary, so that its ERROR becomes a Rust panic instead of a longjmp
    // over this frame.
    unsafe {
        if let Some(prev) = PREV_OBJECT_ACCESS {
            pg_sys::ffi::pg_guard_ffi_boundary(|| prev(access, class_id, object_id, sub_id, arg));
        }
    }
    if access == pg_sys::ObjectAccessType::OAT_FUNCTION_EXECUTE {
        audit::maintenance::on_function_execute(object_id);
    }
}
