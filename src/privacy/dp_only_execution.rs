//! What the executor adds to the planner's checks of DP-only tables (`dp_only`): the rows of a
//! query over one must not come back through anything but its dp aggregates.
//! - Row counts: EXPLAIN ANALYZE (and auto_explain's `log_analyze`) counts each node's rows
//!   exactly ("actual rows", "Rows Removed by Filter"), whatever the aggregates release; a
//!   query over a DP-only table is refused when the executor is asked to count its rows.
//! - Errors: a built-in function can fail on a value in the rows, and its message usually
//!   prints the value (`invalid input syntax for type integer: "<the value>"`). Errors raised
//!   while the query runs keep their SQLSTATE and lose their message, so an error says that
//!   something failed, not what (it still costs the query's charge, taken before any row).
//!
//! - Notices and warnings: they print values as error messages do; none reaches the client
//!   while the query reads its rows.
//!
//! All apply to the roles for which a table is DP-only (not its owner, superusers or privacy
//! admins).

use crate::pg::errors::{raise, raise_full};
use crate::privacy::protected;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, PgTryBuilder};

thread_local! {
    /// The queries under way that ran over a DP-only table, by QueryDesc; an entry goes with
    /// its execution's memory (the query ended or its transaction aborted).
    static DP_ONLY_RUNS: std::cell::RefCell<std::collections::HashSet<usize>> =
        std::cell::RefCell::new(std::collections::HashSet::new());
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_run(query: *mut std::ffi::c_void) {
    DP_ONLY_RUNS.with(|r| r.borrow_mut().remove(&(query as usize)));
}

/// Ends the query (`end`: the rest of ExecutorEnd, from the hook in `crate::hooks`) with client
/// messages held back as while it ran: shutting its nodes down logs too (`trace_sort` reports
/// each sort's memory when it ends).
///
/// # Safety
/// `query` must be the QueryDesc being ended.
pub unsafe fn end(query: *mut pg_sys::QueryDesc, end: impl FnOnce() + std::panic::UnwindSafe) {
    // Decided when it ran (no catalog lookup here: there may be no snapshot to read with).
    let ran = DP_ONLY_RUNS.with(|r| {
        let mut r = r.borrow_mut();
        !r.is_empty() && r.remove(&(query as usize))
    });
    if !ran {
        return end();
    }
    // SAFETY: a backend global read and written by this backend only, put back however the
    // call ends.
    unsafe {
        let client_level = pg_sys::client_min_messages;
        let restore = move || pg_sys::client_min_messages = client_level;
        pg_sys::client_min_messages = client_level.max(pgrx::PgLogLevel::ERROR as i32);
        PgTryBuilder::new(end).finally(restore).execute()
    }
}

/// Whether the plan reads a table that is DP-only for the current role.
unsafe fn reads_dp_only(stmt: *mut pg_sys::PlannedStmt) -> bool {
    // SAFETY: the plan of a started query; catalog lookups by oid.
    unsafe {
        if stmt.is_null() || !crate::pg::nothrow::is_transaction_state() {
            return false;
        }
        let map = protected::map();
        if map.is_empty() {
            return false;
        }
        let role = crate::pg::nothrow::current_user();
        let dp_only =
            crate::pg::nothrow::list_ptrs::<pg_sys::RangeTblEntry>((*stmt).rtable).any(|rte| {
                (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                    && map.contains_key(&(*rte).relid)
                    && !pg_sys::pg_class_ownercheck((*rte).relid, role)
            });
        dp_only && !crate::privacy::dp_only::privileged(role)
    }
}

/// Refuses, at executor start, to count the rows of a query over a DP-only table.
///
/// # Safety
/// `query` must be the QueryDesc being started.
pub unsafe fn refuse_row_counts(query: *mut pg_sys::QueryDesc) {
    // SAFETY: as the caller guarantees.
    unsafe {
        // Any instrumentation counts rows (EXPLAIN ANALYZE's timing does too).
        if (*query).instrument_options != 0 && reads_dp_only((*query).plannedstmt) {
            raise_full(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "EXPLAIN ANALYZE of a query over a DP-only table is not allowed: it counts the rows exactly",
                None,
                Some("Plain EXPLAIN shows the plan without running it.".into()),
            );
        }
    }
}

/// Runs the query (`run`: the rest of ExecutorRun, from the hook in `crate::hooks`); over a
/// DP-only table, with notices held back and error messages withheld.
///
/// # Safety
/// `query` must be the QueryDesc being run.
pub unsafe fn run(query: *mut pg_sys::QueryDesc, run: impl FnOnce() + std::panic::UnwindSafe) {
    // SAFETY: the QueryDesc being run.
    if !unsafe { reads_dp_only((*query).plannedstmt) } {
        return run();
    }
    if DP_ONLY_RUNS.with(|r| r.borrow_mut().insert(query as usize)) {
        // SAFETY: the query's memory lives as long as its execution.
        unsafe {
            crate::pg::guards::on_reset(
                (*(*query).estate).es_query_cxt,
                forget_run,
                query as *mut std::ffi::c_void,
            )
        };
    }
    // Notices and warnings print values too (a text-search cast of an all-blank string quotes
    // it): none reaches the client while the rows are read, parallel workers' included (the
    // leader re-raises them). The level is put back however the run ends.
    // SAFETY: a backend global, read and written by this backend only.
    let client_level = unsafe { pg_sys::client_min_messages };
    let restore = move || unsafe { pg_sys::client_min_messages = client_level };
    unsafe { pg_sys::client_min_messages = client_level.max(pgrx::PgLogLevel::ERROR as i32) };
    PgTryBuilder::new(run)
        .catch_others(|e| {
            restore();
            match e {
                CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => raise(
                    report.sql_error_code(),
                    format!(
                        "a query over a DP-only table failed while reading its rows (SQLSTATE {}); the message is withheld",
                        sqlstate(report.sql_error_code())
                    ),
                ),
                other => other.rethrow(),
            }
        })
        .finally(restore)
        .execute()
}

/// The five-character SQLSTATE of `code`.
fn sqlstate(code: PgSqlErrorCode) -> String {
    let mut n = code as i32;
    (0..5)
        .map(|_| {
            let c = (n & 0x3f) as u8 + b'0';
            n >>= 6;
            c as char
        })
        .collect()
}
