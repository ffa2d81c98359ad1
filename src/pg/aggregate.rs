//! Support for hand-written aggregates with an `internal` state.

use crate::pg::errors::raise;
use pgrx::{pg_sys, PgSqlErrorCode};

/// The aggregate memory context (where an `internal` state must live), refusing calls from
/// outside an aggregate — a support function called directly with a forged `internal` would
/// crash — and, unless `window_ok`, use as a window function.
pub unsafe fn context(
    fcinfo: pg_sys::FunctionCallInfo,
    what: &str,
    window_ok: bool,
) -> pg_sys::MemoryContext {
    let mut ctx: pg_sys::MemoryContext = std::ptr::null_mut();
    match unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut ctx) } as u32 {
        0 => raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{what} support functions can only be called by their aggregates"),
        ),
        pg_sys::AGG_CONTEXT_WINDOW if !window_ok => raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{what} cannot be used as window functions"),
        ),
        _ => ctx,
    }
}
