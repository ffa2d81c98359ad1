//! What the executor adds to the planner's checks of DP-only tables (`dp_only`): the rows of a
//! query over one must not come back through anything but its dp aggregates.
//! - Row counts: EXPLAIN ANALYZE (and auto_explain's `log_analyze`) counts each node's rows
//!   exactly ("actual rows", "Rows Removed by Filter"), whatever the aggregates release; a
//!   query over a DP-only table is refused when the executor is asked to count its rows.
//! - Errors: a built-in function can fail on a value in the rows, and its message usually
//!   prints the value (`invalid input syntax for type integer: "<the value>"`). Errors raised
//!   while the query runs keep their SQLSTATE and lose their message, so an error says that
//!   something failed, not what (it still costs the query's charge, taken before any row).
//! - Notices and warnings: they print values as error messages do; none reaches the client
//!   while the query reads its rows or ends.
//! - Statistics: the scan and tuple counters of every table and index the query opens (the
//!   analyst's own tables joined to the rows, catalogs looked up per row: `pg_stat_xact_*`,
//!   `pg_stat_user_tables`, `pg_statio_*`), function call counts and temporary-file counts
//!   counted exactly what the rows did. The backend counts nothing while such a query starts,
//!   runs and ends (`pgstat_track_counts` and `track_functions` off, parallel workers
//!   included: they copy the leader's settings).
//! - Caches: a catalog entry the rows made the backend load (a text-search configuration
//!   picked by a CASE on the row) stayed cached, and a later lookup by the analyst showed
//!   whether it was (no catalog scan). The backend's catalog caches are reset when such a query
//!   ends, so every entry is loaded again on its next use.
//!
//! All apply to the roles for which a table is DP-only (not its owner, superusers or privacy
//! admins), decided once when the executor starts.

use crate::pg::errors::{raise, raise_full};
use crate::privacy::protected;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode, PgTryBuilder};

