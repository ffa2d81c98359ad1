//! The executor hooks. ExecutorStart and ExecutorRun (preloaded): replica-mode writes, DP-only
//! execution, read auditing and the privacy charge at start. ExecutorEnd (always): large-result
//! and read checks, then decrypt counts, decrypt-rate alerts and the nonce budget.

use crate::{audit, keys, privacy, security};
use pgrx::prelude::*;

static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_EXECUTOR_RUN: pg_sys::ExecutorRun_hook_type = None;
static mut PREV_EXECUTOR_END: pg_sys::ExecutorEnd_hook_type = None;

/// From `_PG_init`, preloaded or not.
pub fn install_end() {
    // SAFETY: _PG_init runs once per process, single-threaded: while preloading, or when a
    // statement first loads the library, before which no hook of ours exists; the previous hook
    // is saved before ours replaces it.
    unsafe {
        PREV_EXECUTOR_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end);
    }
}

/// From `_PG_init` while preloading.
pub fn install_start_and_run() {
    // SAFETY: _PG_init runs once per process, single-threaded, before any hook of ours exists;
    // the previous hook is saved before ours replaces it, and only the hook reads it after.
    unsafe {
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREV_EXECUTOR_RUN = pg_sys::ExecutorRun_hook;
        pg_sys::ExecutorRun_hook = Some(executor_run);
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
