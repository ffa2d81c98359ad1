//! pg_encrypt_ml: the Postgres glue and SQL surface over `encml-core`, `encml-dp` and
//! `encml-fhe` (the pgrx-free crates under crates/, which hold the formats and the cryptography).
//!
//! Layer order (lowest first): pg < events < keys < types < audit < security < privacy < fhe < api < hooks
//!
//! A module uses only modules of its own layer or below; tests/architecture/layers.py checks
//! every `crate::` and `super::` path against the line above (docs/architecture.md has the
//! picture). Where a lower layer must reach a higher one, the higher one registers a function
//! from `_PG_init` (the audit log's event sink in `events`, caches emptied with the key cache).
//! - `pg/`: Postgres plumbing with no feature of its own: SPI and catalog reads, identity
//!   switching, GUCs, errors, varlena I/O, background workers, Citus detection, the roles' names.
//! - `events/`: recording a security event (through the sink the audit log registers) and its
//!   severity, JSON log line and alert.
//! - `keys/`: the key catalog, master-key providers, the per-backend key cache, grants,
//!   clearances, tenants and the tenant context.
//! - `types/`: the SQL types' on-disk and text forms (enc_bytea, det_text, ORE, fhe_*).
//! - `audit/`: the tamper-evident audit log: its writer, hash chain, triggers, read and decrypt
//!   auditing, event triggers.
//! - `security/`: threat detection: login lockout, decrypt rates, large results, role changes.
//! - `privacy/`: differential privacy: the budget ledger, charging at executor start, DP-only
//!   tables.
//! - `fhe/`: TFHE rounds of encrypted model updates.
//! - `api/`: the SQL functions a user calls: parse, check rights, call down, map errors.
//! - `hooks/`: the Postgres hooks, one of each kind, calling the layers below in a fixed order.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

pub mod api;
pub mod audit;
pub mod events;
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
    pg::pause::register_guc();
    api::lifecycle::worker::register_gucs();
    events::severity::register_guc();
    events::register_sink(audit::event_sink());
    audit::decrypts::register_guc();
    keys::tenant_context::register();
    keys::cache::register_invalidation_callback();
    api::subjects::keys::register_cache();
    api::consent::register_cache();
    audit::audited::register();
    audit::row::register();
    audit::canonical_output::register();
    hooks::install_always();
    // SAFETY: a plain bool global of the Postgres process, set by the postmaster while it loads
    // shared_preload_libraries; read on the process's only thread, inside _PG_init.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        pg::preload::mark_preloaded();
        hooks::install_preloaded();
        keys::nonce_budget::init_shared_memory();
        api::lifecycle::worker::register_launcher();
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
