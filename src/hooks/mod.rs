//! The library's Postgres hooks and transaction callbacks, one of each kind, each calling the
//! modules that need it in a fixed order. One entry per hook keeps the order visible in one place
//! and pays the FFI guard (a `sigsetjmp` and a panic catch per crossing) once per hook rather
//! than once per module: every statement passes through all of them, also in databases without
//! the extension (docs/benchmarks.md, "the library's hooks").
//!
//! Installed from `_PG_init`: the executor-end hook and the transaction callbacks always (decrypt
//! auditing and alerts work when the library is loaded on first use); the others only while preloading,
//! as they must see every statement from a backend's start.

mod client_authentication;
mod object_access;
mod process_utility;

use crate::{audit, events, keys, privacy, security};
use pgrx::pg_sys;
use pgrx::prelude::*;

static mut PREV_POST_PARSE: pg_sys::post_parse_analyze_hook_type = None;
static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_EXECUTOR_RUN: pg_sys::ExecutorRun_hook_type = None;
static mut PREV_EXECUTOR_END: pg_sys::ExecutorEnd_hook_type = None;

/// Installs the hooks every loading backend needs (from _PG_init).
pub fn install_always() {
    // SAFETY: _PG_init runs once per process, single-threaded: while preloading, or (this hook
    // is installed in both cases) when a statement first loads the library, before which no
    // hook of ours exists; the previous hook is saved before ours replaces it. The callbacks are
    // #[pg_guard] functions that ignore their (null) `arg`.
    unsafe {
        PREV_EXECUTOR_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end);
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}

/// Installs the hooks that need the library preloaded (from _PG_init while preloading).
pub fn install_preloaded() {
    // SAFETY: as in `install_always`.
    unsafe {
        PREV_POST_PARSE = pg_sys::post_parse_analyze_hook;
        pg_sys::post_parse_analyze_hook = Some(post_parse);
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREV_EXECUTOR_RUN = pg_sys::ExecutorRun_hook;
        pg_sys::ExecutorRun_hook = Some(executor_run);
    }
    process_utility::install();
    object_access::install();
    client_authentication::install();
    privacy::start::mark_installed();
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
        privacy::dp_only::plan(parse, || match PREV_PLANNER {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| {
                prev(parse, query_string, cursor_options, bound_params)
            }),
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        })
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: the executor's QueryDesc; the previous hook saved at install.
    unsafe {
        privacy::dp_only_execution::reset_if_pending();
        audit::replica::check(query, eflags);
        privacy::dp_only_execution::start(query, eflags, || match PREV_EXECUTOR_START {
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query, eflags)),
            None => pg_sys::standard_ExecutorStart(query, eflags),
        });
        // After the start succeeded (a statement refused at start reads nothing).
        audit::reads::start(query, eflags);
        privacy::start::after_executor_start(query, eflags);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_run(
    query: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
    execute_once: bool,
) {
    // SAFETY: the executor's arguments; the previous hook saved at install.
    unsafe {
        privacy::dp_only_execution::run(query, || match PREV_EXECUTOR_RUN {
            Some(prev) => {
                pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query, direction, count, execute_once))
            }
            None => pg_sys::standard_ExecutorRun(query, direction, count, execute_once),
        })
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_end(query: *mut pg_sys::QueryDesc) {
    // SAFETY: the executor's QueryDesc, freed by the standard end below; the previous hook saved
    // at install.
    unsafe {
        privacy::dp_only_execution::end(query, || {
            security::large_results::check(query);
            audit::reads::check(query);
            match PREV_EXECUTOR_END {
                Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query)),
                None => pg_sys::standard_ExecutorEnd(query),
            }
            audit::decrypts::after_executor_end();
            security::exfil::flush(true);
            keys::nonce_budget::flush_local(true);
        })
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    security::exfil::on_xact(event);
    audit::decrypts::on_xact(event);
    events::severity::on_xact(event);
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT {
        keys::nonce_budget::flush_local(false);
    }
    if privacy::start::installed() {
        audit::reads::on_xact(event);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    mine: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    events::severity::on_subxact(event, mine);
    if privacy::start::installed() {
        audit::reads::on_subxact(event, mine);
    }
}
