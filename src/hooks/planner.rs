//! The planner hook (preloaded): constant `det_encrypt` calls are folded on Citus databases
//! (`api::det_folding`, so that Citus, whose hook runs after ours, routes the lookup); DP-only
//! tables are checked, and their queries planned, by `privacy::dp_only`; query levels that bound
//! the groups of a privacy unit are rewritten by `privacy::groups_per_unit`.

use crate::privacy;
use pgrx::prelude::*;

static mut PREV_PLANNER: pg_sys::planner_hook_type = None;

/// From `_PG_init` while preloading.
pub fn install() {
    // SAFETY: _PG_init runs once per process, single-threaded, before any hook of ours exists;
    // the previous hook is saved before ours replaces it, and only the hook reads it after.
    unsafe {
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: the planner's arguments, valid for the call; the previous hook saved at install.
    unsafe {
        let folded = crate::api::det_folding::fold(parse);
        // DP-only checks read the statement as written; the groups of each privacy unit are
        // then bounded (a rewrite of the levels that ask for it) before anything plans it.
        let plan = privacy::dp_only::plan(parse, || {
            privacy::groups_per_unit::rewrite(parse);
            match PREV_PLANNER {
                Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| {
                    prev(parse, query_string, cursor_options, bound_params)
                }),
                None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
            }
        });
        if folded {
            crate::api::det_folding::mark_dependencies(plan);
        }
        plan
    }
}