thread_local! {
    /// A query over a DP-only table started and the backend state it may have left
    /// (`dp_only_warmup::reset`) was not reset yet: its end did not run (it failed).
    static RESET_PENDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set while an EXPLAIN that shows costs runs (`explain`).
    static EXPLAIN_COSTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The queries under way that ran over a DP-only table, by QueryDesc; an entry goes with
    /// its execution's memory (the query ended or its transaction aborted).
    static DP_ONLY_RUNS: std::cell::RefCell<std::collections::HashSet<usize>> =
        std::cell::RefCell::new(std::collections::HashSet::new());
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_run(query: *mut std::ffi::c_void) {
    DP_ONLY_RUNS.with(|r| r.borrow_mut().remove(&(query as usize)));
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

/// Whether `query` was started over a DP-only table (`start`).
fn is_dp_only_run(query: *mut pg_sys::QueryDesc) -> bool {
    DP_ONLY_RUNS.with(|r| {
        let r = r.borrow();
        !r.is_empty() && r.contains(&(query as usize))
    })
}

/// Runs `f` with the backend's statistics counters off and client messages held back, both put
/// back however `f` ends; with `withhold_errors`, an error keeps its SQLSTATE and loses its
/// message.
fn quietly<R>(withhold_errors: bool, f: impl FnOnce() -> R + std::panic::UnwindSafe) -> R {
    // SAFETY: backend globals, read and written by this backend only (parallel workers copy
    // them when they start).
    unsafe {
        let (counts, functions, client) = (
            pg_sys::pgstat_track_counts,
            pg_sys::pgstat_track_functions,
            pg_sys::client_min_messages,
        );
        let restore = move || {
            pg_sys::pgstat_track_counts = counts;
            pg_sys::pgstat_track_functions = functions;
            pg_sys::client_min_messages = client;
        };
        pg_sys::pgstat_track_counts = false;
        pg_sys::pgstat_track_functions = pg_sys::TrackFunctionsLevel::TRACK_FUNC_OFF as i32;
        // Notices and warnings print values too (a text-search cast of an all-blank string
        // quotes it), parallel workers' included (the leader re-raises them).
        pg_sys::client_min_messages = client.max(pgrx::PgLogLevel::ERROR as i32);
        PgTryBuilder::new(f)
            .catch_others(move |e| {
                restore();
                match e {
                    CaughtError::PostgresError(report) | CaughtError::ErrorReport(report)
                        if withhold_errors =>
                    {
                        raise(
                        report.sql_error_code(),
                        format!(
                            "a query over a DP-only table failed while reading its rows (SQLSTATE {}); the message is withheld",
                            sqlstate(report.sql_error_code())
                        ),
                    )
                    }
                    other => other.rethrow(),
                }
            })
            .finally(restore)
            .execute()
    }
}

/// Runs `f` (the rest of a utility statement) noting whether it is an EXPLAIN that shows the
/// planner's estimates (`COSTS`, on unless turned off).
///
/// # Safety
/// `utility` must be NULL or the statement's parse tree.
pub unsafe fn explain<R>(utility: *mut pg_sys::Node, f: impl FnOnce() -> R) -> R {
    // SAFETY: as the caller guarantees; options are DefElems of the parse tree.
    let costs = unsafe {
        !utility.is_null()
            && (*utility).type_ == pg_sys::NodeTag::T_ExplainStmt
            && crate::pg::nothrow::list_ptrs::<pg_sys::DefElem>(
                (*(utility as *mut pg_sys::ExplainStmt)).options,
            )
            .filter(|d| std::ffi::CStr::from_ptr((**d).defname).to_bytes() == b"costs")
            .last()
            .is_none_or(|d| pg_sys::defGetBoolean(d))
    };
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            EXPLAIN_COSTS.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(EXPLAIN_COSTS.with(|c| c.replace(costs)));
    f()
}

/// Starts the query (`start`: the rest of ExecutorStart, from the hook in `crate::hooks`);
/// over a DP-only table, refuses instrumentation and starts it quietly (relations opened now
/// count nothing), and remembers it for `run` and `end`.
///
/// # Safety
/// `query` must be the QueryDesc being started.
pub unsafe fn start(
    query: *mut pg_sys::QueryDesc,
    eflags: i32,
    start: impl FnOnce() + std::panic::UnwindSafe,
) {
    // SAFETY: as the caller guarantees.
    if !unsafe { reads_dp_only((*query).plannedstmt) } {
        return start();
    }
    // The planner's row estimates come from the table's statistics (ANALYZE reads every row
    // of a table under 30,000 rows: a value's estimate is its exact count) and from the
    // index's actual extremes.
    if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0 && EXPLAIN_COSTS.with(|c| c.get()) {
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "EXPLAIN of a query over a DP-only table may not show the planner's estimates: they come from the table's statistics",
            None,
            Some("EXPLAIN (COSTS OFF) shows the plan.".into()),
        );
    }
    // Serializable transactions take a predicate lock on every row and index page they read,
    // and `pg_locks` shows them to every role (another session of the analyst's: which rows the
    // filter reached) for as long as the transaction lasts.
    // SAFETY: a backend global, read only.
    if unsafe { pg_sys::XactIsoLevel } == pg_sys::XACT_SERIALIZABLE as i32 {
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "a query over a DP-only table may not run in a serializable transaction: its predicate locks show which rows it read",
            None,
            Some("Run it at READ COMMITTED or REPEATABLE READ.".into()),
        );
    }
    // SAFETY: the QueryDesc being started.
    unsafe {
        // Any instrumentation counts rows (EXPLAIN ANALYZE's timing does too).
        if (*query).instrument_options != 0 {
            raise_full(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "EXPLAIN ANALYZE of a query over a DP-only table is not allowed: it counts the rows exactly",
                None,
                Some("Plain EXPLAIN shows the plan without running it.".into()),
            );
        }
    }
    crate::privacy::dp_only_warmup::once();
    // (Starting reads no row: errors keep their messages, a missing privilege's say.)
    quietly(false, start);
    RESET_PENDING.with(|p| p.set(true));
    if DP_ONLY_RUNS.with(|r| r.borrow_mut().insert(query as usize)) {
        // SAFETY: the started query's memory lives as long as its execution.
        unsafe {
            crate::pg::guards::on_reset(
                (*(*query).estate).es_query_cxt,
                forget_run,
                query as *mut std::ffi::c_void,
            )
        };
    }
}

/// Runs the query (`run`: the rest of ExecutorRun, from the hook in `crate::hooks`); over a
/// DP-only table, quietly.
///
/// # Safety
/// `query` must be the QueryDesc being run.
pub unsafe fn run(query: *mut pg_sys::QueryDesc, run: impl FnOnce() + std::panic::UnwindSafe) {
    if is_dp_only_run(query) {
        quietly(true, run)
    } else {
        run()
    }
}

/// Ends the query (`end`: the rest of ExecutorEnd, from the hook in `crate::hooks`); over a
/// DP-only table quietly (shutting its nodes down logs too: `trace_sort` reports each sort's
/// memory), then resets the backend's catalog caches.
///
/// # Safety
/// `query` must be the QueryDesc being ended.
pub unsafe fn end(query: *mut pg_sys::QueryDesc, end: impl FnOnce() + std::panic::UnwindSafe) {
    // (Decided when it started: no catalog lookup here, there may be no snapshot to read with.)
    if !is_dp_only_run(query) {
        return end();
    }
    quietly(true, end);
    RESET_PENDING.with(|p| p.set(false));
    crate::privacy::dp_only_warmup::reset();
}

/// At the start of a statement (from the hooks in `crate::hooks`): resets the backend state
/// that a query over a DP-only table which failed (so never reached `end`) may have left,
/// before anything else runs. A failure after the rows compiled a regex otherwise left it
/// cached for the next statement to time.
pub fn reset_if_pending() {
    if !RESET_PENDING.with(|p| p.get())
        || !crate::pg::nothrow::is_transaction_state()
        // (Not inside such a query: its own end resets.)
        || DP_ONLY_RUNS.with(|r| !r.borrow().is_empty())
    {
        return;
    }
    RESET_PENDING.with(|p| p.set(false));
    crate::privacy::dp_only_warmup::reset();
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
