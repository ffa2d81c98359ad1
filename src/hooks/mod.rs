//! The library's Postgres hooks and transaction callbacks, one of each kind, each in a file named
//! for it with the static that keeps the previous hook, each calling the modules that need it in
//! a fixed order. One entry per hook keeps the order visible in one place
//! and pays the FFI guard (a `sigsetjmp` and a panic catch per crossing) once per hook rather
//! than once per module: every statement passes through all of them, also in databases without
//! the extension (docs/benchmarks.md, "the library's hooks").
//!
//! Installed from `_PG_init`: the executor-end hook and the transaction callbacks always (decrypt
//! auditing and alerts work when the library is loaded on first use); the others only while preloading,
//! as they must see every statement from a backend's start.

mod client_authentication;
mod executor;
mod object_access;
mod planner;
mod post_parse;
mod process_utility;
mod transaction;

use crate::privacy;

/// Installs the hooks every loading backend needs (from _PG_init).
pub fn install_always() {
    executor::install_end();
    transaction::install();
}

/// Installs the hooks that need the library preloaded (from _PG_init while preloading).
pub fn install_preloaded() {
    post_parse::install();
    planner::install();
    executor::install_start_and_run();
    process_utility::install();
    object_access::install();
    client_authentication::install();
    privacy::start::mark_installed();
}
