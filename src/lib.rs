//! pg_encrypt_ml: the Postgres glue and SQL surface over `encml-core`.
//!
//! Layers (arrows point down only):
//! - `hooks`: the Postgres hooks, one of each kind, calling the modules below in a fixed order.
//! - `api/`: the SQL functions a user calls; thin: parse, check rights, call down, map errors.
//! - `types/`, `keys/`, `pg/`: varlena I/O, the key catalog, key cache, GUCs, errors.
//! - `encml_core`: formats and cryptography, without Postgres.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

pub mod api;
pub mod audit;
pub mod fhe;
pub mod hooks;
pub mod keys;
pub mod pg;
pub mod privacy;
pub mod security;
pub mod types;

// Tables, views and grants of the key catalog; runs before any generated function.
pgrx::extension_sql_file!("../sql/schema/bootstrap.sql", name = "bootstrap", bootstrap);
// COMMENTs, privileges and volatility checks for every function; runs last.
pgrx::extension_sql_file!("../sql/schema/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // pgrx puts a captured Rust backtrace (source paths, crate internals) into the DETAIL of
    // every ERROR raised from Rust when RUST_BACKTRACE is set in the server's environment:
    // clients must never see it. RUST_LIB_BACKTRACE takes precedence for captured backtraces
    // and leaves panic messages in the server log as they are.
    // SAFETY: _PG_init runs before any query, in a single-threaded process; nothing else reads
    // the environment concurrently.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    pg::gucs::register();
    audit::decrypts::register_guc();
    keys::tenant_context::register();
    keys::cache::register_invalidation_callback();
    audit::audited::register();
    audit::row::register();
    hooks::install_always();
    // SAFETY: a plain bool global of the Postgres process, set by the postmaster while it loads
    // shared_preload_libraries; read on the process's only thread, inside _PG_init.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        hooks::install_preloaded();
        audit::maintenance::install();
        keys::nonce_budget::init_shared_memory();
    }
    security::init();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["encml.allow_development_master_key = on"]
    }
}
