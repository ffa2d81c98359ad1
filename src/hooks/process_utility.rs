//! The ProcessUtility hook (installed while preloading): every utility statement passes here.
//! Before it runs: the audit log's maintenance guard sees it, `security::privilege_changes`
//! describes what is worth an event, and DROP ROLE of a role holding the extension's privileges
//! is refused.
//! Around it: EXPLAIN of a query over a DP-only table is checked (`privacy::dp_only_execution`).
//! After it succeeded: DROP OWNED removes the roles' key privileges and the described event is
//! recorded, in the statement's transaction.

use crate::security::privilege_changes::{self, Pending};
use crate::{audit, keys, privacy};
use pgrx::is_a;
use pgrx::prelude::*;

static mut PREV_UTILITY: pg_sys::ProcessUtility_hook_type = None;

/// From `_PG_init` while preloading.
pub fn install() {
    // SAFETY: _PG_init runs once per process before any query, single-threaded.
    unsafe {
        PREV_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: pstmt is the statement Postgres is about to run (NULL-checked), valid for the call.
    let stmt = unsafe {
        if pstmt.is_null() {
            std::ptr::null_mut()
        } else {
            (*pstmt).utilityStmt
        }
    };
    let pending = if stmt.is_null() {
        None
    } else {
        // SAFETY: the statement's own parse tree, before it runs, valid for the call.
        unsafe {
            audit::maintenance::before_utility(stmt);
            crate::security::pooled_session::before_utility(stmt);
            privilege_changes::describe(stmt)
        }
    };
    // Roles holding the extension's privileges are not dropped; DROP OWNED removes them
    // (`keys::role_privileges`).
    // SAFETY: the statement's own parse tree, before it runs; nodes cast after is_a.
    let dropped_owned = unsafe {
        if !stmt.is_null() && is_a(stmt, pg_sys::NodeTag::T_DropRoleStmt) {
            let s = stmt as *mut pg_sys::DropRoleStmt;
            keys::role_privileges::refuse_drop(&privilege_changes::role_oids((*s).roles));
        }
        (!stmt.is_null() && is_a(stmt, pg_sys::NodeTag::T_DropOwnedStmt))
            .then(|| privilege_changes::role_oids((*(stmt as *mut pg_sys::DropOwnedStmt)).roles))
    };
    let _copy = privilege_changes::copy_scope(matches!(pending, Some(Pending::Copy { .. })));
    // (COPY runs with a snapshot here, and is parsed without one.)
    crate::security::transport::after_parse();
    // SAFETY: the arguments Postgres passed, handed on unchanged; the previous hook was saved at
    // install, and an ERROR in it or in standard_ProcessUtility unwinds through the FFI guard.
    unsafe {
        privacy::dp_only_execution::explain(stmt, || match PREV_UTILITY {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| {
                prev(pstmt, query, read_only_tree, context, params, env, dest, qc)
            }),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query,
                read_only_tree,
                context,
                params,
                env,
                dest,
                qc,
            ),
        })
    }
    if let Some(roles) = dropped_owned {
        keys::role_privileges::drop_owned(&roles);
    }
    if let Some(p) = pending {
        let rows = if qc.is_null() {
            0
        } else {
            // SAFETY: the statement's completion record (non-NULL), filled in as it ran.
            unsafe { (*qc).nprocessed }
        };
        privilege_changes::record(p, rows);
    }
}
